// Stroke paths of hand-like digits for the browser test.
//
// A drawing starts from a skeleton (a Hershey vector-font glyph, or one of
// the hand-written skeletons below), is densified into smooth polylines and
// then varied the way hands vary: a smooth random warp of the shape, width,
// slant, rotation, tremor, a size from a third of the pad to nearly all of
// it, and a position away from the centre. Coordinates returned are fractions
// of the pad (0..1), so the test can map them onto the canvas at any size.
//
// Two separate style sets:
// - "tuning": the styles the page's choices (pen width, smoothing) may be
//   checked against while developing;
// - "heldout": other fonts, other hand skeletons and another seed, never used
//   for tuning. The accuracy figure the test asserts on comes from this set.
// The generation parameters below were fixed before the first run against
// the real model and are not to be adjusted to make the figure better.

import { HERSHEY_DIGITS } from './hershey_digits.mjs';

// ---- random numbers (seeded, so every run draws the same digits) --------
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.uniform = (lo, hi) => lo + (hi - lo) * next();
  next.normal = () => {
    let u = 0;
    while (u === 0) u = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  next.shuffle = (arr) => {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr;
  };
  return next;
}

// ---- Hershey glyphs -------------------------------------------------------
export function parseHershey(glyph) {
  const strokes = [];
  let cur = [];
  for (let i = 2; i + 1 < glyph.length; i += 2) {
    const pair = glyph.slice(i, i + 2);
    if (pair === ' R') {
      if (cur.length) strokes.push(cur);
      cur = [];
      continue;
    }
    cur.push({ x: pair.charCodeAt(0) - 82, y: pair.charCodeAt(1) - 82 });
  }
  if (cur.length) strokes.push(cur);
  return strokes;
}

