// Renders every generated drawing of the style sets into contact sheets
// (artifacts/styles-<set>.png), to check by eye that they are digits a
// person would read correctly. Not part of the test; run: node preview_styles.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSet } from './digit_strokes.mjs';
import { launchChromium } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = process.env.DIGITD_ARTIFACTS || path.join(here, 'artifacts');
fs.mkdirSync(outDir, { recursive: true });

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
for (const name of ['tuning', 'heldout']) {
  const drawings = buildSet(name).sort((a, b) => a.label - b.label);
  await page.setContent('<body style="margin:8px;background:#fff;font:11px sans-serif"><div id=g style="display:grid;grid-template-columns:repeat(10,112px);gap:6px"></div></body>');
  await page.evaluate((drawings) => {
    const g = document.getElementById('g');
    for (const d of drawings) {
      const wrap = document.createElement('div');
      const c = document.createElement('canvas');
      c.width = 112; c.height = 112;
      c.style.border = '1px solid #ccc';
      const x = c.getContext('2d');
      let minX = 1, maxX = 0, minY = 1, maxY = 0;
      for (const s of d.strokes) for (const p of s) {
        minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
        minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
      }
      x.lineWidth = Math.max(6 / 280, Math.min(36 / 280, 0.12 * Math.max(maxX - minX, maxY - minY))) * 112; // as web/app.js
      x.lineCap = 'round'; x.lineJoin = 'round';
      for (const s of d.strokes) {
        x.beginPath();
        // the page's smoothing: quadratic curves through the midpoints
        const P = s.map((p) => ({ x: p.x * 112, y: p.y * 112 }));
        x.moveTo(P[0].x, P[0].y);
        if (P.length === 1) x.lineTo(P[0].x + 0.01, P[0].y);
        for (let i = 1; i < P.length - 1; i++) {
          x.quadraticCurveTo(P[i].x, P[i].y, (P[i].x + P[i + 1].x) / 2, (P[i].y + P[i + 1].y) / 2);
        }
        if (P.length > 1) x.lineTo(P[P.length - 1].x, P[P.length - 1].y);
        x.stroke();
      }
      const cap = document.createElement('div');
      cap.textContent = `${d.label} ${d.style}`;
      wrap.append(c, cap);
      g.append(wrap);
    }
  }, drawings);
  const file = path.join(outDir, `styles-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log('wrote', file);
}
await browser.close();
