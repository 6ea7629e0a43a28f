// The canvas page in a real browser (Debian's chromium via playwright-core)
// against the real daemon and the shipped model.
//
//   DIGITD_BIN=build/digitd DIGITD_MODEL=models/default.model \
//   DIGITD_WEB_ROOT=web node --test tests/browser/draw_digits.test.mjs
//
// (ctest -L browser does this with the right paths.) Screenshots, the
// accuracy report and the daemon's log go to tests/browser/artifacts/
// (DIGITD_ARTIFACTS overrides).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium } from './chromium.mjs';
import { buildSet, plainDrawing } from './digit_strokes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.DIGITD_BIN || path.join(repo, 'build', 'digitd');
const MODEL = process.env.DIGITD_MODEL || path.join(repo, 'models', 'default.model');
const WEB_ROOT = process.env.DIGITD_WEB_ROOT || path.join(repo, 'web');
const ARTIFACTS = process.env.DIGITD_ARTIFACTS || path.join(here, 'artifacts');
const REQUIRED_ACCURACY = 0.9;
// What the page must work under (the daemon may send a stricter policy too).
const PAGE_CSP = "default-src 'self'";

const WIDE = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let daemon = null;
let port = 0;
let baseUrl = '';
let browser = null;

// ---- the daemon -------------------------------------------------------------
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startDaemon() {
  const log = fs.createWriteStream(path.join(ARTIFACTS, 'daemon.log'), { flags: 'a' });
  const child = spawn(BIN, ['serve', '--port', String(port), '--bind', '127.0.0.1',
    '--model', MODEL, '--web-root', WEB_ROOT], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`digitd serve exited early (${JSON.stringify(exited)}); see ${ARTIFACTS}/daemon.log`);
    try {
      const res = await fetch(`${baseUrl}readyz`);
      if (res.ok) return child;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('digitd serve did not become ready within 30 s');
}

async function stopDaemon() {
  if (!daemon) return;
  const child = daemon;
  daemon = null;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

// ---- pages --------------------------------------------------------------------
// Every page gets the page CSP enforced on top of the daemon's headers, and
// records CSP violations, script errors and each /predict request (how many
// were out at once, and whether a stroke was being drawn).
async function openPage(contextOptions = {}) {
  const context = await browser.newContext({ viewport: WIDE, ...contextOptions });
  await context.route(baseUrl, async (route) => {
    const response = await route.fetch();
    const headers = response.headers();
    const csp = headers['content-security-policy'];
    headers['content-security-policy'] = csp ? `${csp}, ${PAGE_CSP}` : PAGE_CSP;
    await route.fulfill({ response, headers });
  });
  await context.addInitScript(() => {
    const rec = { csp: [], inflight: 0, maxInflight: 0, requests: 0, duringStroke: 0, down: false };
    window.__digitdTest = rec;
    document.addEventListener('securitypolicyviolation', (e) => {
      rec.csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
    document.addEventListener('pointerdown', () => { rec.down = true; }, true);
    document.addEventListener('pointerup', () => { rec.down = false; }, true);
    document.addEventListener('pointercancel', () => { rec.down = false; }, true);
    const realFetch = window.fetch.bind(window);
    window.fetch = (input, init) => {
      const url = String(input && input.url ? input.url : input);
      if (!url.includes('predict')) return realFetch(input, init);
      rec.requests++;
      if (rec.down) rec.duringStroke++;
      rec.inflight++;
      rec.maxInflight = Math.max(rec.maxInflight, rec.inflight);
      const done = () => { rec.inflight--; };
      const p = realFetch(input, init);
      p.then(done, done);
      return p;
    };
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(msg.text())) {
      problems.push(`console error: ${msg.text()}`);
    }
  });
  await page.goto(baseUrl);
  await page.waitForSelector('#app[data-state="empty"]');
  return {
    page,
    context,
    async close() {
      const rec = await page.evaluate(() => window.__digitdTest);
      await context.close();
      assert.deepEqual(rec.csp, [], `CSP violations under "${PAGE_CSP}"`);
      assert.deepEqual(problems, [], 'errors in the page');
      return rec;
    },
  };
}

async function padBox(page) {
  const box = await page.locator('#pad').boundingBox();
  assert.ok(box && box.width > 100, 'the pad is visible');
  return box;
}

// Real mouse strokes: down, moves along the path, up.
async function drawWithMouse(page, strokes, { delayMs = 0 } = {}) {
  const box = await padBox(page);
  const at = (p) => [box.x + p.x * box.width, box.y + p.y * box.height];
  for (const stroke of strokes) {
    await page.mouse.move(...at(stroke[0]));
    await page.mouse.down();
    for (const p of stroke.slice(1)) {
      await page.mouse.move(...at(p));
      if (delayMs) await sleep(delayMs);
    }
    await page.mouse.up();
  }
}

// Touch strokes through the DevTools protocol (a touch context has to be
// used: the events arrive as pointer events of type "touch").
async function drawWithTouch(page, strokes) {
  const cdp = await page.context().newCDPSession(page);
  const box = await padBox(page);
  const at = (p) => ({ x: box.x + p.x * box.width, y: box.y + p.y * box.height });
  for (const stroke of strokes) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at(stroke[0])] });
    for (const p of stroke.slice(1)) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [at(p)] });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  }
  await cdp.detach();
}