// ---- hand-written skeletons ----------------------------------------------
// Each digit is a list of strokes; each stroke a list of waypoints [x, y]
// in a box about 0.65 wide and 1 high (y down). A third element 'c' marks a
// corner: the smooth curve through the waypoints is broken there.
const HAND_SKELETONS = {
  // Set A (tuning): plain school print.
  A: {
    0: [[[0.33, 0.0], [0.1, 0.12], [0.02, 0.5], [0.12, 0.88], [0.33, 1.0], [0.53, 0.88],
         [0.62, 0.5], [0.54, 0.12], [0.33, 0.0], [0.25, 0.04]]],
    1: [[[0.12, 0.2], [0.36, 0.0, 'c'], [0.36, 1.0]]],
    2: [[[0.04, 0.25], [0.15, 0.06], [0.33, 0.0], [0.52, 0.07], [0.58, 0.25], [0.5, 0.47],
         [0.25, 0.75], [0.02, 1.0, 'c'], [0.62, 0.98]]],
    3: [[[0.05, 0.1], [0.3, 0.0], [0.52, 0.08], [0.55, 0.25], [0.42, 0.42], [0.22, 0.48, 'c'],
         [0.45, 0.53], [0.6, 0.7], [0.55, 0.9], [0.32, 1.0], [0.04, 0.92]]],
    4: [[[0.42, 0.0], [0.02, 0.66, 'c'], [0.64, 0.66]], [[0.48, 0.25], [0.48, 1.0]]],
    5: [[[0.12, 0.0], [0.08, 0.44, 'c'], [0.3, 0.38], [0.52, 0.45], [0.62, 0.66], [0.55, 0.9],
         [0.32, 1.0], [0.05, 0.92]], [[0.12, 0.0], [0.58, 0.0]]],
    6: [[[0.52, 0.02], [0.28, 0.12], [0.08, 0.42], [0.04, 0.72], [0.18, 0.96], [0.38, 0.98],
         [0.55, 0.82], [0.52, 0.6], [0.32, 0.5], [0.12, 0.6], [0.06, 0.72]]],
    7: [[[0.02, 0.02], [0.62, 0.0, 'c'], [0.4, 0.45], [0.24, 1.0]]],
    8: [[[0.52, 0.1], [0.32, 0.0], [0.1, 0.08], [0.1, 0.28], [0.32, 0.47], [0.56, 0.68],
         [0.52, 0.92], [0.3, 1.0], [0.08, 0.9], [0.08, 0.7], [0.3, 0.5], [0.5, 0.3], [0.52, 0.1]]],
    9: [[[0.56, 0.22], [0.4, 0.02], [0.15, 0.04], [0.04, 0.24], [0.15, 0.44], [0.38, 0.45],
         [0.56, 0.3], [0.58, 0.12, 'c'], [0.56, 1.0]]],
  },
  // Set B (held out): other habits: a 1 with a base, a looped 2, a flat-topped
  // 3, a closed 4, a one-stroke 5, a 7 with a crossbar, an 8 of two circles,
  // a 9 with a curved tail.
  B: {
    0: [[[0.4, 0.03], [0.55, 0.2], [0.58, 0.55], [0.45, 0.92], [0.25, 1.0], [0.08, 0.85],
         [0.04, 0.45], [0.15, 0.1], [0.35, 0.0], [0.45, 0.05]]],
    1: [[[0.1, 0.15], [0.32, 0.0, 'c'], [0.32, 1.0]], [[0.1, 1.0], [0.55, 1.0]]],
    2: [[[0.05, 0.22], [0.2, 0.03], [0.42, 0.0], [0.58, 0.15], [0.5, 0.42], [0.25, 0.72],
         [0.08, 0.92], [0.12, 1.0], [0.22, 0.92], [0.35, 0.94], [0.62, 1.0]]],
    3: [[[0.05, 0.02], [0.6, 0.02, 'c'], [0.28, 0.4, 'c'], [0.45, 0.42], [0.6, 0.6], [0.58, 0.85],
         [0.35, 1.0], [0.05, 0.9]]],
    4: [[[0.48, 0.0], [0.0, 0.66, 'c'], [0.66, 0.66]], [[0.48, 0.0], [0.48, 1.0]]],
    5: [[[0.6, 0.0], [0.12, 0.0, 'c'], [0.06, 0.42, 'c'], [0.35, 0.36], [0.58, 0.5], [0.6, 0.78],
         [0.4, 0.98], [0.15, 0.98], [0.02, 0.85]]],
    6: [[[0.45, 0.0], [0.15, 0.35], [0.04, 0.7], [0.15, 0.95], [0.35, 1.0], [0.55, 0.85],
         [0.52, 0.6], [0.3, 0.52], [0.1, 0.65]]],
    7: [[[0.0, 0.14], [0.02, 0.03, 'c'], [0.6, 0.0, 'c'], [0.3, 1.0]], [[0.18, 0.5], [0.58, 0.48]]],
    8: [[[0.3, 0.0], [0.08, 0.12], [0.1, 0.34], [0.3, 0.44], [0.5, 0.34], [0.52, 0.12], [0.3, 0.0]],
        [[0.3, 0.44], [0.05, 0.6], [0.04, 0.85], [0.3, 1.0], [0.57, 0.85], [0.56, 0.6], [0.3, 0.44]]],
    9: [[[0.55, 0.15], [0.35, 0.0], [0.1, 0.06], [0.05, 0.3], [0.2, 0.45], [0.45, 0.4],
         [0.56, 0.15, 'c'], [0.58, 0.5], [0.5, 0.85], [0.3, 1.0], [0.1, 0.95]]],
  },
};

// Centripetal Catmull-Rom through the waypoints, broken at corners.
function catmullRom(pts, perSegment) {
  if (pts.length < 3) return pts.slice();
  const out = [pts[0]];
  const P = [pts[0], ...pts, pts[pts.length - 1]];
  for (let i = 1; i < P.length - 2; i++) {
    const [p0, p1, p2, p3] = [P[i - 1], P[i], P[i + 1], P[i + 2]];
    const d = (a, b) => Math.max(1e-6, Math.pow(Math.hypot(b.x - a.x, b.y - a.y), 0.5));
    const t0 = 0, t1 = t0 + d(p0, p1), t2 = t1 + d(p1, p2), t3 = t2 + d(p2, p3);
    for (let k = 1; k <= perSegment; k++) {
      const t = t1 + (t2 - t1) * (k / perSegment);
      const lerp = (a, b, ta, tb) => ({
        x: ((tb - t) * a.x + (t - ta) * b.x) / (tb - ta),
        y: ((tb - t) * a.y + (t - ta) * b.y) / (tb - ta),
      });
      const A1 = lerp(p0, p1, t0, t1), A2 = lerp(p1, p2, t1, t2), A3 = lerp(p2, p3, t2, t3);
      const B1 = lerp(A1, A2, t0, t2), B2 = lerp(A2, A3, t1, t3);
      out.push(lerp(B1, B2, t1, t2));
    }
  }
  return out;
}

