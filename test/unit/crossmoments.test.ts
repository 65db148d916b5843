// Over 600 lines: one accumulator's tests, sharing the data builders and direct float64 references
// at the top (exact, planted, blocks and resume, the baseline finish, inputs, rotations, fast mode,
// the SDDMM arena). The seam if it grows: fast mode and SddmmArena (from line ~600) apart.
// CrossMoments against direct float64 computations on the same data: Pearson maxima, the
// rotation baseline done the long way (R·V materialised), planted universal neurons, blocks and
// resume. Data on a grid of 1/8 with small magnitudes keeps every fp32 partial sum exact, so the
// streaming result must match float64 to rounding; Gaussian data checks the fp32 path's error.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CrossMoments, CrossMomentsOptions, CrossMomentsResult, rotationMatrix, screenRefine } from '../../src/engine/analysis/crossmoments';
import { Gemm } from '../../src/engine/analysis/gemm';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { EngineError } from '../../src/engine/errors';
import { keptBatch } from '../helpers/batches';
import { rng } from '../helpers/synthetic-run';

const gemm = new Gemm({ threads: 2 });
after(() => gemm.release());


function gauss(r: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Splits [T × N] activations of several models into batches of the given kept-token sizes. */
function batches(models: Float32Array[], widths: number[], sizes: number[]): ActivationBatch[] {
  let t0 = 0;
  return sizes.map((n, b) => {
    const ms = models.map((m, i) => m.slice(t0 * widths[i]!, (t0 + n) * widths[i]!));
    t0 += n;
    return keptBatch(ms, n, b);
  });
}

function splitSizes(T: number, r: () => number, max: number): number[] {
  const s: number[] = [];
  let left = T;
  while (left > 0) {
    const n = Math.min(left, 1 + Math.floor(r() * max));
    s.push(n);
    left -= n;
  }
  return s;
}

async function run(opts: CrossMomentsOptions, bs: ActivationBatch[]): Promise<CrossMomentsResult> {
  const c = new CrossMoments({ gemm, ...opts });
  for (const b of bs) await c.add(b);
  return c.finish();
}

/** Column j of a [T × N] matrix as float64. */
function col(m: Float32Array, N: number, j: number, T: number): Float64Array {
  const v = new Float64Array(T);
  for (let t = 0; t < T; t++) v[t] = m[t * N + j]!;
  return v;
}

/** Two-pass float64 Pearson; 0 when either side is constant. */
function pearson(x: Float64Array, y: Float64Array): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let t = 0; t < n; t++) {
    mx += x[t]!;
    my += y[t]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let t = 0; t < n; t++) {
    const a = x[t]! - mx;
    const b = y[t]! - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (sxx === 0 || syy === 0) return 0;
  return sxy / Math.sqrt(sxx * syy);
}

interface Direct {
  maxCorr: number[];
  partner: number[];
  baseline: number[];
  baselinePartner: number[];
}

/**
 * The paper's two-pass algorithm in float64: correlations with every neuron of m, then m's
 * layers replaced by R_l·V_l explicitly and the correlations taken again.
 */
function direct(X: Float32Array, Na: number, Y: Float32Array, L: number, d: number, T: number, seed: number): Direct {
  const Nm = L * d;
  const ys = Array.from({ length: Nm }, (_, j) => col(Y, Nm, j, T));
  const rv: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    const R = rotationMatrix(seed, l, d);
    for (let k = 0; k < d; k++) {
      const v = new Float64Array(T);
      for (let t = 0; t < T; t++) {
        let s = 0;
        for (let b = 0; b < d; b++) s += R[k * d + b]! * Y[t * Nm + l * d + b]!;
        v[t] = s;
      }
      rv.push(v);
    }
  }
  const out: Direct = { maxCorr: [], partner: [], baseline: [], baselinePartner: [] };
  for (let i = 0; i < Na; i++) {
    const x = col(X, Na, i, T);
    let best = -Infinity;
    let arg = -1;
    let bb = -Infinity;
    let barg = -1;
    for (let j = 0; j < Nm; j++) {
      const r = pearson(x, ys[j]!);
      if (r > best) [best, arg] = [r, j];
      const q = pearson(x, rv[j]!);
      if (q > bb) [bb, barg] = [q, j];
    }
    out.maxCorr.push(best);
    out.partner.push(arg);
    out.baseline.push(bb);
    out.baselinePartner.push(barg);
  }
  return out;
}

