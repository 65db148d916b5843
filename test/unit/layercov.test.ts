// The top-5 principal components' share of each layer's activation variance (analysis/layercov.ts):
// subspace iteration against planted spectra, the streamed covariance against a direct float64
// computation and a direct (Jacobi) eigen-decomposition, and bit-identical batch splits and resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COVARIANCE_MAX_BYTES, jacobiEigen, LayerCovariance, topEigenvalues } from '../../src/engine/analysis/layercov';
import type { ActivationBatch } from '../../src/engine/analysis/types';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

/** Q·diag(λ)·Qᵀ with Q a product of random Householder reflections: eigenvalues exactly λ. */
function planted(lambda: number[], seed: number): Float64Array {
  const d = lambda.length;
  const r = rng(seed);
  const Q = new Float64Array(d * d);
  for (let i = 0; i < d; i++) Q[i * d + i] = 1;
  for (let h = 0; h < 6; h++) {
    const v = Array.from({ length: d }, () => gauss(r));
    const n2 = v.reduce((a, x) => a + x * x, 0);
    // Q ← (I − 2vvᵀ/‖v‖²)·Q
    for (let c = 0; c < d; c++) {
      let dot = 0;
      for (let a = 0; a < d; a++) dot += v[a]! * Q[a * d + c]!;
      for (let a = 0; a < d; a++) Q[a * d + c]! -= (2 * v[a]! * dot) / n2;
    }
  }
  const C = new Float64Array(d * d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) {
    let acc = 0;
    for (let k = 0; k < d; k++) acc += Q[a * d + k]! * lambda[k]! * Q[b * d + k]!;
    C[a * d + b] = acc;
  }
  return C;
}

test('jacobiEigen and topEigenvalues recover a planted spectrum', async () => {
  const small = [9, 4, 1, 0.5, 0.25, 0.1];
  assert.deepEqual(jacobiEigen(planted(small, 1), 6).values.map((v) => +v.toFixed(10)), small);
  // d = 120 (> 64: the subspace iteration), a slowly decaying tail.
  const lambda = Array.from({ length: 120 }, (_, i) => (i < 5 ? [40, 25, 12, 7, 4][i]! : 3 * 0.97 ** i));
  const top = await topEigenvalues(planted(lambda, 2), 120, 5);
  top.forEach((v, i) => assert.ok(Math.abs(v - lambda[i]!) < 1e-8 * lambda[0]!, `λ${i}: ${v} vs ${lambda[i]}`));
});

/** Batches of planted post-activations: L layers × d neurons, low-rank signal plus noise, layer l scaled differently. */
function batches(L: number, d: number, sizes: number[], seed: number): ActivationBatch[] {
  const r = rng(seed);
  const N = L * d;
  const A = Array.from({ length: L }, () => Float64Array.from({ length: d * 3 }, () => gauss(r)));
  let bi = 0;
  return sizes.map((T) => {
    const x = new Float32Array(T * N);
    for (let t = 0; t < T; t++) {
      for (let l = 0; l < L; l++) {
        const z = [gauss(r), gauss(r), gauss(r)];
        for (let a = 0; a < d; a++) x[t * N + l * d + a] = (l + 1) * (A[l]![a * 3]! * z[0]! + A[l]![a * 3 + 1]! * z[1]! + A[l]![a * 3 + 2]! * z[2]!) + 0.5 * gauss(r) + 0.3;
      }
    }
    return { batchIndex: bi++, nKept: T, models: [{ keptPost: x }] } as unknown as ActivationBatch;
  });
}

test('LayerCovariance: top-5 share against a direct covariance and eigen-decomposition', async () => {
  const L = 2;
  const d = 72;
  const bs = batches(L, d, [200, 150, 250], 3);
  const acc = new LayerCovariance({ nLayers: L, dMlp: d, threads: 1 });
  for (const b of bs) await acc.add(b);
  const res = await acc.finish();
  for (let l = 0; l < L; l++) {
    // Direct: the population covariance in float64 from every token, then all its eigenvalues.
    const rows: Float64Array[] = [];
    for (const b of bs) for (let t = 0; t < b.nKept; t++) rows.push(Float64Array.from(b.models[0]!.keptPost.subarray(t * L * d + l * d, t * L * d + (l + 1) * d)));
    const n = rows.length;
    const mean = new Float64Array(d);
    for (const x of rows) for (let a = 0; a < d; a++) mean[a]! += x[a]! / n;
    const C = new Float64Array(d * d);
    for (const x of rows) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) C[a * d + b]! += ((x[a]! - mean[a]!) * (x[b]! - mean[b]!)) / n;
    let trace = 0;
    for (let a = 0; a < d; a++) trace += C[a * d + a]!;
    const all = jacobiEigen(C, d).values;
    const share = all.slice(0, 5).reduce((a, b) => a + b, 0) / trace;
    const got = res[l]!;
    assert.equal(got.tokens, 600);
    assert.ok(Math.abs(got.totalVariance - trace) < 1e-5 * trace, `trace ${got.totalVariance} vs ${trace}`);
    assert.ok(Math.abs(got.topShare - share) < 1e-5, `L${l} share ${got.topShare} vs ${share}`);
    got.eigenvalues.forEach((v, i) => assert.ok(Math.abs(v - all[i]!) < 1e-5 * all[0]!, `L${l} λ${i}`));
    // Rank-3 signal: the top 5 carry most of the variance, but not all (noise).
    assert.ok(got.topShare > 0.8 && got.topShare < 1, String(got.topShare));
  }
});

test('LayerCovariance: batch splits and a resume give bit-identical state', async () => {
  const L = 2;
  const d = 16;
  const bs = batches(L, d, [40, 60, 30], 4);
  const whole = new LayerCovariance({ nLayers: L, dMlp: d, threads: 1 });
  for (const b of bs) await whole.add(b);
  const first = new LayerCovariance({ nLayers: L, dMlp: d, threads: 1 });
  await first.add(bs[0]!);
  const resumed = LayerCovariance.restore(first.state(), { nLayers: L, dMlp: d, threads: 1 });
  await resumed.add(bs[1]!);
  await resumed.add(bs[2]!);
  assert.deepEqual(resumed.state(), whole.state());
  assert.throws(() => LayerCovariance.restore(first.state(), { nLayers: L, dMlp: d + 1 }), /checkpoint layer covariance is 2 × 16, the run 2 × 17/);
  await whole.finish();
  await first.finish();
  await resumed.finish();
});

test('LayerCovariance fits GPT-2 small within the plan cap (one layer of fp32 blocks at a time), not GPT-2 medium', () => {
  assert.ok(LayerCovariance.bytes({ nLayers: 12, dMlp: 3072 }) <= COVARIANCE_MAX_BYTES, String(LayerCovariance.bytes({ nLayers: 12, dMlp: 3072 })));
  assert.ok(LayerCovariance.bytes({ nLayers: 24, dMlp: 4096 }) > COVARIANCE_MAX_BYTES);
});