function handStrokes(set, digit) {
  return HAND_SKELETONS[set][digit].map((stroke) => {
    const pts = stroke.map(([x, y, c]) => ({ x, y, corner: c === 'c' }));
    const pieces = [];
    let piece = [pts[0]];
    for (let i = 1; i < pts.length; i++) {
      piece.push(pts[i]);
      if (pts[i].corner && i < pts.length - 1) {
        pieces.push(piece);
        piece = [pts[i]];
      }
    }
    pieces.push(piece);
    const out = [];
    for (const p of pieces) {
      const curve = catmullRom(p, 12);
      out.push(...(out.length ? curve.slice(1) : curve));
    }
    return out.map(({ x, y }) => ({ x, y }));
  });
}

export function skeleton(source, digit) {
  if (source.kind === 'hershey') return parseHershey(HERSHEY_DIGITS[source.font][digit]);
  return handStrokes(source.set, digit);
}

// ---- geometry helpers -----------------------------------------------------
function bbox(strokes) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const s of strokes) for (const p of s) {
    minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
    minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
  }
  return { minX, minY, maxX, maxY, w: maxX - minX, h: maxY - minY };
}

function mapPoints(strokes, f) {
  return strokes.map((s) => s.map(f));
}

// Points every `step` along the polyline (always keeping both ends).
function resample(stroke, step) {
  if (stroke.length < 2) return stroke.slice();
  const out = [stroke[0]];
  let carry = 0;
  for (let i = 1; i < stroke.length; i++) {
    const a = stroke[i - 1], b = stroke[i];
    const len = Math.hypot(b.x - a.x, b.y - a.y);
    let pos = step - carry;
    while (pos <= len) {
      const t = pos / len;
      out.push({ x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t });
      pos += step;
    }
    carry = len - (pos - step);
  }
  const last = stroke[stroke.length - 1];
  const end = out[out.length - 1];
  if (Math.hypot(last.x - end.x, last.y - end.y) > step * 0.2) out.push(last);
  return out;
}

// Smooth noise along a stroke: a low-passed random walk.
function tremor(stroke, rng, sigma) {
  let ox = 0, oy = 0;
  return stroke.map((p) => {
    ox = 0.85 * ox + 0.15 * rng.normal() * sigma * 2.5;
    oy = 0.85 * oy + 0.15 * rng.normal() * sigma * 2.5;
    return { x: p.x + ox, y: p.y + oy };
  });
}

