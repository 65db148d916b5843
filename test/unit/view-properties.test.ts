// "Properties of universal neurons" and "is the basis privileged?" (src/view/properties.ts) against
// direct computations on planted rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basisReading, layerBasis, PROPERTY_STATS, quantile, quantiles, statMedians, universalProperties } from '../../src/view/properties';
import { percentileRank } from '../../src/view/percentile';

/** Deterministic pseudo-random numbers (LCG), so the planted table is the same every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('quantile interpolates linearly between order statistics (numpy default)', () => {
  // np.quantile([3, 1, 4, 1, 5], [0.1, 0.25, 0.5, 0.75, 0.9]) = [1, 1, 3, 4, 4.6]
  assert.deepEqual(quantiles([3, 1, 4, 1, 5]), { p10: 1, p25: 1, p50: 3, p75: 4, p90: 4.6 });
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([7, Number.NaN, Infinity], 0.9), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test('universalProperties: within-layer percentiles of universal neurons against the rest', () => {
  // Two layers of 40 neurons; in each, the 8 universal neurons get the largest w_out_norm (planted
  // effect) and random kurt; the other statistics are random, and layer 1's values are shifted up
  // by 100 (raw values differ by layer, ranks must not).
  const r = rng(7);
  const n = 80;
  const layer = Array.from({ length: n }, (_, i) => (i < 40 ? 0 : 1));
  const universal = Array.from({ length: n }, (_, i) => i % 40 >= 32);
  const columns = new Map<string, Float64Array>();
  for (const s of PROPERTY_STATS) columns.set(s, Float64Array.from(layer, (l) => r() + 100 * l));
  const wOut = columns.get('w_out_norm')!;
  for (let i = 0; i < n; i++) wOut[i] = (i % 40) + 100 * layer[i]!;
  columns.get('kurt')![3] = Number.NaN; // a missing value counts in neither group
  const p = universalProperties(layer, universal, columns);
  assert.deepEqual(p.missing, []);
  assert.equal(p.stats.length, PROPERTY_STATS.length);

  // w_out_norm: the universal neurons are ranks 33..40 of 40 in each layer → (k − ½)/40 · 100.
  const w = p.stats.find((s) => s.stat === 'w_out_norm')!;
  const univRanks = [0, 1].flatMap(() => [32, 33, 34, 35, 36, 37, 38, 39].map((k) => (100 * (k + 0.5)) / 40));
  assert.deepEqual(w.universal, quantiles(univRanks));
  assert.equal(w.universal.p50, 90);
  assert.equal(w.rest.p50, 40);
  assert.equal(w.nUniversal, 16);
  assert.equal(w.nRest, 64);

  // Every statistic against a direct computation: percentileRank of each neuron over its layer.
  for (const s of p.stats) {
    const c = columns.get(s.stat)!;
    const direct = { u: [] as number[], o: [] as number[], vu: [] as number[], vo: [] as number[] };
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(c[i]!)) continue;
      const sameLayer = Array.from(c).filter((_, j) => layer[j] === layer[i]);
      const pr = percentileRank(c[i]!, sameLayer);
      (universal[i] ? direct.u : direct.o).push(pr);
      (universal[i] ? direct.vu : direct.vo).push(c[i]!);
    }
    for (const [got, want] of [
      [s.universal, quantiles(direct.u)],
      [s.rest, quantiles(direct.o)],
    ] as const) {
      for (const k of ['p10', 'p25', 'p50', 'p75', 'p90'] as const) assert.ok(Math.abs(got[k] - want[k]) < 1e-9, `${s.stat} ${k}: ${got[k]} vs ${want[k]}`);
    }
    assert.equal(s.nUniversal, direct.u.length);
    assert.equal(s.nRest, direct.o.length);
    assert.equal(s.medianUniversal, quantile(direct.vu, 0.5));
    assert.equal(s.medianRest, quantile(direct.vo, 0.5));
  }
  assert.equal(p.stats.find((s) => s.stat === 'kurt')!.nRest, 63);
});

test('universalProperties and statMedians name the statistics a table lacks', () => {
  const columns = new Map<string, number[]>([['kurt', [1, 2, 3]], ['sparsity', [0.1, 0.2, 0.3]]]);
  const p = universalProperties([0, 0, 0], [true, false, false], columns);
  assert.deepEqual(p.stats.map((s) => s.stat), ['kurt', 'sparsity']);
  assert.deepEqual(p.missing, PROPERTY_STATS.filter((s) => s !== 'kurt' && s !== 'sparsity'));
  const m = statMedians(columns, [1, 2]);
  assert.deepEqual([...m.medians], [['kurt', 2.5], ['sparsity', 0.25]]);
  assert.equal(m.missing.length, PROPERTY_STATS.length - 2);
});

test('layerBasis: rotated-baseline quantiles per layer and the reading', () => {
  // Layer 0: mean_corr well above every baseline (privileged); layer 1: mean_corr within the baseline's range.
  const layer = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
  const corr = [0.9, 0.8, 0.85, 0.7, 0.95, 0.2, 0.3, 0.25, 0.22, 0.28];
  const base = [0.2, 0.25, 0.3, 0.22, 0.21, 0.3, 0.32, 0.28, 0.35, 0.31];
  const b = layerBasis(layer, corr, base, 2, [0.4, null]);
  assert.deepEqual(b[0]!.baseline, quantiles(base.slice(0, 5)));
  assert.deepEqual(b[1]!.corr, quantiles(corr.slice(5)));
  assert.equal(b[0]!.privileged, true);
  assert.equal(b[1]!.privileged, false);
  assert.equal(b[0]!.aboveBaseline, 1);
  assert.equal(b[1]!.aboveBaseline, 0);
  assert.equal(b[0]!.pcaTop5, 0.4);
  assert.equal(b[1]!.pcaTop5, null);
  assert.match(basisReading(b[0]!), /^neurons here are more meaningful than random directions/);
  assert.match(basisReading(b[1]!), /^neurons here are not more meaningful than random directions/);
});

test('PROPERTY_STATS are columns of the paper\'s universal.csv', async () => {
  const { PAPER_COLUMNS } = await import('../../src/engine/run/neurons');
  for (const s of PROPERTY_STATS) assert.ok((PAPER_COLUMNS as readonly string[]).includes(s), s);
});
