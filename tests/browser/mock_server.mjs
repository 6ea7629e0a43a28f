// A stand-in for the daemon, for working on the page without a model:
// serves web/ with the page's Content-Security-Policy and answers
// POST /predict with made-up probabilities (and a crude "what the model saw"
// input made from the PNG the page sent). draw_digits.test.mjs runs against
// the real daemon; page_states.test.mjs uses this mock to put the page in
// every state (verdicts, errors) on demand.
//
//   node mock_server.mjs [port]        then open http://127.0.0.1:<port>/
//   MOCK_FAIL=503 node mock_server.mjs  answers every /predict with that status
//   MOCK_VERDICT=ambiguous node mock_server.mjs   (or not_a_digit): every
//                                      answer is rejected with that reason
//
// Answers carry the verdict fields of the API: "accepted" (true unless a
// verdict is set) and, when rejected, "reason". startMock() returns
// {server, port, setVerdict(reason|null), requests} for tests.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PAGE_CSP = "default-src 'self'";

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

// Decodes the 8-bit RGBA or RGB, non-interlaced PNGs canvas.toDataURL makes.
function decodePng(buf) {
  let off = 8, width = 0, height = 0, type = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const kind = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (kind === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); type = data[9]; }
    if (kind === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const bpp = type === 6 ? 4 : type === 2 ? 3 : type === 0 ? 1 : 0;
  if (!bpp) throw new Error('unsupported PNG colour type ' + type);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[y * stride + x - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[(y - 1) * stride + x - bpp] : 0;
      let v = line[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = v & 255;
    }
  }
  const ink = new Float32Array(width * height);   // 1 = ink (dark, opaque)
  for (let i = 0; i < width * height; i++) {
    const r = out[i * bpp], g = bpp >= 3 ? out[i * bpp + 1] : r, bl = bpp >= 3 ? out[i * bpp + 2] : r;
    const alpha = bpp === 4 ? out[i * bpp + 3] / 255 : 1;
    ink[i] = alpha * (1 - (r + g + bl) / 765);
  }
  return { width, height, ink };
}

// Bounding box scaled into 20x20, centred in 28x28: enough for a preview.
function crudeInput({ width, height, ink }) {
  let minX = width, minY = height, maxX = -1, maxY = -1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    if (ink[y * width + x] > 0.1) {
      minX = Math.min(minX, x); maxX = Math.max(maxX, x);
      minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
  }
  const input = new Array(784).fill(0);
  if (maxX < 0) return input;
  const side = Math.max(maxX - minX + 1, maxY - minY + 1);
  const scale = 20 / side;
  const ox = 14 - ((maxX - minX + 1) * scale) / 2, oy = 14 - ((maxY - minY + 1) * scale) / 2;
  for (let y = minY; y <= maxY; y++) for (let x = minX; x <= maxX; x++) {
    const tx = Math.floor(ox + (x - minX) * scale), ty = Math.floor(oy + (y - minY) * scale);
    if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) input[ty * 28 + tx] += ink[y * width + x] * scale * scale;
  }
  return input.map((v) => Math.min(1, v));
}

function fakeProbabilities(input) {
  let h = 0;
  input.forEach((v, i) => { h = (h * 31 + Math.round(v * 7) * (i + 1)) >>> 0; });
  const logits = Array.from({ length: 10 }, (_, i) => ((h >>> (i * 3)) & 7) + (i === h % 10 ? 6 : 0));
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function startMock({ port = 0, webRoot = path.join(here, '..', '..', 'web') } = {}) {
  let verdict = process.env.MOCK_VERDICT || null;   // null, 'not_a_digit' or 'ambiguous'
  const requests = [];                               // {contentType, bytes} of each /predict
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/predict') {
      if (req.method !== 'POST') return json(res, 405, { error: { status: 405, message: 'use POST' } });
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (process.env.MOCK_FAIL) {
          const st = +process.env.MOCK_FAIL;
          return json(res, st, { error: { status: st, message: 'mock failure' } });
        }
        requests.push({ contentType: req.headers['content-type'] || '', bytes: Buffer.concat(chunks).length });
        try {
          let png = Buffer.concat(chunks);
          if (/json/.test(req.headers['content-type'] || '')) {
            const body = JSON.parse(png.toString('utf8'));
            png = Buffer.from(String(body.image).replace(/^data:[^,]*,/, ''), 'base64');
          }
          const input = crudeInput(decodePng(png));
          const probabilities = fakeProbabilities(input);
          const digit = probabilities.indexOf(Math.max(...probabilities));
          const out = { digit, confidence: probabilities[digit], probabilities,
            model: 'mock-conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10@0123456789ab',
            accepted: !verdict };
          if (verdict) out.reason = verdict;
          if (url.searchParams.get('include') === 'input') out.input = input;
          setTimeout(() => json(res, 200, out), 30);
        } catch (err) {
          json(res, 400, { error: { status: 400, message: String(err.message || err) } });
        }
      });
      return;
    }
    if (url.pathname === '/model') {
      return json(res, 200, {
        id: 'mock@0123456789ab', name: 'cnn-conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10',
        parameters: 857738, test_accuracy: 0.9956,
      });
    }
    const rel = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    const file = path.join(webRoot, path.normalize(rel));
    if (!file.startsWith(webRoot) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      return json(res, 404, { error: { status: 404, message: 'not found' } });
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
      'Content-Security-Policy': PAGE_CSP,
      'X-Content-Type-Options': 'nosniff',
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => resolve({
      server, port: server.address().port, requests,
      setVerdict(reason) { verdict = reason || null; },
    }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { port } = await startMock({ port: +(process.argv[2] || 8099) });
  console.log(`mock digitd on http://127.0.0.1:${port}/`);
}
