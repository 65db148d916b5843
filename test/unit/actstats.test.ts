import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActivationStats, ActivationStatsResult, momentsFromCentral } from '../../src/engine/analysis/actstats';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { EngineError } from '../../src/engine/errors';
import { rng } from '../helpers/synthetic-run';
import { assertSameState } from '../helpers/state';


function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/**
 * A batch over rows of `len` tokens whose [T×N] pre is `pre` (post = pre·2, irrelevant here);
 * `keep` marks counted tokens. keptPre is compacted from pre, as the pipeline does.
 */
function batchOf(pre: Float32Array, N: number, keep: Uint8Array, batchIndex = 0, extraModels = 0): ActivationBatch {
  const T = keep.length;
  const keptIndex = Int32Array.from([...keep.keys()].filter((t) => keep[t]));
  const kept = (x: Float32Array): Float32Array => {
    const out = new Float32Array(keptIndex.length * N);
    keptIndex.forEach((t, k) => out.set(x.subarray(t * N, (t + 1) * N), k * N));
    return out;
  };
  const model = (x: Float32Array) => {
    const post = x.map((v) => 2 * v);
    return { pre: x, post, keptPre: kept(x), keptPost: kept(post) };
  };
  const models = [model(pre)];
  for (let m = 0; m < extraModels; m++) models.push(model(pre.map((v) => -v - m)));
  return {
    batchIndex,
    rows: [Array.from({ length: T }, (_, t) => t % 7)],
    rowStart: 0,
    offsets: [0, T],
    nTokens: T,
    keep,
    keptIndex,
    nKept: keptIndex.length,
    models,
  };
}

/** Splits a [T×N] matrix (all kept) into batches at the given token boundaries. */
function splitBatches(x: Float32Array, N: number, cuts: number[]): ActivationBatch[] {
  const T = x.length / N;
  const edges = [0, ...cuts, T];
  return edges.slice(1).map((end, i) => {
    const start = edges[i]!;
    return batchOf(x.slice(start * N, end * N), N, new Uint8Array(end - start).fill(1), i);
  });
}

/** Direct two-pass float64 reference over column j. */
function reference(x: Float32Array, N: number, j: number): { mean: number; var: number; skew: number; kurt: number; sparsity: number } {
  const T = x.length / N;
  let s = 0;
  let pos = 0;
  for (let t = 0; t < T; t++) {
    s += x[t * N + j]!;
    if (x[t * N + j]! > 0) pos++;
  }
  const mean = s / T;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (let t = 0; t < T; t++) {
    const d = x[t * N + j]! - mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  return { mean, ...momentsFromCentral(T, m2, m3, m4), sparsity: pos / T };
}

function close(a: number, b: number, rel: number, what: string, scale = 0): void {
  const tol = rel * Math.max(Math.abs(a), Math.abs(b), scale);
  assert.ok(Math.abs(a - b) <= tol || a === b, `${what}: ${a} vs ${b} (tol ${tol})`);
}

type Stat = 'mean' | 'var' | 'skew' | 'kurt' | 'sparsity';
const STATS: Stat[] = ['mean', 'var', 'skew', 'kurt', 'sparsity'];

/**
 * Relative error in each statistic's natural unit: skew and kurt are dimensionless (unit 1), a
 * mean is measured against the spread (a Gaussian's sample mean is ~0, so plain relative error
 * would be meaningless there).
 */
function natural(k: Stat, ref: { var: number }): number {
  return k === 'skew' || k === 'kurt' ? 1 : k === 'mean' ? Math.sqrt(ref.var) : 0;
}

/** Columns: Gaussian, exponential, Bernoulli(0.3), constant 1.5, 1e4 + N(0, 0.01²) (cancellation test), Gaussian·3−1. */
const N = 6;
function planted(T: number, seed = 1): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    x[t * N] = gauss(r);
    x[t * N + 1] = -Math.log(1 - r());
    x[t * N + 2] = r() < 0.3 ? 1 : 0;
    x[t * N + 3] = 1.5;
    x[t * N + 4] = 1e4 + 0.01 * gauss(r);
    x[t * N + 5] = 3 * gauss(r) - 1;
  }
  return x;
}

