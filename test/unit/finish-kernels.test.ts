// The exact finish's per-element kernels (src/engine/analysis/cross/finishKernels.ts,
// kernels/assembly/finish.ts) against the JS loops they replace, written out here as they were:
// bit for bit, on float32 and float64 sums, on 1 and 3 threads, with ties, NaN, values that
// clamp, constant columns and rows whose 1/σ is 0, over more rows than one chunk holds.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { partnerMax, ScreenKernels } from '../../src/engine/analysis/cross/finishKernels';
import { clampCorr } from '../../src/engine/analysis/cross/common';
import { setKernelThreads } from '../../src/engine/kernels/pool';
import { rng } from '../helpers/synthetic-run';

after(() => setKernelThreads(0));

const same = (a: ArrayLike<number>, b: ArrayLike<number>, what: string): void => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

/** finishExact's loop as it was (cross/dense.ts before the kernel). */
function partnerMaxJs(sxy: ArrayLike<number>, B: number, Nm: number, sx: Float64Array, ix: Float64Array, my: Float64Array, iy: Float64Array, best: Float64Array, arg: Int32Array): void {
  for (let i = 0; i < B; i++) {
    if (ix[i] === 0) continue;
    const row = i * Nm;
    let b = -Infinity;
    let a = -1;
    for (let j = 0; j < Nm; j++) {
      const r = clampCorr((sxy[row + j]! - sx[i]! * my[j]!) * ix[i]! * iy[j]!);
      if (r > b) {
        b = r;
        a = j;
      }
    }
    best[i] = b;
    arg[i] = a;
  }
}

function data(B: number, Nm: number, seed: number) {
  const r = rng(seed);
  const g = (): number => (r() - 0.5) * 4;
  const s64 = Float64Array.from({ length: B * Nm }, g);
  // Ties (a repeated row value), a NaN, huge values that clamp.
  for (let i = 0; i < B; i++) s64[i * Nm + (i % Nm)] = s64[i * Nm + ((i + 7) % Nm)]!;
  s64[3 * Nm + 5] = NaN;
  s64[4 * Nm + 2] = 1e30;
  s64[5 * Nm + 9] = -1e30;
  const sx = Float64Array.from({ length: B }, g);
  const ix = Float64Array.from({ length: B }, (_, i) => (i % 11 === 4 ? 0 : 0.1 + r()));
  const my = Float64Array.from({ length: Nm }, g);
  const iy = Float64Array.from({ length: Nm }, (_, j) => (j % 13 === 6 ? 0 : 0.1 + r()));
  return { s64, s32: Float32Array.from(s64), sx, ix, my, iy };
}

test('partnerMax: bit-identical to the JS loop on float32 and float64 sums, 1 and 3 threads, several chunks', () => {
  // 40 MB of float64 rows: more than one 32 MB chunk.
  const B = 170;
  const Nm = 30_011;
  const D = data(B, Nm, 5);
  for (const threads of [1, 3]) {
    setKernelThreads(threads);
    for (const s of [D.s32, D.s64]) {
      const want = { best: new Float64Array(B), arg: new Int32Array(B).fill(-1) };
      partnerMaxJs(s, B, Nm, D.sx, D.ix, D.my, D.iy, want.best, want.arg);
      const got = { best: new Float64Array(B), arg: new Int32Array(B).fill(-1) };
      partnerMax(s, B, Nm, D.sx, D.ix, D.my, D.iy, got.best, got.arg);
      const what = `${s.constructor.name}, ${threads} threads`;
      same(got.best, want.best, `${what} best`);
      same(got.arg, want.arg, `${what} arg`);
      assert.equal(got.arg[4], -1, 'a row with 1/σ = 0 is left alone');
      assert.ok(got.arg.some((a, i) => a >= 0 && D.ix[i] !== 0));
    }
  }
});