async function waitState(page, states, timeout = 15000) {
  await page.waitForFunction(
    (s) => s.includes(document.getElementById('app').getAttribute('data-state')),
    states, { timeout });
  return page.getAttribute('#app', 'data-state');
}

async function result(page) {
  return page.evaluate(() => ({
    state: document.getElementById('app').getAttribute('data-state'),
    verdict: document.getElementById('app').getAttribute('data-verdict'),
    digit: document.getElementById('digit').textContent.trim(),
    probs: [...document.querySelectorAll('[data-digit]')]
      .sort((a, b) => a.dataset.digit - b.dataset.digit)
      .map((b) => Number(b.getAttribute('data-p'))),
    error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
  }));
}

const padPixels = (page) => page.evaluate(() => document.getElementById('pad').toDataURL());
const seenInk = (page) => page.evaluate(() => {
  const c = document.getElementById('seen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
});

async function clearPad(page) {
  await page.keyboard.press('Escape');
  await waitState(page, ['empty']);
}

function shot(page, name, options = {}) {
  return page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), ...options });
}

// ---- setup ------------------------------------------------------------------
before(async () => {
  for (const [what, file] of [['DIGITD_BIN', BIN], ['DIGITD_MODEL', MODEL], ['DIGITD_WEB_ROOT', WEB_ROOT]]) {
    assert.ok(fs.existsSync(file), `${what}: ${file} does not exist`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.rmSync(path.join(ARTIFACTS, 'daemon.log'), { force: true });
  for (const f of fs.readdirSync(ARTIFACTS)) {
    if (f.startsWith('miss-')) fs.rmSync(path.join(ARTIFACTS, f));
  }
  port = await freePort();
  baseUrl = `http://127.0.0.1:${port}/`;
  daemon = await startDaemon();
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  await stopDaemon();
});

// ---- drawing digits -----------------------------------------------------------
test('digits drawn with the mouse are recognised (>= 90% of held-out styles)', { timeout: 600000 }, async (t) => {
  const say = (line = '') => t.diagnostic(line);
  const { page, close } = await openPage();
  const drawings = [...buildSet('heldout'), ...buildSet('tuning')];
  const outcomes = [];
  for (const [i, d] of drawings.entries()) {
    await drawWithMouse(page, d.strokes);
    const state = await waitState(page, ['ready', 'error']);
    const r = await result(page);
    assert.equal(state, 'ready', `drawing ${i}: the page shows an error: ${r.error}`);
    const top = r.probs.indexOf(Math.max(...r.probs));
    // The big digit is the top bar when the answer is accepted; a refused
    // answer never shows one (ambiguous: "a / b", not a digit: "?").
    if (r.verdict === 'accepted') assert.equal(r.digit, String(top), '#digit is the bar with the largest data-p');
    else if (r.verdict === 'ambiguous') assert.ok(r.digit.startsWith(String(top)) && r.digit.includes('/'), `ambiguous shows "a / b" (${r.digit})`);
    else assert.equal(r.digit, '?', 'a drawing refused as not a digit shows no digit');
    // Right means read as the digit drawn AND accepted: a refused digit is a miss.
    const ok = r.verdict === 'accepted' && top === d.label;
    outcomes.push({ set: d.set, label: d.label, got: top, verdict: r.verdict, p: r.probs[top], style: d.style, meta: d.meta, ok });
    if (!ok) {
      await shot(page, `miss-${d.set}-${String(i).padStart(3, '0')}-${d.label}-as-${top}-${r.verdict}`,
        { clip: await page.locator('.layout').boundingBox() });
    }
    if (i === 0) {
      assert.ok(await seenInk(page) > 20, '"what the model saw" shows the normalised input');
    }
    await clearPad(page);
  }
  const rec = await close();

  const pct = (n, d) => `${((100 * n) / d).toFixed(1)}%`;
  const summary = {};
  for (const set of ['heldout', 'tuning']) {
    const rows = outcomes.filter((o) => o.set === set);
    const right = rows.filter((o) => o.ok).length;
    summary[set] = { right, total: rows.length, accuracy: right / rows.length };
    say(`${set === 'heldout' ? 'held-out styles (never tuned on)' : 'tuning styles'}: ` +
        `${right}/${rows.length} = ${pct(right, rows.length)}`);
    const byStyle = {};
    for (const o of rows) {
      byStyle[o.style] ??= [0, 0];
      byStyle[o.style][1]++;
      if (o.ok) byStyle[o.style][0]++;
    }
    say('  by style: ' + Object.entries(byStyle).map(([s, [r, n]]) => `${s} ${r}/${n}`).join(', '));
    const byDigit = Array.from({ length: 10 }, (_, dg) => {
      const of = rows.filter((o) => o.label === dg);
      return `${dg}:${of.filter((o) => o.ok).length}/${of.length}`;
    });
    say('  by digit: ' + byDigit.join(' '));
    for (const o of rows.filter((x) => !x.ok)) {
      say(`  miss: ${o.label} read as ${o.got}, ${o.verdict} (p=${o.p.toFixed(2)}; ${o.style}, ` +
          `size ${o.meta.size}, slant ${o.meta.slant}°, rotation ${o.meta.rotation}°, centre ${o.meta.centre})`);
    }
  }
  const all = outcomes.filter((o) => o.ok).length;
  const accepted = outcomes.filter((o) => o.verdict === 'accepted').length;
  const topRight = outcomes.filter((o) => o.got === o.label).length;
  say(`all drawings: ${all}/${outcomes.length} = ${pct(all, outcomes.length)} accepted and right ` +
      `(top digit right ${pct(topRight, outcomes.length)}, accepted ${pct(accepted, outcomes.length)})`);
  const matrix = Array.from({ length: 10 }, () => new Array(10).fill(0));
  for (const o of outcomes) matrix[o.label][o.got]++;
  say('confusion matrix, all drawings (rows: drawn, columns: recognised):');
  say('      ' + [...Array(10).keys()].map((c) => String(c).padStart(3)).join(''));
  matrix.forEach((row, dg) => say(`   ${dg}: ` + row.map((n) => (n ? String(n) : '.').padStart(3)).join('')));
  say(`/predict requests: ${rec.requests} for ${outcomes.length} drawings, ` +
      `${rec.duringStroke} while a stroke was being drawn, at most ${rec.maxInflight} at once`);
  fs.writeFileSync(path.join(ARTIFACTS, 'accuracy.json'),
    JSON.stringify({ summary, all: { right: all, total: outcomes.length }, matrix, outcomes }, null, 1));

  assert.ok(outcomes.length >= 40);
  assert.equal(rec.maxInflight, 1, 'never more than one /predict request in flight');
  assert.ok(summary.heldout.accuracy >= REQUIRED_ACCURACY,
    `held-out accuracy ${pct(summary.heldout.right, summary.heldout.total)} is below ${REQUIRED_ACCURACY * 100}%`);
  assert.ok(all / outcomes.length >= REQUIRED_ACCURACY,
    `overall accuracy ${pct(all, outcomes.length)} is below ${REQUIRED_ACCURACY * 100}%`);
});

// ---- clear and undo -----------------------------------------------------------
test('undo removes the last stroke, clear empties the pad (buttons and keys)', async () => {
  const { page, close } = await openPage();
  const blank = await padPixels(page);
  assert.equal(await page.getAttribute('#undo', 'aria-disabled'), 'true');
  assert.equal(await page.getAttribute('#clear', 'aria-disabled'), 'true');

  // A 1, drawn slowly: predictions come while the stroke is being drawn,
  // at a modest rate, one at a time.
  const one = [[{ x: 0.5, y: 0.18 }, ...Array.from({ length: 50 }, (_, i) => ({ x: 0.5 + 0.0005 * i, y: 0.2 + 0.012 * i }))]];
  const t0 = Date.now();
  await drawWithMouse(page, one, { delayMs: 25 });
  const strokeMs = Date.now() - t0;
  await waitState(page, ['ready']);
  const afterOne = await result(page);
  const padOne = await padPixels(page);
  assert.notEqual(padOne, blank, 'the stroke is on the pad');
  assert.ok(afterOne.digit !== '', '#digit shows a digit');
  let rec = await page.evaluate(() => window.__digitdTest);
  assert.ok(rec.duringStroke >= 2, `predictions while drawing (${rec.duringStroke} during a ${strokeMs} ms stroke)`);
  assert.ok(rec.requests <= strokeMs / 200 + 3, `a modest rate (${rec.requests} requests in ${strokeMs} ms)`);
  assert.equal(rec.maxInflight, 1);

  // A second stroke changes pad and result; undo (button) brings both back.
  await drawWithMouse(page, plainDrawing({ kind: 'hand', set: 'A' }, 0, 0.5, [0.3, 0.5]));
  await waitState(page, ['ready']);
  const afterTwo = await result(page);
  assert.notEqual(await padPixels(page), padOne);
  assert.notDeepEqual(afterTwo.probs, afterOne.probs, 'the second stroke changed the probabilities');
  await page.click('#undo');
  await waitState(page, ['ready']);
  assert.equal(await padPixels(page), padOne, 'undo restores the pad');
  assert.deepEqual(await result(page), afterOne, 'undo restores the result');

  // Ctrl+Z undoes the only stroke: an empty pad and an empty result.
  await page.keyboard.press('Control+z');
  await waitState(page, ['empty']);
  assert.equal(await padPixels(page), blank);
  let r = await result(page);
  assert.equal(r.digit, '');
  assert.deepEqual(r.probs, new Array(10).fill(0));
  assert.equal(await seenInk(page), 0, 'the preview is empty');
  assert.equal(await page.getAttribute('#undo', 'aria-disabled'), 'true');
  await page.keyboard.press('Control+z');                  // nothing left: no-op
  assert.equal(await page.getAttribute('#app', 'data-state'), 'empty');

  // Clear by button, by keyboard on the button, and by Escape.
  for (const how of ['click', 'enter', 'escape']) {
    await drawWithMouse(page, one);
    await waitState(page, ['ready']);
    assert.equal(await page.getAttribute('#clear', 'aria-disabled'), 'false');
    if (how === 'click') await page.click('#clear');
    if (how === 'enter') { await page.focus('#clear'); await page.keyboard.press('Enter'); }
    if (how === 'escape') await page.keyboard.press('Escape');
    await waitState(page, ['empty']);
    assert.equal(await padPixels(page), blank, `clear (${how}) empties the pad`);
    r = await result(page);
    assert.equal(r.digit, '', `clear (${how}) empties the result`);
    assert.deepEqual(r.probs, new Array(10).fill(0));
  }
  rec = await close();
  assert.equal(rec.maxInflight, 1);
});

// ---- states the model cannot cause on demand ------------------------------------
test('low confidence and error answers are shown politely', async () => {
  const { page, context, close } = await openPage();
  let answer = null;
  await context.route('**/predict*', (route) => route.fulfill(answer));
  answer = {
    status: 200, contentType: 'application/json',
    body: JSON.stringify({ digit: 4, confidence: 0.48, model: 'fake',
      probabilities: [0.01, 0.02, 0.01, 0.01, 0.48, 0.02, 0.01, 0.02, 0.01, 0.41] }),
  };
  await drawWithMouse(page, plainDrawing({ kind: 'hand', set: 'A' }, 4));
  await waitState(page, ['ready']);
  assert.equal(await page.getAttribute('#app', 'data-confidence'), 'low');
  assert.match(await page.textContent('#headline'), /Maybe a 4\?/);
  assert.match(await page.textContent('#detail'), /Not sure.*48% a 4, 41% a 9/);
  await shot(page, 'state-low-confidence');

  answer = { status: 422, contentType: 'application/json',
    body: JSON.stringify({ error: { status: 422, message: 'blank image' } }) };
  await drawWithMouse(page, [[{ x: 0.8, y: 0.8 }, { x: 0.82, y: 0.82 }]]);
  await waitState(page, ['error']);
  assert.match(await page.textContent('#error'), /422: blank image/);
  assert.equal(await page.isVisible('#error'), true);
  await close();
});

// ---- touch ----------------------------------------------------------------------
test('touch drawing works on a phone-sized, high-DPI touch screen', async () => {
  const { page, close } = await openPage({ viewport: PHONE, hasTouch: true, isMobile: true, deviceScaleFactor: 3 });
  const dims = await page.evaluate(() => {
    const c = document.getElementById('pad');
    const r = c.getBoundingClientRect();
    return { w: c.width, css: r.width, touchAction: getComputedStyle(c).touchAction };
  });
  assert.equal(dims.touchAction, 'none');
  assert.ok(Math.abs(dims.w - dims.css * 3) <= 2, `the pad's backing store matches 3x pixels (${dims.w} for ${dims.css} CSS px)`);
  const scrollBefore = await page.evaluate(() => window.scrollY);
  await drawWithTouch(page, plainDrawing({ kind: 'hand', set: 'A' }, 7, 0.75));
  await waitState(page, ['ready']);
  const r = await result(page);
  assert.equal(r.digit, '7', 'a 7 drawn by touch is read as 7');
  assert.equal(await page.evaluate(() => window.scrollY), scrollBefore, 'drawing did not scroll the page');
  await shot(page, 'touch-phone', { fullPage: true });
  await close();
});

// ---- screenshots: light and dark, wide and narrow -----------------------------
test('screenshots of the page in light and dark mode, wide and narrow', async () => {
  const sample = plainDrawing({ kind: 'hand', set: 'A' }, 2, 0.72, [0.5, 0.52]);
  for (const scheme of ['light', 'dark']) {
    for (const [name, viewport] of [['wide', WIDE], ['narrow', PHONE]]) {
      const { page, close } = await openPage({ viewport, colorScheme: scheme, deviceScaleFactor: 2 });
      if (name === 'wide') await shot(page, `page-${scheme}-${name}-empty`);
      await drawWithMouse(page, sample);
      await waitState(page, ['ready']);
      await sleep(400);                                   // let the bars finish moving
      await shot(page, `page-${scheme}-${name}`, { fullPage: true });
      await close();
    }
  }
});

// ---- the daemon goes away and comes back ----------------------------------------
test('with the daemon stopped the page shows #error, keeps drawing, and recovers', { timeout: 120000 }, async () => {
  const { page, close } = await openPage();
  const seven = plainDrawing({ kind: 'hand', set: 'A' }, 7, 0.7);
  await drawWithMouse(page, seven);
  await waitState(page, ['ready']);
  assert.equal(await page.isVisible('#error'), false);

  await stopDaemon();
  const before = await padPixels(page);
  await drawWithMouse(page, [[{ x: 0.2, y: 0.85 }, { x: 0.5, y: 0.86 }, { x: 0.8, y: 0.85 }]]);
  await waitState(page, ['error']);
  assert.equal(await page.isVisible('#error'), true, '#error is shown');
  const message = (await page.textContent('#error')).trim();
  assert.match(message, /reach|server/i);
  assert.notEqual(await padPixels(page), before, 'drawing still works while the daemon is away');
  await shot(page, 'state-daemon-down', { clip: await page.locator('.layout').boundingBox() });
  await page.keyboard.press('Control+z');                 // undo works offline too
  await waitState(page, ['error'], 5000).catch(() => {});
  assert.equal(await padPixels(page), before, 'undo works while the daemon is away');

  daemon = await startDaemon();
  // The page retries on its own, without a new stroke.
  await waitState(page, ['ready'], 20000);
  assert.equal(await page.isVisible('#error'), false, '#error goes away');
  assert.equal((await result(page)).digit, '7');

  await clearPad(page);
  await drawWithMouse(page, plainDrawing({ kind: 'hand', set: 'A' }, 1, 0.6));
  await waitState(page, ['ready']);
  assert.equal((await result(page)).digit, '1');
  await close();
});