function run(batches: ActivationBatch[], opts = {}): ActivationStatsResult {
  const a = new ActivationStats({ nNeurons: N, ...opts });
  for (const b of batches) a.add(b);
  return a.finish()[0]!;
}

const T = 60_000;
const X = planted(T);
const cuts = [1, 2, 777, 5000, 5001, 33_333];

test('streaming moments equal a direct two-pass float64 computation (1e-9 relative)', () => {
  const r = run(splitBatches(X, N, cuts));
  assert.equal(r.count, T);
  for (let j = 0; j < N; j++) {
    const ref = reference(X, N, j);
    for (const k of STATS) close(r[k][j]!, ref[k], 1e-9, `column ${j} ${k}`, natural(k, ref));
  }
});

test('planted distributions give their known moments', () => {
  const r = run(splitBatches(X, N, cuts));
  // Gaussian: skew 0, kurt 3 (non-excess); sampling error at n = 60k is ~0.01 / ~0.02.
  assert.ok(Math.abs(r.mean[0]!) < 0.02 && Math.abs(r.var[0]! - 1) < 0.03, `gaussian mean/var ${r.mean[0]} ${r.var[0]}`);
  assert.ok(Math.abs(r.skew[0]!) < 0.05, `gaussian skew ${r.skew[0]}`);
  assert.ok(Math.abs(r.kurt[0]! - 3) < 0.1, `gaussian kurt ${r.kurt[0]}`);
  assert.ok(Math.abs(r.sparsity[0]! - 0.5) < 0.01);
  // Exponential(1): mean 1, var 1, skew 2, kurt 9.
  assert.ok(Math.abs(r.mean[1]! - 1) < 0.02 && Math.abs(r.skew[1]! - 2) < 0.2 && Math.abs(r.kurt[1]! - 9) < 1.5, `exp ${r.skew[1]} ${r.kurt[1]}`);
  assert.equal(r.sparsity[1], 1);
  // Bernoulli: exact identities in the sample frequency p.
  const p = r.sparsity[2]!;
  const pq = p * (1 - p);
  close(r.mean[2]!, p, 1e-12, 'bernoulli mean');
  close(r.var[2]!, pq, 1e-12, 'bernoulli var');
  close(r.skew[2]!, (1 - 2 * p) / Math.sqrt(pq), 1e-10, 'bernoulli skew');
  close(r.kurt[2]!, (1 - 3 * pq) / pq, 1e-10, 'bernoulli kurt');
  assert.ok(Math.abs(p - 0.3) < 0.01);
  // Affine map of a Gaussian: skew/kurt unchanged in distribution, mean −1, var 9.
  assert.ok(Math.abs(r.mean[5]! + 1) < 0.05 && Math.abs(r.var[5]! - 9) < 0.3 && Math.abs(r.kurt[5]! - 3) < 0.1);
});

test('a huge mean with a tiny spread keeps its digits (central sums, not power sums)', () => {
  const r = run(splitBatches(X, N, cuts));
  const ref = reference(X, N, 4);
  close(r.var[4]!, ref.var, 1e-9, 'var');
  close(r.kurt[4]!, ref.kurt, 1e-9, 'kurt');
  assert.ok(r.var[4]! > 1e-5 && r.var[4]! < 1e-3, `var ${r.var[4]}`);
});

test('a constant neuron has var 0, skew 0, kurt 0 — never NaN', () => {
  const r = run(splitBatches(X, N, cuts));
  assert.equal(r.mean[3], 1.5);
  assert.equal(r.var[3], 0);
  assert.equal(r.skew[3], 0);
  assert.equal(r.kurt[3], 0);
  assert.equal(r.sparsity[3], 1);
});

test('batch splits change nothing beyond 1e-12 relative', () => {
  const a = run(splitBatches(X, N, []));
  const b = run(splitBatches(X, N, cuts));
  const c = run(splitBatches(X, N, Array.from({ length: 59 }, (_, i) => (i + 1) * 1000 - (i % 3))));
  for (const r of [b, c]) {
    for (let j = 0; j < N; j++) {
      // Column 4 (mean/std = 1e6) is bounded by float64 itself: each batch mean carries
      // eps·1e4 ≈ 1e-12 absolute error, i.e. 1e-10 of a std, which moves skew by ~3e-10.
      const rel = j === 4 ? 1e-8 : 1e-12;
      for (const k of STATS) close(r[k][j]!, a[k][j]!, rel, `column ${j} ${k}`, natural(k, { var: a.var[j]! }));
    }
  }
});

