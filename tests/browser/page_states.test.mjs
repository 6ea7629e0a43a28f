// The canvas page's states and layout in a real browser (Debian's chromium
// via playwright-core) against mock_server.mjs, which answers /predict with
// whatever verdict the test asks for:
//
//   node --test page_states.test.mjs        (ctest -L browser runs it)
//
// - the two verdicts of a rejected answer ("accepted": false, "reason"
//   "not_a_digit" or "ambiguous") and never a big digit for them;
// - no horizontal overflow at 320, 375 and 430 px, the architecture in the
//   footer within the screen;
// - on a phone, the verdict line above the pad is on screen while drawing;
// - contrast of secondary text and footer at least 4.5:1 (WCAG AA) in light
//   and dark mode;
// - every control reached with Tab and worked with the keyboard, an image
//   chosen with the file dialog or pasted goes to the same /predict;
// - screenshots at 375 and 1200 px in light and dark mode (artifacts/states-*).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium } from './chromium.mjs';
import { startMock } from './mock_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const ARTIFACTS = process.env.DIGITD_ARTIFACTS || path.join(here, 'artifacts');
const SEVEN_PNG = path.join(repo, 'docs', 'examples', 'seven.png');

let mock = null;
let browser = null;
let baseUrl = '';

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  mock = await startMock({ port: 0, webRoot: process.env.DIGITD_WEB_ROOT || path.join(repo, 'web') });
  baseUrl = `http://127.0.0.1:${mock.port}/`;
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  if (mock) await new Promise((r) => mock.server.close(r));
});

async function openPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(baseUrl);
  await page.waitForFunction(() => document.getElementById('app').getAttribute('data-state') === 'empty');
  return { page, errors, close: () => context.close() };
}

// A 7 as two strokes, in pad fractions.
const SEVEN = [[[0.25, 0.25], [0.5, 0.25], [0.75, 0.25]], [[0.75, 0.25], [0.6, 0.5], [0.45, 0.78]]];

async function draw(page, strokes = SEVEN, between = null) {
  const box = await page.locator('#pad').boundingBox();
  const at = (p) => [box.x + p[0] * box.width, box.y + p[1] * box.height];
  for (const stroke of strokes) {
    await page.mouse.move(...at(stroke[0]));
    await page.mouse.down();
    for (const p of stroke.slice(1)) {
      const from = stroke[stroke.indexOf(p) - 1];
      for (let k = 1; k <= 6; k++) {
        await page.mouse.move(...at([from[0] + (p[0] - from[0]) * k / 6, from[1] + (p[1] - from[1]) * k / 6]));
      }
      if (between) await between();
    }
    await page.mouse.up();
  }
}

const waitReady = (page) => page.waitForFunction(
  () => document.getElementById('app').getAttribute('data-state') === 'ready', null, { timeout: 10000 });

async function shown(page) {
  return page.evaluate(() => ({
    verdict: document.getElementById('app').getAttribute('data-verdict'),
    digit: document.getElementById('digit').textContent.trim(),
    headline: document.getElementById('headline').textContent,
    live: document.getElementById('live-text').textContent,
    probs: [...document.querySelectorAll('[data-digit]')]
      .sort((a, b) => a.dataset.digit - b.dataset.digit)
      .map((b) => Number(b.getAttribute('data-p'))),
  }));
}

const twoLikeliest = (probs) => probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, 2);