/** Values k/8 with |v| ≤ 4: products are multiples of 1/64 below 16, so fp32 sums of ≤ 64 are exact. */
function gridData(T: number, N: number, r: () => number, mix?: (t: number, row: Float32Array) => void): Float32Array {
  const m = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    const row = m.subarray(t * N, (t + 1) * N);
    for (let j = 0; j < N; j++) row[j] = Math.round((r() - 0.5) * 8 * 8) / 8;
    mix?.(t, row);
  }
  return m;
}

describe('CrossMoments: exact mode against float64', () => {
  it('max correlation, partner and the rotation baseline equal the explicit two-pass computation', async () => {
    const r = rng(1);
    const T = 500;
    const ref = { nLayers: 3, dMlp: 8 };
    const other = { nLayers: 2, dMlp: 12 };
    const Na = 24;
    const Nm = 24;
    const X = gridData(T, Na, r);
    // m's neurons share a few latent factors with a, so the maxima and the baseline are not noise.
    const Y = gridData(T, Nm, r, (t, row) => {
      for (let j = 0; j < Nm; j += 3) row[j] = Math.max(-4, Math.min(4, Math.round((X[t * Na + ((j * 7) % Na)]! + row[j]! / 2) * 8) / 8));
    });
    const sizes = splitSizes(T, r, 90);
    const res = await run({ model: 1, ref, other, seed: 12345, chunkTokens: 64 }, batches([X, Y], [Na, Nm], sizes));
    const want = direct(X, Na, Y, other.nLayers, other.dMlp, T, 12345);
    assert.equal(res.n, T);
    assert.equal(res.refStart, 0);
    for (let i = 0; i < Na; i++) {
      assert.ok(Math.abs(res.maxCorr[i]! - want.maxCorr[i]!) < 1e-9, `max_corr ${i}: ${res.maxCorr[i]} vs ${want.maxCorr[i]}`);
      assert.equal(res.partner[i], want.partner[i], `partner of ${i}`);
      assert.ok(Math.abs(res.baseline[i]! - want.baseline[i]!) < 1e-6, `baseline ${i}: ${res.baseline[i]} vs ${want.baseline[i]}`);
      assert.equal(res.baselinePartner[i], want.baselinePartner[i], `baseline partner of ${i}`);
    }
    // The data must make the comparison meaningful: real partners and a non-trivial baseline.
    assert.ok(Math.max(...res.maxCorr) > 0.8);
    assert.ok(Math.min(...res.baseline) > 0.05);
  });

  it('on continuous data the fp32 GEMM path stays within 1e-5 of float64', async () => {
    const r = rng(2);
    const g = gauss(r);
    const T = 3000;
    const Na = 16;
    const L = 2;
    const d = 16;
    const X = new Float32Array(T * Na).map(() => g() + 0.5);
    const Y = new Float32Array(T * L * d);
    for (let t = 0; t < T; t++) for (let j = 0; j < L * d; j++) Y[t * L * d + j] = 0.6 * X[t * Na + (j % Na)]! + g() * 0.8 - 0.2;
    const res = await run(
      { model: 1, ref: { nLayers: 1, dMlp: Na }, other: { nLayers: L, dMlp: d }, seed: 7 },
      batches([X, Y], [Na, L * d], [1000, 1000, 1000]),
    );
    const want = direct(X, Na, Y, L, d, T, 7);
    for (let i = 0; i < Na; i++) {
      assert.ok(Math.abs(res.maxCorr[i]! - want.maxCorr[i]!) < 1e-5, `max_corr ${i}`);
      assert.ok(Math.abs(res.baseline[i]! - want.baseline[i]!) < 1e-5, `baseline ${i}`);
    }
  });
});

/**
 * Model b copies chosen neurons of model a (scaled, shifted, noisy) into other layers and
 * positions; everything else is independent. Returns the data and the planted map.
 */
function planted(T: number, L: number, d: number, seed: number) {
  const r = rng(seed);
  const g = gauss(r);
  const N = L * d;
  const X = new Float32Array(T * N);
  const Y = new Float32Array(T * N);
  const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
  for (let i = 0; i < X.length; i++) X[i] = gelu(g() - 0.5);
  for (let i = 0; i < Y.length; i++) Y[i] = gelu(g() - 0.5);
  // reference column -> column in b
  const plant = new Map<number, number>([
    [0 * d + 3, 2 * d + 10],
    [1 * d + 0, 0 * d + 5],
    [2 * d + 7, 1 * d + 60],
    [2 * d + 8, 2 * d + 0],
    [0 * d + 63, 1 * d + 1],
  ]);
  for (const [i, j] of plant) {
    const scale = 0.5 + r();
    for (let t = 0; t < T; t++) Y[t * N + j] = scale * X[t * N + i]! + 0.3 + 0.1 * g();
  }
  // A constant neuron on each side: ρ must be 0, never NaN.
  const constA = 1 * d + 9;
  const constB = 0 * d + 11;
  for (let t = 0; t < T; t++) {
    X[t * N + constA] = 0.1;
    Y[t * N + constB] = -0.17;
  }
  return { X, Y, N, plant, constA, constB };
}