test('covRows and screenScan: bit-identical to rotatedMax and screenRefine loops, 1 and 3 threads', () => {
  const B = 37;
  const d = 96;
  const L = 3;
  const Nm = L * d;
  const n = 1000;
  const D = data(B, Nm, 9);
  const r = rng(11);
  for (const threads of [1, 3]) {
    setKernelThreads(threads);
    for (const sxy of [D.s32, D.s64]) {
      const step = 16;
      // 5 rows per kernel call: the calls' boundaries fall inside the 16-row chunks.
      const K = new ScreenKernels(d, sxy instanceof Float64Array, 5 * d * 28);
      assert.equal(K.sub, 5);
      for (let l = 0; l < L; l++) {
        const off = l * d;
        const syl = Float64Array.from({ length: d }, () => (r() - 0.5) * 10);
        const cy = Uint8Array.from({ length: d }, (_, b) => (b % 17 === 3 ? 1 : 0));
        K.setLayer(syl, cy);
        for (let i0 = 0; i0 < B; i0 += step) {
          const rows = Math.min(step, B - i0);
          const k = { cov: new Float64Array(rows * d), cov32: new Float32Array(rows * d), sumSq: new Float64Array(rows) };
          K.cov(sxy, Nm, off, i0, rows, D.sx, n, k);
          // rotatedMax's loop as it was.
          const cov = new Float64Array(rows * d);
          const cov32 = new Float32Array(rows * d);
          const sumSq = new Float64Array(rows);
          for (let q = 0; q < rows; q++) {
            const src = (i0 + q) * Nm + off;
            let s = 0;
            for (let b = 0; b < d; b++) {
              const v = cy[b] ? 0 : sxy[src + b]! - (D.sx[i0 + q]! * syl[b]!) / n;
              cov[q * d + b] = v;
              cov32[q * d + b] = v;
              s += v * v;
            }
            sumSq[q] = s;
          }
          const what = `${sxy.constructor.name}, ${threads} threads, layer ${l}, rows ${i0}`;
          same(k.cov, cov, `${what} cov`);
          same(k.cov32, cov32, `${what} cov32`);
          same(k.sumSq, sumSq, `${what} sumSq`);

          // screenRefine's pass as it was, on a screen with ties and a NaN.
          const P = Float32Array.from({ length: rows * d }, () => Math.round((r() - 0.5) * 64) / 8);
          P[0] = NaN;
          const ix = Float64Array.from({ length: rows }, (_, q) => (q === 2 ? 0 : 0.5 + r()));
          const e = Float64Array.from({ length: rows }, () => r() * 0.3);
          const irv = Float64Array.from({ length: d }, (_, b) => (b % 19 === 1 ? 0 : 0.5 + r()));
          const best = Float64Array.from({ length: rows }, (_, q) => (q % 3 === 0 ? -Infinity : r() - 0.5));
          for (let q = 0; q < rows; q++) {
            const q0: number = q - (q % K.sub);
            const got = K.scan(P, q0, Math.min(K.sub, rows - q0), ix, e, irv, best);
            const w: number = q - q0;
            const xi = ix[q]!;
            const cand: number[] = [];
            let thr = best[q]!;
            let lbMax = -Infinity;
            let seed = -1;
            if (xi !== 0) {
              for (let b = 0; b < d; b++) {
                const t = P[q * d + b]! * xi;
                const s = irv[b]!;
                const lb = (t - e[q]!) * s;
                if (lb > lbMax) {
                  lbMax = lb;
                  seed = b;
                  if (lb > thr) thr = lb;
                }
                if (!((t + e[q]!) * s < thr)) cand.push(b);
              }
            }
            assert.equal(got.nc[w], cand.length, `${what} row ${q}: candidates`);
            same(got.cand.subarray(w * d, w * d + cand.length), cand, `${what} row ${q}: candidate list`);
            assert.ok(Object.is(got.lbMax[w], lbMax), `${what} row ${q}: largest lower bound`);
            assert.equal(got.seed[w], seed, `${what} row ${q}: its k`);
          }
        }
      }
    }
  }
});