test('only kept tokens count, and empty batches are harmless', () => {
  const x = new Float32Array([1, 100, 2, 100, 3, 100, 4, 100]).map((v, i) => (i % 2 ? -v : v)); // [4 tokens × 2]
  const keep = Uint8Array.from([1, 0, 1, 1]);
  const a = new ActivationStats({ nNeurons: 2 });
  a.add(batchOf(new Float32Array(0), 2, new Uint8Array(0)));
  a.add(batchOf(x, 2, new Uint8Array(4), 1)); // nothing kept
  a.add(batchOf(x, 2, keep, 2));
  const r = a.finish()[0]!;
  assert.equal(r.count, 3);
  close(r.mean[0]!, (1 + 3 + 4) / 3, 1e-15, 'mean');
  assert.equal(r.sparsity[1], 0);
  // The histogram range came from the first batch with kept tokens.
  assert.equal(r.hist.min[0], 1);
  assert.equal(r.hist.max[0], 4);
});

test('histograms: range from the first batch with margins, exact counts, under/overflow', () => {
  const a = new ActivationStats({ nNeurons: 1, bins: 4, margin: 0.25 });
  // First batch spans [0, 4]: range [-1, 5], bins of width 1.5.
  a.add(batchOf(Float32Array.from([0, 4, 1, 2]), 1, new Uint8Array(4).fill(1)));
  a.add(batchOf(Float32Array.from([-1.5, 6, 0.4, 5]), 1, new Uint8Array(4).fill(1), 1));
  const h = a.finish()[0]!.hist;
  assert.equal(h.lo[0], -1);
  assert.equal(h.hi[0], 5);
  // Under: -1.5. Bins [-1,.5): 0, 0.4; [.5,2): 1; [2,3.5): 2; [3.5,5): 4. Over: 6 and 5 (upper edge is open).
  assert.deepEqual(Array.from(h.counts), [1, 2, 1, 1, 1, 2]);
  assert.equal(h.min[0], -1.5);
  assert.equal(h.max[0], 6);
});

test('state() and restore() resume exactly; state is a snapshot', () => {
  const batches = splitBatches(X, N, cuts);
  const full = run(batches);
  const a = new ActivationStats({ nNeurons: N });
  for (const b of batches.slice(0, 3)) a.add(b);
  const st = a.state();
  const snapshot = JSON.stringify(Array.from(st['m0.m2'] as Float64Array));
  a.add(batches[3]!);
  assert.equal(JSON.stringify(Array.from(st['m0.m2'] as Float64Array)), snapshot, 'state() must not alias live arrays');
  const b = ActivationStats.restore(st, { nNeurons: N });
  for (const x of batches.slice(3)) b.add(x);
  const r = b.finish()[0]!;
  for (const k of STATS) assert.deepEqual(r[k], full[k], k);
  assert.deepEqual(r.hist, full.hist);
  assert.throws(() => ActivationStats.restore(st, { nNeurons: N, bins: 32 }), EngineError);
  assert.throws(() => ActivationStats.restore(st, { nNeurons: N + 1 }), EngineError);
  assert.throws(() => ActivationStats.restore({ ...st, kind: 'TopExamples/1' }, { nNeurons: N }), EngineError);
});

test('models option picks the models, results in that order', () => {
  const x = planted(500);
  const b = batchOf(x, N, new Uint8Array(500).fill(1), 0, 2);
  const a = new ActivationStats({ nNeurons: N, models: [2, 0] });
  a.add(b);
  const [r2, r0] = a.finish();
  assert.equal(r2!.model, 2);
  assert.equal(r0!.model, 0);
  close(r2!.mean[0]!, -r0!.mean[0]! - 1, 1e-9, 'model 2 is −x−1');
  assert.throws(() => new ActivationStats({ nNeurons: N, models: [3] }).add(b), /no model 3/);
});