describe('CrossMoments: planted universal neurons', () => {
  it('finds exactly the planted neurons (excess > 0.5) with the right partner; constant neurons give 0', async () => {
    const L = 3;
    const d = 64;
    const T = 4000;
    const p = planted(T, L, d, 3);
    const shape = { nLayers: L, dMlp: d };
    const res = await run({ model: 1, ref: shape, other: shape, seed: 99, chunkTokens: 1500 }, batches([p.X, p.Y], [p.N, p.N], [1200, 1200, 1600]));
    const universal: number[] = [];
    for (let i = 0; i < p.N; i++) {
      assert.ok(Number.isFinite(res.maxCorr[i]!) && Number.isFinite(res.baseline[i]!), `finite ${i}`);
      if (res.maxCorr[i]! - res.baseline[i]! > 0.5) universal.push(i);
    }
    assert.deepEqual(universal, [...p.plant.keys()].sort((a, b) => a - b));
    for (const [i, j] of p.plant) {
      assert.equal(res.partner[i], j, `partner of L${Math.floor(i / d)}.N${i % d}`);
      assert.ok(res.maxCorr[i]! > 0.9);
    }
    assert.equal(res.maxCorr[p.constA], 0);
    assert.equal(res.baseline[p.constA], 0);
    assert.equal(res.partner[p.constA], -1);
    // Nobody's partner is b's constant neuron unless everything is ≤ 0 (not the case here).
    for (let i = 0; i < p.N; i++) assert.notEqual(res.partner[i], p.constB);
    // ρ against direct float64 Pearson for the planted pairs and a few others.
    for (const i of [...p.plant.keys(), 1, 2, 100]) {
      const j = res.partner[i]!;
      const want = pearson(col(p.X, p.N, i, T), col(p.Y, p.N, j, T));
      assert.ok(Math.abs(res.maxCorr[i]! - want) < 1e-5, `ρ ${i}: ${res.maxCorr[i]} vs ${want}`);
    }
  });

  it('on grid data ρ equals float64 Pearson to 1e-9, constant neuron included', async () => {
    const r = rng(4);
    const T = 400;
    const N = 12;
    const X = gridData(T, N, r, (_t, row) => (row[5] = 0.375));
    const Y = gridData(T, N, r, (t, row) => {
      row[0] = -1.5;
      row[7] = X[t * N + 2]!;
    });
    const shape = { nLayers: 2, dMlp: 6 };
    const res = await run({ model: 1, ref: shape, other: shape, seed: 1, chunkTokens: 50 }, batches([X, Y], [N, N], [37, 163, 200]));
    for (let i = 0; i < N; i++) {
      let best = -Infinity;
      for (let j = 0; j < N; j++) best = Math.max(best, pearson(col(X, N, i, T), col(Y, N, j, T)));
      const want = i === 5 ? 0 : best;
      assert.ok(Math.abs(res.maxCorr[i]! - want) < 1e-9, `${i}: ${res.maxCorr[i]} vs ${want}`);
    }
    assert.equal(res.partner[2], 7);
    assert.ok(Math.abs(res.maxCorr[2]! - 1) < 1e-12);
  });
});