// ---- one drawing ------------------------------------------------------------
// Returns strokes in pad fractions and what was done to the skeleton.
export function makeDrawing(source, digit, rng, sizeFrac) {
  let strokes = skeleton(source, digit);

  // Unit height, centred at the origin, densified so warps bend smoothly.
  const b0 = bbox(strokes);
  const h0 = b0.h || 1;
  strokes = mapPoints(strokes, (p) => ({
    x: (p.x - (b0.minX + b0.maxX) / 2) / h0,
    y: (p.y - (b0.minY + b0.maxY) / 2) / h0,
  }));
  strokes = strokes.map((s) => resample(s, 0.01));

  // A smooth warp of the shape.
  const ax = rng.uniform(0, 0.035), ay = rng.uniform(0, 0.035);
  const fx = rng.uniform(0.3, 0.8), fy = rng.uniform(0.3, 0.8);
  const px = rng.uniform(0, 2 * Math.PI), py = rng.uniform(0, 2 * Math.PI);
  strokes = mapPoints(strokes, (p) => ({
    x: p.x + ax * Math.sin(2 * Math.PI * fy * p.y + px),
    y: p.y + ay * Math.sin(2 * Math.PI * fx * p.x + py),
  }));

  // Width, slant (mostly to the right, as most hands lean) and rotation.
  const aspect = rng.uniform(0.85, 1.15);
  const slantDeg = rng.uniform(-8, 20);
  const rotDeg = rng.uniform(-6, 6);
  const sl = Math.tan((slantDeg * Math.PI) / 180);
  const c = Math.cos((rotDeg * Math.PI) / 180), s = Math.sin((rotDeg * Math.PI) / 180);
  strokes = mapPoints(strokes, (p) => {
    const x = p.x * aspect - sl * p.y;
    const y = p.y;
    return { x: c * x - s * y, y: s * x + c * y };
  });

  // A slightly unsteady hand.
  strokes = strokes.map((st) => tremor(st, rng, rng.uniform(0.002, 0.006)));

  // Size and position on the pad: the larger side is sizeFrac of the pad,
  // the centre anywhere that keeps the skeleton 4% inside the edges.
  const b1 = bbox(strokes);
  const scale = sizeFrac / Math.max(b1.w, b1.h, 1e-6);
  const w = b1.w * scale, h = b1.h * scale;
  const margin = 0.04;
  const left = rng.uniform(margin, Math.max(margin, 1 - margin - w));
  const top = rng.uniform(margin, Math.max(margin, 1 - margin - h));
  strokes = mapPoints(strokes, (p) => ({
    x: left + (p.x - b1.minX) * scale,
    y: top + (p.y - b1.minY) * scale,
  }));

  // Pointer samples as a 60 Hz mouse delivers them to a hand that covers
  // 2 to 4 digit-heights of path a second (about a second per digit; on a
  // 280 px pad that is 3 to 19 px between samples, depending on the size).
  const speed = rng.uniform(2, 4) * sizeFrac;
  const step = Math.max(0.008, speed / 60);
  strokes = strokes.map((st) => resample(st, step));

  return {
    strokes,
    meta: {
      size: +sizeFrac.toFixed(2),
      slant: +slantDeg.toFixed(1),
      rotation: +rotDeg.toFixed(1),
      centre: [+(left + w / 2).toFixed(2), +(top + h / 2).toFixed(2)],
    },
  };
}

// ---- the style sets ---------------------------------------------------------
export const STYLE_SETS = {
  tuning: {
    seed: 0x5eed0001,
    perDigit: 4,
    sources: [
      { name: 'hershey-simplex', kind: 'hershey', font: 'futural' },
      { name: 'hershey-complex', kind: 'hershey', font: 'timesr' },
      { name: 'hand-A', kind: 'hand', set: 'A' },
    ],
  },
  heldout: {
    seed: 0x4e1d0017,
    perDigit: 6,
    sources: [
      { name: 'hershey-script', kind: 'hershey', font: 'scripts' },
      { name: 'hershey-duplex', kind: 'hershey', font: 'futuram' },
      { name: 'hand-B', kind: 'hand', set: 'B' },
    ],
  },
};

const MIN_SIZE = 1 / 3;
const MAX_SIZE = 0.92;

// All drawings of one set, in a shuffled order: each digit perDigit times,
// cycling through the sources, with sizes spread evenly from a third of the
// pad to nearly all of it.
export function buildSet(name) {
  const set = STYLE_SETS[name];
  const rng = makeRng(set.seed);
  const drawings = [];
  for (let digit = 0; digit < 10; digit++) {
    const bands = rng.shuffle([...Array(set.perDigit).keys()]);
    for (let i = 0; i < set.perDigit; i++) {
      const source = set.sources[i % set.sources.length];
      const sizeFrac = MIN_SIZE + (MAX_SIZE - MIN_SIZE) * ((bands[i] + rng()) / set.perDigit);
      const d = makeDrawing(source, digit, rng, sizeFrac);
      drawings.push({ set: name, label: digit, style: source.name, ...d });
    }
  }
  return rng.shuffle(drawings);
}

// A skeleton as it is, without hand variation: sizeFrac of the pad, centred
// on `centre`. For the tests of clear, undo and touch input.
export function plainDrawing(source, digit, sizeFrac = 0.7, centre = [0.5, 0.5], step = 0.012) {
  const strokes = skeleton(source, digit);
  const b = bbox(strokes);
  const scale = sizeFrac / Math.max(b.w, b.h, 1e-6);
  return strokes.map((s) => resample(s.map((p) => ({
    x: centre[0] + (p.x - (b.minX + b.maxX) / 2) * scale,
    y: centre[1] + (p.y - (b.minY + b.maxY) / 2) * scale,
  })), step));
}
