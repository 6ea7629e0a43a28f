/*
 * digitd canvas page: draw a digit, see what the model thinks.
 *
 * Plain JavaScript, no dependencies, no inline code (the page runs under
 * Content-Security-Policy: default-src 'self').
 *
 * How a drawing becomes a prediction:
 * - Strokes are kept as point lists in pad coordinates (0..280 on both
 *   axes, whatever the on-screen size and the device pixel ratio), so the
 *   pad can be redrawn sharply at any size and undo is just "drop the last
 *   stroke and redraw".
 * - The image sent to POST /predict (as the raw PNG bytes, Content-Type
 *   image/png) is rendered separately from what is on screen: dark ink on a
 *   white 280x280 canvas (never a transparent background), with a pen width
 *   proportional to the drawing's size. The
 *   daemon scales the drawing into a 20x20 box, so a fixed pen would make
 *   small digits bold and large digits hairline. A width of 12% of the
 *   drawing's larger side gives normalised inputs with as much ink as MNIST
 *   digits have on average (a sum of about 100 over the 784 pixels, 0..1;
 *   measured on the test's tuning styles: 8% gave 73, 12% gave 99).
 * - At most one request is in flight. While a stroke is being drawn the
 *   page asks at most every LIVE_INTERVAL_MS; at the end of each stroke it
 *   asks at once. Answers for a drawing that was since cleared or undone are
 *   dropped; if the drawing grew while a request was out, the answer is shown
 *   and the newest drawing is sent right after (the latest drawing wins).
 *
 * - An image can be given instead of a drawing (the Image button, a paste
 *   or a drop on the pad): its bytes go to the same POST /predict with
 *   their own Content-Type, and drawing again replaces it.
 * - A rejected answer ("accepted": false with "reason" "not_a_digit" or
 *   "ambiguous") never shows a big digit: "That doesn't look like a digit",
 *   or "Is it a 4 or a 9?" with the two likeliest digits.
 *
 * Hooks for automation (stable): canvas#pad, #digit, .bar[data-digit][data-p],
 * #clear, #undo, #upload, #file, #error, #live-result. #app[data-state] is
 * "empty", "pending", "ready" or "error"; "ready" means the result shown is
 * for the drawing on the pad. #app[data-verdict] is "accepted",
 * "not-a-digit" or "ambiguous" while a result is shown.
 */