describe('CrossMoments: blocks and resume', () => {
  const L = 2;
  const d = 32;
  const T = 700;
  const p = planted(T, L, d, 5);
  const shape = { nLayers: L, dMlp: d };
  const bs = batches([p.X, p.Y], [p.N, p.N], [100, 250, 50, 300]);

  it('a block of reference neurons gives the unblocked results for those neurons', async () => {
    const full = await run({ model: 1, ref: shape, other: shape, seed: 3, chunkTokens: 256 }, bs);
    for (const [a0, a1] of [
      [0, 17],
      [17, 40],
      [40, 64],
    ] as const) {
      const part = await run({ model: 1, ref: shape, other: shape, seed: 3, chunkTokens: 256, block: [a0, a1] }, bs);
      assert.equal(part.refStart, a0);
      assert.equal(part.maxCorr.length, a1 - a0);
      for (let i = a0; i < a1; i++) {
        assert.ok(Math.abs(part.maxCorr[i - a0]! - full.maxCorr[i]!) <= 1e-12, `max_corr ${i}`);
        assert.ok(Math.abs(part.baseline[i - a0]! - full.baseline[i]!) <= 1e-12, `baseline ${i}`);
        assert.equal(part.partner[i - a0], full.partner[i]);
        assert.equal(part.baselinePartner[i - a0], full.baselinePartner[i]);
      }
    }
  });

  it('state() / restore() continues bit for bit, including a half-full fp32 partial', async () => {
    const opts: CrossMomentsOptions = { model: 1, ref: shape, other: shape, seed: 3, chunkTokens: 256, gemm };
    const whole = await run(opts, bs);
    const a = new CrossMoments(opts);
    await a.add(bs[0]!);
    await a.add(bs[1]!);
    // What a store would do: copy everything out, then build a fresh accumulator from it.
    const saved = structuredClone(a.state());
    const b = CrossMoments.restore(saved, opts);
    await b.add(bs[2]!);
    await b.add(bs[3]!);
    const resumed = await b.finish();
    assert.deepEqual(resumed, whole);
    assert.throws(() => CrossMoments.restore(saved, { ...opts, seed: 4 }), EngineError);
    assert.throws(() => CrossMoments.restore({ ...saved, 'dense.sxy': new Float64Array(3) }, opts), EngineError);
  });

  it('a pair that never flushes finishes from its fp32 partial, bit for bit as from float64 totals', async () => {
    // chunkTokens above the 700 tokens: no flush, so no float64 totals are ever allocated.
    const opts: CrossMomentsOptions = { model: 1, ref: shape, other: shape, seed: 3, chunkTokens: 1024, gemm };
    const fromPartial = await run(opts, bs);
    // The same tokens with the partial moved into float64 totals, as a flush does (0 + v: −0 becomes +0).
    const a = new CrossMoments(opts);
    for (const b of bs) await a.add(b);
    const st = structuredClone(a.state());
    const p32 = st['dense.p32'] as Float32Array;
    assert.equal((st['dense.sxy'] as Float64Array).length, 0, 'no float64 totals before a flush');
    const totals = new Float64Array(p32.length);
    for (let e = 0; e < p32.length; e++) totals[e] = 0 + p32[e]!;
    const fromTotals = await CrossMoments.restore({ ...st, 'dense.sxy': totals, 'dense.p32': new Float32Array(p32.length) }, opts).finish();
    assert.deepEqual(fromPartial, fromTotals);
  });
});

/** screenRefine's inputs for `rows` covariance rows of one layer of width d, plus its float64 truth. */
function screenCase(rows: number, d: number, cov: Float64Array, R: Float64Array, ix: Float64Array, irv: Float64Array) {
  const best = new Float64Array(rows).fill(-Infinity);
  const arg = new Int32Array(rows).fill(-1);
  const args = {
    rows,
    d,
    cov,
    cov32: new Float32Array(rows * d),
    out32: new Float32Array(rows * d),
    R,
    R32: Float32Array.from(R),
    ix,
    irv,
    col0: 0,
    best,
    arg,
  };
  // The float64 finish's rule: ρ = clamp((c·R_k)·ix·irv_k), first maximum wins (sequential dots).
  const want = { best: new Float64Array(rows).fill(-Infinity), arg: new Int32Array(rows).fill(-1) };
  for (let r = 0; r < rows; r++) {
    if (ix[r] === 0) continue;
    for (let k = 0; k < d; k++) {
      let s = 0;
      for (let b = 0; b < d; b++) s += cov[r * d + b]! * R[k * d + b]!;
      const v = Math.max(-1, Math.min(1, s * ix[r]! * irv[k]!));
      if (v > want.best[r]!) [want.best[r], want.arg[r]] = [v, k];
    }
  }
  return { args, want };
}