test('refuses NaN activations, wrong widths, and finishing with no tokens', () => {
  const x = planted(10);
  x[7] = NaN;
  assert.throws(() => new ActivationStats({ nNeurons: N }).add(batchOf(x, N, new Uint8Array(10).fill(1))), /non-finite/);
  assert.throws(() => new ActivationStats({ nNeurons: N + 1 }).add(batchOf(planted(10), N, new Uint8Array(10).fill(1))), EngineError);
  assert.throws(() => new ActivationStats({ nNeurons: N }).finish(), /no kept tokens/);
});

test('a batch refused part-way leaves the accumulator refusing to save or finish', () => {
  // 40 columns: panels of 16, so the NaN in column 37 is found after two panels are counted.
  const W = 40;
  const x = new Float32Array(8 * W).map((_, i) => Math.sin(i));
  const keep = new Uint8Array(8).fill(1);
  const a = new ActivationStats({ nNeurons: W });
  a.add(batchOf(x, W, keep));
  const bad = x.slice();
  bad[3 * W + 37] = Infinity;
  assert.throws(() => a.add(batchOf(bad, W, keep, 1)), /column 37 has a non-finite value/);
  assert.throws(() => a.state(), /part of a refused batch/);
  assert.throws(() => a.finish(), /part of a refused batch/);
  assert.throws(() => a.add(batchOf(x, W, keep, 2)), /non-finite/);
});

test('activation frequency counts only values > 0: not +0, −0, or negatives; denormals count', () => {
  // Column 0 and 16 hold `col`, column 17 its negation; 18 columns, so a tail panel after 16.
  const W = 18;
  // As float32: 1e-45 is the smallest denormal (> 0), Number.MIN_VALUE rounds to 0, 2^-126 is normal.
  const col = [0, -0, 1e-45, -1e-45, 3, -3, Number.MIN_VALUE, 2 ** -126];
  const T = col.length;
  const x = new Float32Array(T * W);
  for (let t = 0; t < T; t++) for (let j = 0; j < W; j++) x[t * W + j] = j === 17 ? -col[t]! : col[t]!;
  const a = new ActivationStats({ nNeurons: W });
  a.add(batchOf(x, W, new Uint8Array(T).fill(1)));
  const [r] = a.finish();
  assert.equal(r!.sparsity[0], 3 / T, '1e-45, 3 and 2^-126');
  assert.equal(r!.sparsity[16], 3 / T);
  assert.equal(r!.sparsity[17], 2 / T, 'negated: −(−1e-45) and −(−3); −0 from −MIN_VALUE is not');
});

test('the SIMD kernel (default) and the JS loop give bit-identical state: widths with a tail, ties, ±0, outliers, several batches', () => {
  const r = rng(11);
  // 37 and 64: lines of 16 columns, strips of 4 and single columns; batches longer than the
  // kernel's tiles of 64 rows, and not a multiple of them.
  for (const W of [4, 7, 37, 64]) {
    const a = new ActivationStats({ nNeurons: W, models: [0, 1], bins: 16, kernel: false });
    const b = new ActivationStats({ nNeurons: W, models: [0, 1], bins: 16 });
    for (let bi = 0; bi < 5; bi++) {
      const T = 3 + bi * 47;
      const x = new Float32Array(T * W).map(() => {
        const u = r();
        // Quantised values (ties, exact 0s of both signs), rare outliers beyond the histogram's range.
        return u < 0.1 ? 0 : u < 0.15 ? -0 : u < 0.17 ? 40 * gauss(r) : Math.round(gauss(r) * 8) / 8 - 0.2;
      });
      const keep = new Uint8Array(T).map(() => (r() < 0.85 ? 1 : 0));
      a.add(batchOf(x, W, keep, bi, 1));
      b.add(batchOf(x, W, keep, bi, 1));
    }
    assertSameState(a.state(), b.state(), `W ${W}`);
  }
});

test('the kernel refuses a non-finite column by its index, as the JS loop does', () => {
  for (const kernel of [true, false]) {
    const W = 10;
    const x = new Float32Array(6 * W).map((_, i) => Math.cos(i));
    x[2 * W + 9] = NaN;
    assert.throws(() => new ActivationStats({ nNeurons: W, kernel }).add(batchOf(x, W, new Uint8Array(6).fill(1))), /column 9 has a non-finite value/);
  }
});
