// The baseline's screen from the activations (cross/lowrank.ts), used when a block's one batch has
// fewer tokens than the covariance screen costs: results bit-identical to the covariance screen
// (and so to float64 up to its dots' order), and its error bound holds entry by entry, also where
// m's activations have a large mean and the stored covariances' own fp32 error dominates.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CrossMoments, rotationMatrix, screenRefine, type CrossMomentsOptions, type CrossMomentsResult } from '../../src/engine/analysis/crossmoments';
import { invStd, Y_REL } from '../../src/engine/analysis/cross/common';
import type { DenseMoments } from '../../src/engine/analysis/cross/dense';
import { LowRankScreen, lowRankPays } from '../../src/engine/analysis/cross/lowrank';
import { Gemm } from '../../src/engine/analysis/gemm';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { keptBatch } from '../helpers/batches';
import { rng } from '../helpers/synthetic-run';

const gemm = new Gemm({ threads: 2 });
after(() => gemm.release());

function gauss(r: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** GELU-like activations, a few planted partners, constant neurons, and `yMean` added to m's. */
function data(T: number, L: number, d: number, seed: number, yMean = 0) {
  const r = rng(seed);
  const g = gauss(r);
  const N = L * d;
  const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
  const X = new Float32Array(T * N);
  const Y = new Float32Array(T * N);
  for (let i = 0; i < X.length; i++) X[i] = gelu(g() - 0.5);
  for (let i = 0; i < Y.length; i++) Y[i] = gelu(g() - 0.5) + yMean;
  for (const [i, j] of [[3, (2 * d + 10) % N], [d, 5], [(2 * d + 7) % N, d + 60]] as const) {
    for (let t = 0; t < T; t++) Y[t * N + j] = 0.8 * X[t * N + i]! + 0.3 + 0.1 * g() + yMean;
  }
  for (let t = 0; t < T; t++) {
    X[t * N + d + 9] = 0.1;
    Y[t * N + 11] = -0.17 + yMean;
  }
  return { X, Y, N };
}

async function run(opts: CrossMomentsOptions, b: ActivationBatch): Promise<CrossMomentsResult & { lowRank: boolean; refined: number }> {
  const c = new CrossMoments({ gemm, ...opts });
  await c.add(b);
  const res = await c.finish();
  return { ...res, lowRank: c.lowRank, refined: c.refined };
}

describe('the baseline screen from the activations', () => {
  it('pays only when T·(B + d) < B·d', () => {
    assert.equal(lowRankPays(1024, 8000, 3072), true);
    assert.equal(lowRankPays(2300, 8000, 3072), false);
    assert.equal(lowRankPays(0, 8000, 3072), false);
    assert.equal(lowRankPays(40, 192, 64), true);
  });

  for (const [what, yMean] of [
    ['centred-ish activations', 0],
    ['m with a large mean (the stored sums\' fp32 error dominates)', 40],
  ] as const) {
    it(`gives the covariance screen's results bit for bit, whole and in blocks: ${what}`, async () => {
      const L = 3;
      const d = 64;
      const T = 40;
      const p = data(T, L, d, 7, yMean);
      const shape = { nLayers: L, dMlp: d };
      const b = keptBatch([p.X, p.Y], T);
      for (const block of [undefined, [0, 70], [70, 192]] as const) {
        const opts: CrossMomentsOptions = { model: 1, ref: shape, other: shape, seed: 5, ...(block ? { block } : {}) };
        const cov = await run(opts, b);
        const low = await run({ ...opts, keepActivations: true }, b);
        assert.equal(cov.lowRank, false);
        assert.equal(low.lowRank, lowRankPays(T, (block?.[1] ?? 192) - (block?.[0] ?? 0), d), `block ${block}`);
        for (let i = 0; i < cov.baseline.length; i++) {
          assert.ok(Object.is(low.baseline[i], cov.baseline[i]), `baseline ${i}: ${low.baseline[i]} vs ${cov.baseline[i]}`);
          assert.equal(low.baselinePartner[i], cov.baselinePartner[i], `baseline partner ${i}`);
          assert.ok(Object.is(low.maxCorr[i], cov.maxCorr[i]));
          assert.equal(low.partner[i], cov.partner[i]);
        }
        // The bound is looser than the covariance screen's, but still rules out most of each row.
        assert.ok(low.refined < cov.baseline.length * L * 12, `${low.refined} refinements for ${cov.baseline.length} rows`);
      }
    });
  }

  it('falls back to the covariance screen after a second batch', async () => {
    const shape = { nLayers: 2, dMlp: 64 };
    const p = data(40, 2, 64, 9);
    const c = new CrossMoments({ gemm, model: 1, ref: shape, other: shape, seed: 5, keepActivations: true });
    await c.add(keptBatch([p.X.subarray(0, 20 * 128), p.Y.subarray(0, 20 * 128)], 20));
    await c.add(keptBatch([p.X.subarray(20 * 128), p.Y.subarray(20 * 128)], 20, 1));
    await c.finish();
    assert.equal(c.lowRank, false);
  });

  it('its bound holds for every entry: |P·ix − (c·R_k)·ix| ≤ e_r', async () => {
    for (const yMean of [0, 40]) {
      const L = 2;
      const d = 96;
      const T = 30;
      const p = data(T, L, d, 13, yMean);
      const shape = { nLayers: L, dMlp: d };
      const c = new CrossMoments({ gemm, model: 1, ref: shape, other: shape, seed: 3, keepActivations: true });
      await c.add(keptBatch([p.X, p.Y], T));
      const D = (c as unknown as { dense: DenseMoments }).dense;
      D.finalize();
      const n = T;
      const B = c.B;
      const Nm = c.Nm;
      const sx = D.xs.sx;
      const sy = D.sy();
      const iy = invStd(sy, D.syy(), n, Y_REL);
      const ix = invStd(sx, D.xs.sxx, n);
      const low = LowRankScreen.for(c, D, n)!;
      assert.ok(low, 'the screen applies');
      let worst = 0;
      for (let l = 0; l < L; l++) {
        const R = rotationMatrix(3, l, d);
        const R32 = Float32Array.from(R);
        let rNorm = 0;
        for (let k = 0; k < d; k++) rNorm = Math.max(rNorm, Math.hypot(...R.subarray(k * d, (k + 1) * d)));
        await low.layer(l, R32, sy, iy);
        const cov = new Float64Array(B * d);
        const sumSq = new Float64Array(B);
        for (let i = 0; i < B; i++) {
          for (let b = 0; b < d; b++) {
            const v = iy[l * d + b] === 0 ? 0 : D.sxy[i * Nm + l * d + b]! - (sx[i]! * sy[l * d + b]!) / n;
            cov[i * d + b] = v;
            sumSq[i]! += v * v;
          }
        }
        const P = await low.product(0, B, new Float32Array(B * d));
        const e = new Float64Array(B);
        low.bounds(0, B, sumSq, rNorm, ix, e);
        for (let i = 0; i < B; i++) {
          for (let k = 0; k < d; k++) {
            let s = 0;
            for (let b = 0; b < d; b++) s += cov[i * d + b]! * R[k * d + b]!;
            const gap = Math.abs(P[i * d + k]! * ix[i]! - s * ix[i]!);
            assert.ok(gap <= e[i]!, `yMean ${yMean}, layer ${l}, row ${i}, k ${k}: ${gap} > ${e[i]}`);
            if (e[i]! > 0) worst = Math.max(worst, gap / e[i]!);
          }
        }
      }
      // The worst case is far from the typical error; the bound is not vacuous either.
      assert.ok(worst > 1e-4 && worst < 1, `largest error / bound ${worst}`);
    }
  });

  it('a screen that rules nothing out: every entry refined, four at a time, and the maximum still exact', async () => {
    const r = rng(21);
    const g = gauss(r);
    const rows = 40;
    const d = 37;
    const cov = Float64Array.from({ length: rows * d }, () => g());
    const R = rotationMatrix(2, 0, d);
    // Ties inside rows: rotated neurons 5 and 30 identical (5 must win where they are the best).
    R.copyWithin(30 * d, 5 * d, 6 * d);
    const ix = Float64Array.from({ length: rows }, (_, i) => (i === 3 ? 0 : 1 / Math.hypot(...cov.subarray(i * d, (i + 1) * d))));
    const irv = Float64Array.from({ length: d }, () => 0.5 + r());
    const best = new Float64Array(rows).fill(-Infinity);
    const arg = new Int32Array(rows).fill(-1);
    const refined = await screenRefine(gemm, {
      rows, d, cov, cov32: new Float32Array(rows * d), out32: new Float32Array(rows * d), R, R32: Float32Array.from(R), ix, irv, col0: 100, best, arg,
      // P = 0 and a bound of 10 around it: every entry of every row is a candidate.
      screen: { P: new Float32Array(rows * d), e: new Float64Array(rows).fill(10) },
    });
    assert.equal(refined, (rows - 1) * d, 'every entry of the rows with variance');
    for (let i = 0; i < rows; i++) {
      if (i === 3) {
        assert.equal(arg[i], -1);
        continue;
      }
      let bb = -Infinity;
      let ba = -1;
      for (let k = 0; k < d; k++) {
        let s = 0;
        for (let b = 0; b < d; b++) s += cov[i * d + b]! * R[k * d + b]!;
        const v = Math.max(-1, Math.min(1, s * ix[i]! * irv[k]!));
        if (v > bb) [bb, ba] = [v, 100 + k];
      }
      assert.ok(Object.is(best[i], bb), `row ${i}: ${best[i]} vs ${bb}`);
      assert.equal(arg[i], ba, `row ${i}`);
    }
  });
});