describe('CrossMoments: the baseline finish (fp32 screen, float64 refinement)', () => {
  it('gives the float64 maximum and first argmax exactly, on rows of very different scales', async () => {
    const r = rng(11);
    const g = gauss(r);
    const rows = 300;
    const d = 96;
    const cov = new Float64Array(rows * d);
    for (let i = 0; i < rows; i++) {
      const scale = 10 ** (8 * r() - 4);
      const mean = g();
      for (let b = 0; b < d; b++) cov[i * d + b] = scale * (mean + g());
    }
    // A row whose covariances are all 0 (m's neurons constant), one exact tie inside a row.
    cov.fill(0, 5 * d, 6 * d);
    const R = rotationMatrix(5, 0, d);
    R.copyWithin(7 * d, 3 * d, 4 * d); // rotated neurons 3 and 7 identical: a tie, 3 must win
    const ix = Float64Array.from({ length: rows }, (_, i) => (i === 9 ? 0 : 1 / (Math.hypot(...cov.subarray(i * d, (i + 1) * d)) || 1)));
    const irv = Float64Array.from({ length: d }, (_, k) => (k === 2 ? 0 : 0.5 + r()));
    const { args, want } = screenCase(rows, d, cov, R, ix, irv);
    const refined = await screenRefine(gemm, args);
    for (let i = 0; i < rows; i++) {
      assert.ok(Object.is(args.best[i], want.best[i]), `row ${i}: ${args.best[i]} vs ${want.best[i]}`);
      assert.equal(args.arg[i], want.arg[i], `argmax of row ${i}`);
    }
    assert.equal(args.arg[9], -1, 'a constant reference neuron is left to the caller');
    assert.equal(args.best[5], 0);
    assert.equal(args.arg[5], 0, 'an all-zero row: the first rotated neuron');
    // The screen does its job: a few refinements per row, not d.
    assert.ok(refined < 4 * rows, `${refined} refinements for ${rows} rows`);
  });

  it('resolves maxima closer than fp32 can tell apart (an fp32-only finish gets these wrong)', async () => {
    // Row 0: c·R_1 = 1 + 2⁻²⁸ beats c·R_0 = 1, but in fp32 both are 1 and R_0, the first, would
    // win. Row 1 the same with R_3 against R_2.
    const d = 4;
    const cov = Float64Array.from([1, 2 ** -28, 0, 0, 0, 0, 1, 2 ** -28]);
    const R = Float64Array.from([1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1]);
    const ix = Float64Array.from([0.5, 0.5]);
    const irv = Float64Array.from([1, 1, 1, 1]);
    const { args, want } = screenCase(2, d, cov, R, ix, irv);
    const fp32 = new Float32Array(8);
    for (let i = 0; i < 8; i++) fp32[i] = cov[i]!;
    assert.equal(Math.fround(fp32[0]! + fp32[1]!), Math.fround(fp32[0]!), 'fp32 cannot tell them apart');
    await screenRefine(gemm, args);
    assert.deepEqual(Array.from(want.arg), [1, 3]);
    assert.deepEqual(Array.from(args.arg), [1, 3]);
    assert.deepEqual(Array.from(args.best), [0.5 + 2 ** -29, 0.5 + 2 ** -29]);
  });

  it('CrossMoments: the default finish equals the float64 GEMM finish to 1e-15; max_corr and partners bit-identical', async () => {
    const L = 3;
    const d = 64;
    const T = 2000;
    const p = planted(T, L, d, 8);
    const shape = { nLayers: L, dMlp: d };
    const bs = batches([p.X, p.Y], [p.N, p.N], [700, 1300]);
    const opts = { model: 1, ref: shape, other: shape, seed: 21, chunkTokens: 1024 };
    const f64 = await run({ ...opts, baselineFinish: 'float64' }, bs);
    const scr = await run(opts, bs);
    let dmax = 0;
    for (let i = 0; i < p.N; i++) {
      assert.ok(Object.is(scr.maxCorr[i], f64.maxCorr[i]), `max_corr ${i}`);
      assert.equal(scr.partner[i], f64.partner[i]);
      assert.equal(scr.baselinePartner[i], f64.baselinePartner[i], `baseline partner ${i}`);
      dmax = Math.max(dmax, Math.abs(scr.baseline[i]! - f64.baseline[i]!));
    }
    assert.ok(dmax <= 1e-15, `max |Δ baseline| ${dmax}`);
    const sorted = [...f64.baseline].sort((a, b) => a - b);
    assert.ok(sorted[Math.floor(p.N / 10)]! > 0.03, `a non-trivial baseline (10th percentile ${sorted[Math.floor(p.N / 10)]})`);
  });
});