test('accepted, not-a-digit and ambiguous answers: a rejected one never shows a big digit', async () => {
  const { page, errors, close } = await openPage();
  try {
    mock.setVerdict(null);
    await draw(page);
    await waitReady(page);
    let s = await shown(page);
    const [top] = twoLikeliest(s.probs);
    assert.equal(s.verdict, 'accepted');
    assert.equal(s.digit, String(top), 'an accepted answer shows its digit');

    mock.setVerdict('not_a_digit');
    await page.keyboard.press('Escape');
    await draw(page);
    await waitReady(page);
    s = await shown(page);
    assert.equal(s.verdict, 'not-a-digit');
    assert.equal(s.headline, 'That doesn\u2019t look like a digit');
    assert.doesNotMatch(s.digit, /^[0-9]$/, `no digit in the big box (${s.digit})`);
    assert.equal(s.live, s.headline, 'the line above the pad says the same');
    assert.equal(await page.locator('.bar.is-top').count(), 0, 'no bar is singled out');

    mock.setVerdict('ambiguous');
    await page.keyboard.press('Escape');
    await draw(page);
    await waitReady(page);
    s = await shown(page);
    const [a, b] = twoLikeliest(s.probs);
    assert.equal(s.verdict, 'ambiguous');
    assert.equal(s.headline, `Is it a ${a} or a ${b}?`, 'names the two likeliest digits');
    assert.doesNotMatch(s.digit, /^[0-9]$/, `no single digit in the big box (${s.digit})`);
    const size = await page.evaluate(() => parseFloat(getComputedStyle(document.getElementById('digit')).fontSize));
    assert.ok(size <= 40, `the two digits are drawn small (${size}px)`);
    assert.deepEqual(errors, []);
  } finally {
    mock.setVerdict(null);
    await close();
  }
});

test('fits 320 to 430 px: no sideways scrolling, the architecture wraps', async () => {
  for (const width of [320, 375, 430]) {
    const { page, close } = await openPage({ viewport: { width, height: 740 } });
    await draw(page);
    await waitReady(page);
    await page.waitForFunction(() => /parameters/.test(document.getElementById('model-info').textContent));
    const m = await page.evaluate(() => {
      const info = document.getElementById('model-info').getBoundingClientRect();
      return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        left: info.left, right: info.right };
    });
    assert.ok(m.scroll <= m.inner, `${width}px: the page is ${m.scroll}px wide`);
    assert.ok(m.left >= 0 && m.right <= m.inner, `${width}px: the model line is within the screen (${m.left}..${m.right})`);
    await close();
  }
});

test('on a phone the verdict stays in view while drawing', async () => {
  const { page, close } = await openPage({ viewport: { width: 375, height: 667 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
  try {
    await page.locator('#pad').scrollIntoViewIfNeeded();
    let seen = false;
    await draw(page, SEVEN, async () => {
      const inView = await page.evaluate(() => {
        const r = document.getElementById('live-result').getBoundingClientRect();
        const p = document.getElementById('pad').getBoundingClientRect();
        return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight &&
          p.top < window.innerHeight && p.bottom > 0 &&
          /Looks like|Maybe|digit/.test(document.getElementById('live-text').textContent);
      });
      if (inView) seen = true;
    });
    await waitReady(page);
    const live = await page.evaluate(() => {
      const r = document.getElementById('live-result').getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, h: window.innerHeight,
        text: document.getElementById('live-text').textContent };
    });
    assert.match(live.text, /^(Looks like|Maybe) a \d/, 'the line above the pad shows the guess');
    assert.ok(live.top >= 0 && live.bottom <= live.h, `the guess is on screen (${live.top}..${live.bottom} of ${live.h})`);
    assert.ok(seen, 'a guess was on screen above the pad during the drawing');
  } finally {
    await close();
  }
});

// WCAG 2 contrast of each secondary text against the colour behind it.
function contrasts(page) {
  return page.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const behind = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.9)) return c;
      }
      return rgb(getComputedStyle(document.body).backgroundColor);
    };
    const out = [];
    for (const sel of ['.tagline', '.detail', '.bar-value', '.pad-hint-sub', '.seen-sub',
      '.footer', '.footer-item', '.card-title', '.shortcuts', '.live-text', '.bar-label']) {
      for (const el of document.querySelectorAll(sel)) {
        if (!el.getClientRects().length) continue;           // not displayed here
        const st = getComputedStyle(el);
        if (st.visibility === 'hidden' || Number(st.opacity) < 1) continue;
        const l1 = lum(rgb(st.color)), l2 = lum(behind(el));
        out.push({ sel, ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05) });
      }
    }
    return out;
  });
}