(function () {
  'use strict';

  var PAD = 280;                   // pad coordinate system (logical pixels)
  var SCREEN_PEN = 13;             // pen width on screen, in pad pixels
  var MODEL_PEN_RATIO = 0.12;      // pen width sent to the model / drawing size
  var MODEL_PEN_MIN = 6;
  var MODEL_PEN_MAX = 36;
  var LIVE_INTERVAL_MS = 250;      // prediction rate while a stroke is drawn
  var REQUEST_TIMEOUT_MS = 10000;
  var LOW_CONFIDENCE = 0.6;        // below this the page says it is unsure
  var RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];
  var MIN_POINT_DISTANCE = 0.75;   // drop pointer samples closer than this

  var app = document.getElementById('app');
  var pad = document.getElementById('pad');
  var ctx = pad.getContext('2d');
  var digitEl = document.getElementById('digit');
  var headlineEl = document.getElementById('headline');
  var detailEl = document.getElementById('detail');
  var errorEl = document.getElementById('error');
  var resultEl = document.getElementById('result');
  var announceEl = document.getElementById('announce');
  var undoBtn = document.getElementById('undo');
  var clearBtn = document.getElementById('clear');
  var seen = document.getElementById('seen');
  var seenCtx = seen.getContext('2d');
  var modelInfoEl = document.getElementById('model-info');
  var uploadBtn = document.getElementById('upload');
  var fileInput = document.getElementById('file');
  var uploadPreview = document.getElementById('upload-preview');
  var padFrame = document.getElementById('pad-frame');
  var liveDigitEl = document.getElementById('live-digit');
  var liveTextEl = document.getElementById('live-text');
  var bars = [];
  for (var d = 0; d < 10; d++) {
    var li = document.querySelector('.bar[data-digit="' + d + '"]');
    bars.push({
      li: li,
      fill: li.querySelector('.bar-fill'),
      value: li.querySelector('.bar-value')
    });
  }

  var modelCanvas = document.createElement('canvas');
  modelCanvas.width = PAD;
  modelCanvas.height = PAD;
  var modelCtx = modelCanvas.getContext('2d');

  // ---- drawing state ----------------------------------------------------
  var strokes = [];      // finished strokes: arrays of {x, y}
  var active = null;     // stroke being drawn: {id, points}
  var version = 0;       // bumped on every change of the drawing
  var epoch = 0;         // bumped when strokes are removed (clear, undo)
  var colors = readColors();
  var redrawQueued = false;
  var uploaded = null;   // {blob, url}: an image given instead of a drawing

  // ---- prediction state -------------------------------------------------
  var inflight = null;   // {version, epoch}
  var shown = null;      // {version, epoch} of the result on screen
  var lastInput = null;  // 784 numbers of the last "what the model saw"
  var failure = null;    // {message, version, epoch} while the last request failed
  var liveTimer = 0;
  var retryTimer = 0;
  var retryIndex = 0;
  var lastSentAt = -Infinity;
  var modelId = null;

  function isEmpty() {
    return strokes.length === 0 && active === null && uploaded === null;
  }

  function readColors() {
    var cs = getComputedStyle(document.documentElement);
    return {
      ink: cs.getPropertyValue('--ink').trim() || '#161a26'
    };
  }

  // ---- rendering --------------------------------------------------------
  function traceStroke(c, pts) {
    c.beginPath();
    if (pts.length === 1) {
      c.moveTo(pts[0].x, pts[0].y);
      c.lineTo(pts[0].x + 0.01, pts[0].y);   // a dot: round caps make it round
    } else if (pts.length === 2) {
      c.moveTo(pts[0].x, pts[0].y);
      c.lineTo(pts[1].x, pts[1].y);
    } else {
      // Quadratic curves through the midpoints, using the samples as
      // control points: smooth, and it never overshoots the samples.
      c.moveTo(pts[0].x, pts[0].y);
      for (var i = 1; i < pts.length - 1; i++) {
        var mx = (pts[i].x + pts[i + 1].x) / 2;
        var my = (pts[i].y + pts[i + 1].y) / 2;
        c.quadraticCurveTo(pts[i].x, pts[i].y, mx, my);
      }
      var last = pts[pts.length - 1];
      c.lineTo(last.x, last.y);
    }
    c.stroke();
  }

  function allStrokes() {
    return active ? strokes.concat([active.points]) : strokes;
  }

  function redraw() {
    redrawQueued = false;
    var scale = pad.width / PAD;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, pad.width, pad.height);
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.strokeStyle = colors.ink;
    ctx.lineWidth = SCREEN_PEN;
    var all = allStrokes();
    for (var i = 0; i < all.length; i++) traceStroke(ctx, all[i]);
  }

  function queueRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(redraw);
  }

  // The image the model gets: black ink on white, pen scaled to the drawing.
  function modelImage() {
    if (uploaded) return uploaded.blob;
    var all = allStrokes();
    var minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (var i = 0; i < all.length; i++) {
      for (var j = 0; j < all[i].length; j++) {
        var p = all[i][j];
        if (p.x < minX) minX = p.x;
        if (p.x > maxX) maxX = p.x;
        if (p.y < minY) minY = p.y;
        if (p.y > maxY) maxY = p.y;
      }
    }
    var size = Math.max(maxX - minX, maxY - minY, 0);
    var pen = Math.min(MODEL_PEN_MAX, Math.max(MODEL_PEN_MIN, size * MODEL_PEN_RATIO));
    modelCtx.setTransform(1, 0, 0, 1, 0, 0);
    modelCtx.fillStyle = '#ffffff';
    modelCtx.fillRect(0, 0, PAD, PAD);
    modelCtx.lineCap = 'round';
    modelCtx.lineJoin = 'round';
    modelCtx.strokeStyle = '#000000';
    modelCtx.lineWidth = pen;
    for (var k = 0; k < all.length; k++) traceStroke(modelCtx, all[k]);
    // toDataURL rather than toBlob: toBlob may wait for an idle moment.
    var url = modelCanvas.toDataURL('image/png');
    var bin = atob(url.slice(url.indexOf(',') + 1));
    var bytes = new Uint8Array(bin.length);
    for (var b = 0; b < bin.length; b++) bytes[b] = bin.charCodeAt(b);
    return bytes;
  }

  // Size the canvas backing store to the device pixels it covers.
  function resize(entry) {
    var rect = pad.getBoundingClientRect();
    var dpr = window.devicePixelRatio || 1;
    var w = Math.round(rect.width * dpr);
    var h = Math.round(rect.height * dpr);
    // The exact device-pixel size where the browser reports it (it knows how
    // the box snaps to pixels); ignored if it disagrees with the pixel ratio,
    // as it does under some device emulation.
    var exact = entry && entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
    if (exact && Math.abs(exact.inlineSize - w) <= 2 && Math.abs(exact.blockSize - h) <= 2) {
      w = exact.inlineSize;
      h = exact.blockSize;
    }
    w = Math.max(1, w);
    h = Math.max(1, h);
    if (pad.width !== w || pad.height !== h) {
      pad.width = w;
      pad.height = h;
      redraw();
    }
  }

  // ---- pointer input ----------------------------------------------------
  function toPad(e) {
    var rect = pad.getBoundingClientRect();
    return {
      x: (e.clientX - rect.left) / rect.width * PAD,
      y: (e.clientY - rect.top) / rect.height * PAD
    };
  }

  function addPoint(p) {
    var pts = active.points;
    var last = pts[pts.length - 1];
    var dx = p.x - last.x, dy = p.y - last.y;
    if (dx * dx + dy * dy < MIN_POINT_DISTANCE * MIN_POINT_DISTANCE) return false;
    pts.push(p);
    return true;
  }

  pad.addEventListener('pointerdown', function (e) {
    if (active) return;                                  // one pen at a time
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    e.preventDefault();
    if (uploaded) dropUpload();                          // drawing replaces it
    if (pad.setPointerCapture) {
      try { pad.setPointerCapture(e.pointerId); } catch (err) { /* ignore */ }
    }
    active = { id: e.pointerId, points: [toPad(e)] };
    app.setAttribute('data-drawing', 'true');
    changed('grow');
  });

  pad.addEventListener('pointermove', function (e) {
    if (!active || e.pointerId !== active.id) return;
    var events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
    if (events.length === 0) events = [e];
    var grew = false;
    for (var i = 0; i < events.length; i++) {
      if (addPoint(toPad(events[i]))) grew = true;
    }
    if (grew) changed('grow');
  });

  function endStroke(e) {
    if (!active || e.pointerId !== active.id) return;
    if (e.type === 'pointerup') addPoint(toPad(e));
    strokes.push(active.points);
    active = null;
    app.removeAttribute('data-drawing');
    changed('stroke-end');
  }
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointercancel', endStroke);
  pad.addEventListener('lostpointercapture', endStroke);
  pad.addEventListener('contextmenu', function (e) { e.preventDefault(); });

  // ---- commands -----------------------------------------------------------
  function clearPad() {
    if (isEmpty()) return;
    if (uploaded) dropUpload();
    strokes = [];
    active = null;
    app.removeAttribute('data-drawing');
    changed('remove');
  }

  function undo() {
    if (active) return;
    if (strokes.length === 0) {
      if (!uploaded) return;
      dropUpload();
    } else {
      strokes.pop();
    }
    changed('remove');
  }

  // ---- an image instead of a drawing --------------------------------------
  function dropUpload() {
    if (!uploaded) return;
    URL.revokeObjectURL(uploaded.url);
    uploaded = null;
    uploadPreview.hidden = true;
    uploadPreview.removeAttribute('src');
    epoch++;                 // answers about the image are now stale
  }

  function useImage(blob) {
    if (!blob || !/^image\//.test(blob.type || '')) {
      failure = null;
      showError('That file is not an image. Choose a PNG, JPEG, GIF or BMP picture of a digit.');
      return;
    }
    if (active) return;
    dropUpload();
    strokes = [];
    uploaded = { blob: blob, url: URL.createObjectURL(blob) };
    uploadPreview.src = uploaded.url;
    uploadPreview.hidden = false;
    changed('remove');
  }

  pressable(uploadBtn, function () { fileInput.click(); });
  fileInput.addEventListener('change', function () {
    var f = fileInput.files && fileInput.files[0];
    fileInput.value = '';    // choosing the same file again fires change again
    if (f) useImage(f);
  });
  document.addEventListener('paste', function (e) {
    var items = (e.clipboardData && e.clipboardData.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].kind === 'file' && /^image\//.test(items[i].type)) {
        e.preventDefault();
        useImage(items[i].getAsFile());
        return;
      }
    }
  });
  padFrame.addEventListener('dragover', function (e) {
    e.preventDefault();
    app.setAttribute('data-dragging', 'true');
  });
  padFrame.addEventListener('dragleave', function () { app.removeAttribute('data-dragging'); });
  padFrame.addEventListener('drop', function (e) {
    e.preventDefault();
    app.removeAttribute('data-dragging');
    var f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) useImage(f);
  });

  function pressable(button, action) {
    button.addEventListener('click', function () {
      if (button.getAttribute('aria-disabled') === 'true') return;
      action();
    });
  }
  pressable(clearBtn, clearPad);
  pressable(undoBtn, undo);

  document.addEventListener('keydown', function (e) {
    if (e.defaultPrevented || e.isComposing) return;
    if (e.key === 'Escape' && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (!isEmpty()) { e.preventDefault(); clearPad(); }
    } else if ((e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey &&
               (e.key === 'z' || e.key === 'Z')) {
      e.preventDefault();
      undo();
    }
  });

  if (/Mac|iPhone|iPad/.test(navigator.userAgent)) {
    var keys = document.querySelectorAll('.mod-key');
    for (var k = 0; k < keys.length; k++) keys[k].textContent = '\u2318';
  }

  // ---- the drawing changed: schedule a prediction -------------------------
  function changed(kind) {
    version++;
    if (kind === 'remove') epoch++;
    // While a stroke grows, draw once per frame; otherwise at once, so the
    // pad never lags behind the state it shows.
    if (kind === 'grow') queueRedraw(); else redraw();
    undoBtn.setAttribute('aria-disabled', (strokes.length === 0 && !uploaded) || active ? 'true' : 'false');
    clearBtn.setAttribute('aria-disabled', isEmpty() ? 'true' : 'false');
    if (isEmpty()) {
      clearTimeout(liveTimer); liveTimer = 0;
      clearTimeout(retryTimer); retryTimer = 0;
      retryIndex = 0;
      failure = null;
      shown = null;
      showEmpty();
      render();
      return;
    }
    if (kind === 'grow') {
      scheduleLive();
    } else {
      clearTimeout(liveTimer); liveTimer = 0;
      pump();
    }
    render();
  }

  function scheduleLive() {
    if (liveTimer) return;
    var wait = Math.max(0, lastSentAt + LIVE_INTERVAL_MS - performance.now());
    liveTimer = setTimeout(function () { liveTimer = 0; pump(); }, wait);
  }

  function upToDate() {
    return shown !== null && shown.version === version && shown.epoch === epoch;
  }

  // Send the current drawing unless a request is out (its answer calls pump
  // again) or the result on screen is already for this drawing.
  // A failed drawing is sent again only by the retry timer (force) or once
  // it has changed, so an answer like 422 is not asked for in a loop.
  function pump(force) {
    if (inflight || isEmpty()) return;
    if (failure) {
      if (!force && failure.version === version && failure.epoch === epoch) return;
    } else if (upToDate()) {
      return;
    }
    clearTimeout(retryTimer); retryTimer = 0;
    send();
  }

  function send() {
    var req = { version: version, epoch: epoch };
    var settled = active === null;
    var body = modelImage();
    var controller = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) controller.abort(); }, REQUEST_TIMEOUT_MS);
    inflight = req;
    lastSentAt = performance.now();
    render();

    fetch('predict?include=input', {
      method: 'POST',
      headers: {
        'Content-Type': body instanceof Blob ? body.type : 'image/png',
        'Accept': 'application/json'
      },
      body: body,
      cache: 'no-store',
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (err) { /* not JSON */ }
        if (res.ok && validAnswer(data)) return { ok: true, data: data };
        if (res.ok) return { ok: false, retry: true, message: 'The server sent an answer this page does not understand.' };
        return { ok: false, retry: res.status >= 500, status: res.status, message: httpMessage(res.status, data) };
      });
    }, function () {
      return {
        ok: false, retry: true,
        message: controller && controller.signal.aborted
          ? 'The server is taking too long to answer. Your drawing is safe; trying again shortly.'
          : 'Can\u2019t reach the digitd server. Your drawing is safe; trying again shortly.'
      };
    }).then(function (outcome) {
      clearTimeout(timer);
      inflight = null;
      if (req.epoch !== epoch || isEmpty()) {
        // Cleared or undone meanwhile: this answer is about a drawing that
        // no longer exists.
      } else if (outcome.ok) {
        failure = null;
        retryIndex = 0;
        shown = req;
        showResult(outcome.data, settled && req.version === version);
      } else {
        failure = { message: outcome.message, version: req.version, epoch: req.epoch };
        showError(outcome.message);
        if (outcome.retry) scheduleRetry();
      }
      // The drawing may have grown while the request was out: send it next.
      if (active) scheduleLive(); else pump();
      render();
    });
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    var delay = RETRY_DELAYS_MS[Math.min(retryIndex, RETRY_DELAYS_MS.length - 1)];
    retryIndex++;
    retryTimer = setTimeout(function () { retryTimer = 0; pump(true); }, delay);
  }

  function validAnswer(data) {
    if (!data || typeof data.digit !== 'number' || !Array.isArray(data.probabilities) ||
        data.probabilities.length !== 10) return false;
    for (var i = 0; i < 10; i++) {
      if (typeof data.probabilities[i] !== 'number' || !isFinite(data.probabilities[i])) return false;
    }
    return true;
  }

  function httpMessage(status, data) {
    var said = data && data.error && typeof data.error.message === 'string' ? data.error.message : '';
    var text;
    if (status === 503) text = 'The server is up but has no model loaded yet. Trying again shortly.';
    else if (status === 413) text = 'This drawing is too large for the server to accept.';
    else if (status === 422) text = 'The server could not find a digit in this drawing. Try drawing it larger.';
    else if (status >= 500) text = 'The server had a problem with this drawing. Trying again shortly.';
    else text = 'The server turned this drawing down.';
    return text + (said ? ' (' + status + ': ' + said + ')' : ' (HTTP ' + status + ')');
  }

  // ---- showing results ----------------------------------------------------
  function pct(p) {
    var v = p * 100;
    if (v >= 99.95) return '100%';
    if (v >= 10) return v.toFixed(0) + '%';
    if (v >= 0.05) return v.toFixed(1) + '%';
    return '0%';
  }

  function setBars(probs, top) {
    for (var i = 0; i < 10; i++) {
      var p = probs ? Math.max(0, Math.min(1, probs[i])) : 0;
      var b = bars[i];
      b.li.setAttribute('data-p', probs ? String(probs[i]) : '0');
      b.fill.style.setProperty('--p', String(p));
      b.value.textContent = pct(p);
      b.li.classList.toggle('is-top', i === top);
    }
  }

  function showResult(data, final) {
    var probs = data.probabilities;
    var top = data.digit;
    var conf = typeof data.confidence === 'number' ? data.confidence : probs[top];
    var order = probs.map(function (p, i) { return i; })
      .sort(function (a, b) { return probs[b] - probs[a]; });
    var second = order[0] === top ? order[1] : order[0];

    errorEl.hidden = true;
    errorEl.textContent = '';

    var rejected = data.accepted === false;
    var verdict = !rejected ? 'accepted' : data.reason === 'ambiguous' ? 'ambiguous' : 'not-a-digit';
    app.setAttribute('data-verdict', verdict);
    var low = !rejected && conf < LOW_CONFIDENCE;
    app.setAttribute('data-confidence', rejected ? 'rejected' : low ? 'low' : 'high');
    if (rejected) {
      // Never a big confident digit for an answer the model refused.
      var a = order[0], b = order[1];
      setBars(probs, -1);
      if (verdict === 'ambiguous') {
        digitEl.textContent = a + '\u2009/\u2009' + b;
        headlineEl.textContent = 'Is it a ' + a + ' or a ' + b + '?';
        detailEl.textContent = 'The model can\u2019t decide: ' + pct(probs[a]) + ' a ' + a + ', ' +
          pct(probs[b]) + ' a ' + b + '. Try drawing it more clearly.';
      } else {
        digitEl.textContent = '?';
        headlineEl.textContent = 'That doesn\u2019t look like a digit';
        detailEl.textContent = 'Draw one digit, 0 to 9, large and clear.';
      }
      setLive(digitEl.textContent, headlineEl.textContent);
      if (final) announceEl.textContent = headlineEl.textContent;
      finishResult(data);
      return;
    }
    digitEl.textContent = String(top);
    setBars(probs, top);
    if (low) {
      headlineEl.textContent = 'Maybe a ' + top + '?';
      detailEl.textContent = 'Not sure: ' + pct(conf) + ' a ' + top + ', ' + pct(probs[second]) +
        ' a ' + second + '. Try drawing it larger or more clearly.';
    } else {
      headlineEl.textContent = 'Looks like a ' + top;
      detailEl.textContent = pct(conf) + ' confident';
    }
    if (final) {
      announceEl.textContent = low
        ? 'Not sure. Maybe a ' + top + ', ' + pct(conf) + ', or a ' + second + '.'
        : 'Looks like a ' + top + ', ' + pct(conf) + ' confident.';
    }
    setLive(String(top), low ? 'Maybe a ' + top + '? (' + pct(conf) + ')' : 'Looks like a ' + top + ' (' + pct(conf) + ')');
    finishResult(data);
  }

  function setLive(digit, text) {
    liveDigitEl.textContent = digit;
    liveTextEl.textContent = text;
  }

  // The parts of an answer shown whatever the verdict.
  function finishResult(data) {
    lastInput = Array.isArray(data.input) && data.input.length === 784 ? data.input : null;
    drawSeen();
    if (typeof data.model === 'string' && data.model && data.model !== modelId) {
      modelId = data.model;
      modelInfoEl.textContent = 'Model ' + readable(data.model);
      loadModelInfo();
    }
  }

  // "cnn-conv5x32,pool2,dense10" -> "cnn-conv5x32, pool2, dense10": the
  // architecture can then wrap on a narrow screen.
  function readable(name) {
    return String(name).replace(/,/g, ', ');
  }

  // "Model NAME, N parameters, 99.2% on MNIST test" from GET /model.
  function loadModelInfo() {
    fetch('model', { headers: { 'Accept': 'application/json' }, cache: 'no-store' })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (m) {
        if (!m || typeof m !== 'object') return;
        if (typeof m.id === 'string') modelId = m.id;
        var text = 'Model ' + readable(m.name || m.id || 'loaded');
        if (typeof m.parameters === 'number') {
          text += ', ' + m.parameters.toLocaleString('en-US') + ' parameters';
        }
        if (typeof m.test_accuracy === 'number' && m.test_accuracy > 0) {
          text += ', ' + (m.test_accuracy * 100).toFixed(1) + '% on MNIST test';
        }
        modelInfoEl.textContent = text;
      })
      .catch(function () { /* the page works without it */ });
  }

  function showEmpty() {
    errorEl.hidden = true;
    errorEl.textContent = '';
    digitEl.textContent = '';
    app.removeAttribute('data-confidence');
    app.removeAttribute('data-verdict');
    setLive('', 'Draw a digit: the guess shows here');
    headlineEl.textContent = 'Waiting for a drawing';
    detailEl.textContent = 'Start drawing on the pad: the guess updates as you go.';
    announceEl.textContent = '';
    setBars(null, -1);
    lastInput = null;
    drawSeen();
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
    setLive('!', 'No answer: see the message below');
    if (shown && !upToDate()) {
      detailEl.textContent = 'This was the answer before your latest change.';
    }
  }

  function drawSeen() {
    seenCtx.clearRect(0, 0, 28, 28);
    if (!lastInput) return;
    var max = 0;
    for (var i = 0; i < 784; i++) if (lastInput[i] > max) max = lastInput[i];
    var scale = max > 1.5 ? 255 : 1;                   // accept 0..1 or 0..255
    seenCtx.fillStyle = colors.ink;
    for (var y = 0; y < 28; y++) {
      for (var x = 0; x < 28; x++) {
        var v = lastInput[y * 28 + x] / scale;
        if (!(v > 0.02)) continue;
        seenCtx.globalAlpha = Math.min(1, v);
        seenCtx.fillRect(x, y, 1, 1);
      }
    }
    seenCtx.globalAlpha = 1;
  }

  // The state attributes the stylesheet (and the tests) key on.
  function render() {
    var state;
    if (isEmpty()) state = 'empty';
    else if (failure && !inflight) state = 'error';
    else if (upToDate() && !active && !inflight) state = 'ready';
    else state = 'pending';
    app.setAttribute('data-state', state);
    resultEl.setAttribute('aria-busy', state === 'pending' ? 'true' : 'false');
  }

  // ---- setup --------------------------------------------------------------
  if (typeof ResizeObserver === 'function') {
    var ro = new ResizeObserver(function (entries) { resize(entries[entries.length - 1]); });
    try {
      ro.observe(pad, { box: 'device-pixel-content-box' });
    } catch (err) {
      ro.observe(pad);
    }
  } else {
    window.addEventListener('resize', function () { resize(null); });
  }
  resize(null);

  var darkQuery = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  if (darkQuery && darkQuery.addEventListener) {
    darkQuery.addEventListener('change', function () {
      colors = readColors();
      redraw();
      drawSeen();
    });
  }

  showEmpty();
  render();
  loadModelInfo();
})();