describe('CrossMoments: inputs', () => {
  it('refuses bad options and batches that do not match the models', async () => {
    const shape = { nLayers: 2, dMlp: 4 };
    assert.throws(() => new CrossMoments({ model: 0, ref: shape, other: shape, seed: 1 }), EngineError);
    assert.throws(() => new CrossMoments({ model: 1, ref: shape, other: shape, seed: -1 }), EngineError);
    assert.throws(() => new CrossMoments({ model: 1, ref: shape, other: shape, seed: 1, block: [4, 9] }), EngineError);
    const c = new CrossMoments({ model: 2, ref: shape, other: shape, seed: 1, gemm });
    const x = new Float32Array(3 * 8);
    await assert.rejects(c.add(batches([x, x], [8, 8], [3])[0]!), EngineError);
    const d = new CrossMoments({ model: 1, ref: shape, other: { nLayers: 1, dMlp: 4 }, seed: 1, gemm });
    await assert.rejects(d.add(batches([x, x], [8, 8], [3])[0]!), EngineError);
  });

  it('with no tokens every correlation is 0', async () => {
    const shape = { nLayers: 1, dMlp: 4 };
    const res = await run({ model: 1, ref: shape, other: shape, seed: 1 }, []);
    assert.deepEqual(Array.from(res.maxCorr), [0, 0, 0, 0]);
    assert.deepEqual(Array.from(res.baseline), [0, 0, 0, 0]);
  });
});

/**
 * rotationMatrix as first written (xoshiro128** as an object, two next() per uniform): the fast
 * version must draw the same numbers bit for bit, or recorded seeds would mean other matrices.
 */
function rotationMatrixReference(seed: number, layer: number, d: number): Float64Array {
  const MASK64 = (1n << 64n) - 1n;
  const st = { s: ((BigInt(seed) << 32n) | BigInt(layer)) & MASK64 };
  const splitmix64 = (): bigint => {
    st.s = (st.s + 0x9e3779b97f4a7c15n) & MASK64;
    let z = st.s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  };
  const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
  const a = splitmix64();
  const b = splitmix64();
  let [s0, s1, s2, s3] = [Number(a & 0xffffffffn) | 0, Number(a >> 32n) | 0, Number(b & 0xffffffffn) | 0, Number(b >> 32n) | 0];
  const next = (): number => {
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return r;
  };
  const uniform = (): number => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  const R = new Float64Array(d * d);
  for (let i = 0; i < R.length; i += 2) {
    const rho = Math.sqrt(-2 * Math.log(1 - uniform()));
    const theta = 2 * Math.PI * uniform();
    R[i] = rho * Math.cos(theta);
    if (i + 1 < R.length) R[i + 1] = rho * Math.sin(theta);
  }
  for (let k = 0; k < d; k++) {
    let q = 0;
    for (let c = 0; c < d; c++) q += R[k * d + c]! * R[k * d + c]!;
    const inv = q > 0 ? 1 / Math.sqrt(q) : 0;
    for (let c = 0; c < d; c++) R[k * d + c]! *= inv;
  }
  return R;
}

describe('rotationMatrix', () => {
  it('draws exactly the numbers of the original implementation (odd and even sizes, large seeds)', () => {
    for (const [seed, layer, d] of [
      [0, 0, 64],
      [12345, 3, 33],
      [2 ** 32 - 1, 11, 100],
      [7, 2 ** 31 + 5, 1],
    ] as const) {
      const got = rotationMatrix(seed, layer, d);
      const want = rotationMatrixReference(seed, layer, d);
      for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`(${seed}, ${layer}, ${d})[${i}]: ${got[i]} vs ${want[i]}`);
    }
  });

  it('is reproducible from (seed, layer), has unit rows and Gaussian directions', () => {
    const d = 64;
    const R = rotationMatrix(42, 1, d);
    assert.deepEqual(R, rotationMatrix(42, 1, d));
    assert.notDeepEqual(R, rotationMatrix(42, 2, d));
    assert.notDeepEqual(R, rotationMatrix(43, 1, d));
    for (let k = 0; k < d; k++) {
      let s = 0;
      for (let b = 0; b < d; b++) s += R[k * d + b]! ** 2;
      assert.ok(Math.abs(s - 1) < 1e-12);
    }
    // Entries of a unit-normalised Gaussian row: mean 0, variance 1/d, kurtosis near 3.
    let m1 = 0;
    let m2 = 0;
    let m4 = 0;
    for (const v of R) {
      m1 += v;
      m2 += v * v;
      m4 += v ** 4;
    }
    const n = d * d;
    assert.ok(Math.abs(m1 / n) < 0.01);
    assert.ok(Math.abs((m2 / n) * d - 1) < 1e-9);
    const kurt = m4 / n / (m2 / n) ** 2;
    assert.ok(kurt > 2.7 && kurt < 3.3, `kurtosis ${kurt}`);
    // Not orthogonalised: rows are only nearly orthogonal.
    let dot = 0;
    for (let b = 0; b < d; b++) dot += R[b]! * R[d + b]!;
    assert.ok(Math.abs(dot) > 1e-6);
  });
});