test('secondary text and footer have at least 4.5:1 contrast in light and dark mode', async () => {
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [375, 1200]) {
      const { page, close } = await openPage({ colorScheme, viewport: { width, height: 860 } });
      await draw(page);
      await waitReady(page);
      const list = await contrasts(page);
      assert.ok(list.some((c) => c.sel === '.footer') && list.some((c) => c.sel === '.detail'),
        'the checks found the texts');
      const low = list.filter((c) => c.ratio < 4.5).map((c) => `${c.sel} ${c.ratio.toFixed(2)}`);
      assert.deepEqual(low, [], `${colorScheme} ${width}px: below 4.5:1`);
      await close();
    }
  }
});

test('every control works from the keyboard; an image chosen or pasted goes to /predict', async () => {
  const { page, errors, close } = await openPage();
  // Listening from the start: Playwright turns on its file-dialog
  // interception by a message of its own when the first listener comes,
  // and a key press that wins that race opens a dialog nobody reports (two
  // of four runs at load 3 waited 90 s for one).
  const choosers = [];
  page.on('filechooser', (c) => choosers.push(c));
  try {
    // Tab reaches every control, in page order.
    const reached = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      reached.push(await page.evaluate(() => {
        const e = document.activeElement;
        return e.id || (e.tagName === 'A' ? 'a:' + e.getAttribute('href') : e.tagName);
      }));
    }
    for (const id of ['undo', 'clear', 'upload', 'a:model']) {
      assert.ok(reached.includes(id), `Tab reaches ${id} (${reached.join(', ')})`);
    }
    const focusRing = await page.evaluate(() => {
      document.getElementById('upload').focus();
      return getComputedStyle(document.getElementById('upload')).outlineStyle;
    });
    assert.notEqual(focusRing, 'none', 'a focused control shows a ring');

    // Enter on the Image button opens the file dialog; the file is sent as is.
    const before = mock.requests.length;
    await page.focus('#upload');
    await page.keyboard.press('Enter');
    const deadline = Date.now() + 90000;
    while (choosers.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(choosers.length, 1, 'Enter on the Image button opens the file dialog once');
    const chooser = choosers[0];
    await chooser.setFiles(SEVEN_PNG);
    await waitReady(page);
    const sent = mock.requests.slice(before);
    assert.equal(sent.length, 1, 'one request for the chosen image');
    assert.equal(sent[0].contentType, 'image/png');
    assert.equal(sent[0].bytes, fs.statSync(SEVEN_PNG).size, 'the file\'s own bytes');
    assert.equal(await page.isVisible('#upload-preview'), true, 'the image is shown on the pad');

    // Undo and clear work from the keyboard on an image too.
    await page.focus('#undo');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('app').getAttribute('data-state') === 'empty');
    assert.equal(await page.isVisible('#upload-preview'), false);

    // A pasted image goes the same way.
    const pngB64 = fs.readFileSync(SEVEN_PNG).toString('base64');
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, pngB64);
    await waitReady(page);
    assert.equal(mock.requests.length, before + 2, 'the pasted image was sent');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.getElementById('app').getAttribute('data-state') === 'empty');
    // Drawing after an image replaces it.
    await page.evaluate(() => document.getElementById('upload-preview').hidden);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test('screenshots at 375 and 1200 px, light and dark', async () => {
  const cases = [['accepted', null], ['ambiguous', 'ambiguous'], ['not-a-digit', 'not_a_digit']];
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [375, 1200]) {
      for (const [name, verdict] of (width === 375 ? cases : cases.slice(0, 2))) {
        mock.setVerdict(verdict);
        const { page, close } = await openPage({ colorScheme, viewport: { width, height: width === 375 ? 740 : 860 }, deviceScaleFactor: 1 });
        await draw(page);
        await waitReady(page);
        await page.waitForTimeout(400);                      // the bars finish moving
        await page.screenshot({ path: path.join(ARTIFACTS, `states-${colorScheme}-${width}-${name}.png`), fullPage: true });
        await close();
      }
    }
  }
  mock.setVerdict(null);
});