/**
 * Activations with structure, as real neurons have: each neuron is a GELU of a few shared latent
 * factors plus noise, so correlations spread over 0–0.9; three neurons of b copy neurons of a.
 */
function structured(T: number, L: number, d: number, seed: number) {
  const r = rng(seed);
  const g = gauss(r);
  const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
  const N = L * d;
  const K = 24;
  const Z = new Float32Array(T * K).map(() => g());
  const model = (): Float32Array => {
    const w = Array.from({ length: N }, () => [0, 1, 2].map(() => [Math.floor(r() * K), g()] as const));
    const bias = Array.from({ length: N }, () => g() - 0.5);
    const M = new Float32Array(T * N);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < N; j++) {
        let v = bias[j]! + 0.6 * g();
        for (const [k, c] of w[j]!) v += c * Z[t * K + k]!;
        M[t * N + j] = gelu(v);
      }
    }
    return M;
  };
  const X = model();
  const Y = model();
  const plant = new Map<number, number>([
    [3, 100],
    [50, 7],
    [140, 141],
  ]);
  for (const [i, j] of plant) for (let t = 0; t < T; t++) Y[t * N + j] = 0.8 * X[t * N + i]! + 0.1 * g();
  return { X, Y, N, plant };
}

describe('CrossMoments: fast mode', () => {
  const L = 3;
  const d = 48;
  const T = 8000;
  const data = structured(T, L, d, 7);
  const shape = { nLayers: L, dMlp: d };
  const bs = batches([data.X, data.Y], [data.N, data.N], Array(8).fill(1000));
  const fast = { screenTokens: 2000, margin: 0.05, baselineMargin: 0.1 };
  let exact: CrossMomentsResult;

  const agree = (f: CrossMomentsResult, e: CrossMomentsResult): void => {
    const uni = (r: CrossMomentsResult): number[] => [...r.maxCorr.keys()].filter((i) => r.maxCorr[i]! - r.baseline[i]! > 0.5);
    assert.deepEqual(uni(f), uni(e));
    // Shared latent factors make some unplanted pairs universal too; the set must not be empty.
    assert.ok(uni(e).length >= 2, `universal: ${uni(e)}`);
    for (let i = 0; i < data.N; i++) {
      assert.ok(Math.abs(f.maxCorr[i]! - e.maxCorr[i]!) <= 1e-3, `max_corr ${i}: ${f.maxCorr[i]} vs ${e.maxCorr[i]}`);
      assert.ok(Math.abs(f.baseline[i]! - e.baseline[i]!) <= 1e-3, `baseline ${i}: ${f.baseline[i]} vs ${e.baseline[i]}`);
    }
    for (const [i, j] of data.plant) assert.equal(f.partner[i], j);
  };

  it('a prefix screen gives the exact mode results (same universal set, |Δ| ≤ 1e-3)', async () => {
    exact = await run({ model: 1, ref: shape, other: shape, seed: 5 }, bs);
    const c = new CrossMoments({ model: 1, ref: shape, other: shape, seed: 5, gemm, mode: 'fast', fast });
    for (const b of bs) await c.add(b);
    const cand = c.candidates()!;
    // Far fewer pairs than all of them, or the test would prove nothing.
    assert.ok(cand.partners < data.N * data.N * 0.05 && cand.rotated < data.N * data.N * 0.1, JSON.stringify(cand));
    const f = await c.finish();
    assert.equal(f.mode, 'fast');
    assert.equal(f.n, T);
    agree(f, exact);
  });

  it('an explicit screen sample (not counted) gives the same results', async () => {
    const c = new CrossMoments({ model: 1, ref: shape, other: shape, seed: 5, gemm, mode: 'fast', fast });
    // Every other batch as the sample, then the whole run.
    for (const i of [0, 4]) await c.screen(bs[i]!);
    await assert.rejects(c.screen(bs[1]!).then(() => c.add(bs[0]!)).then(() => c.screen(bs[2]!)), EngineError);
    const c2 = new CrossMoments({ model: 1, ref: shape, other: shape, seed: 5, gemm, mode: 'fast', fast });
    for (const i of [0, 2, 4, 6]) await c2.screen(bs[i]!);
    for (const b of bs) await c2.add(b);
    const f = await c2.finish();
    assert.equal(f.n, T);
    agree(f, exact);
  });

  it('resumes bit for bit from before and after the screen', async () => {
    const opts: CrossMomentsOptions = { model: 1, ref: shape, other: shape, seed: 5, gemm, mode: 'fast', fast };
    const whole = await run(opts, bs);
    for (const cut of [1, 5]) {
      const a = new CrossMoments(opts);
      for (const b of bs.slice(0, cut)) await a.add(b);
      const b = CrossMoments.restore(structuredClone(a.state()), opts);
      for (const x of bs.slice(cut)) await b.add(x);
      assert.deepEqual(await b.finish(), whole, `cut after batch ${cut}`);
    }
  });

  it('resumes bit for bit from inside a sub-screened screen and after it', async () => {
    const opts: CrossMomentsOptions = { model: 1, ref: shape, other: shape, seed: 5, gemm, mode: 'fast', fast };
    const sample = [0, 2, 4, 6].map((i) => bs[i]!);
    const c = new CrossMoments(opts);
    for (const b of sample) await c.screen(b);
    for (const b of bs) await c.add(b);
    const whole = await c.finish();
    for (const [screened, added] of [
      [1, 0],
      [4, 0],
      [4, 3],
    ] as const) {
      const a = new CrossMoments(opts);
      for (const b of sample.slice(0, screened)) await a.screen(b);
      for (const b of bs.slice(0, added)) await a.add(b);
      const r = CrossMoments.restore(structuredClone(a.state()), opts);
      for (const b of sample.slice(screened)) await r.screen(b);
      for (const b of bs.slice(added)) await r.add(b);
      assert.deepEqual(await r.finish(), whole, `cut after ${screened} screened, ${added} added`);
    }
  });

  it('a run shorter than the screen is the exact result', async () => {
    const short = bs.slice(0, 2); // exactly the screen's 2000 tokens
    const e = await run({ model: 1, ref: shape, other: shape, seed: 5 }, short);
    const f = await run({ model: 1, ref: shape, other: shape, seed: 5, mode: 'fast', fast }, short);
    assert.deepEqual(f.maxCorr, e.maxCorr);
    assert.deepEqual(f.baseline, e.baseline);
  });
});

describe('SddmmArena', () => {
  it('the WebAssembly SIMD kernel equals the float64 sums to fp32 precision, any t', async () => {
    const { SddmmArena } = await import('../../src/engine/analysis/gemm');
    const r = rng(9);
    for (const t of [1, 3, 16, 17, 64, 333]) {
      const out: number[][] = [];
      for (const js of [false, true]) {
        const a = new SddmmArena();
        const x = a.alloc(5 * t * 4);
        const y = a.alloc(7 * t * 4);
        const rp = a.alloc(6 * 4);
        const cl = a.alloc(12 * 4);
        const o = a.alloc(12 * 8);
        a.seal(js);
        assert.equal(a.simd, !js);
        const rr = rng(t);
        a.f32(x, 5 * t).forEach((_, i, v) => (v[i] = rr() - 0.5));
        a.f32(y, 7 * t).forEach((_, i, v) => (v[i] = rr() - 0.5));
        a.i32(rp, 6).set([0, 2, 2, 5, 9, 12]);
        a.i32(cl, 12).set([0, 6, 1, 2, 3, 4, 5, 6, 0, 3, 3, 1]);
        a.f64(o, 12).fill(0.25);
        a.sddmm(x, y, t, rp, cl, 5, o);
        out.push(Array.from(a.f64(o, 12)));
        // Row 1 has no candidates; every listed pair moved off its start value.
        assert.ok(out.at(-1)!.every((v) => v !== 0.25));
      }
      for (let c = 0; c < 12; c++) assert.ok(Math.abs(out[0]![c]! - out[1]![c]!) < 1e-6 * Math.max(1, t / 16), `t=${t} c=${c}`);
    }
    void r;
  });

  it('transposes token-major rows exactly, any shape, on the kernel and in JS', async () => {
    const { SddmmArena } = await import('../../src/engine/analysis/gemm');
    for (const [n, cols] of [[1, 1], [3, 5], [4, 16], [17, 35], [64, 2048 / 8]] as const) {
      for (const js of [false, true]) {
        const a = new SddmmArena();
        const src = a.alloc(4 * n * cols);
        const dst = a.alloc(4 * n * cols);
        a.seal(js);
        const S = a.f32(src, n * cols);
        S.forEach((_, i, v) => (v[i] = i + 0.5));
        a.transpose(src, n, cols, dst);
        const D = a.f32(dst, n * cols);
        for (let k = 0; k < n; k++) for (let j = 0; j < cols; j++) assert.equal(D[j * n + k], S[k * cols + j], `n=${n} cols=${cols} js=${js}`);
      }
    }
  });
});
