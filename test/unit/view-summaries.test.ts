// The views' summaries (src/view/percentile.ts, summaries.ts, counts.ts): percentile ranks within a
// layer, per-layer universal shares, histograms, family counts and the reverse partner index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentileRank, percentileRanksWithinLayer } from '../../src/view/percentile';
import { familyCounts } from '../../src/view/counts';
import { bestReferenceByPartner, histogram, layerShares, median, partnerKey } from '../../src/view/summaries';
import { isUniversal } from '../../src/engine/run/defaults';

test('percentileRank: mid-rank, ties shared, non-finite ignored', () => {
  const s = [1, 2, 3, 4];
  assert.equal(percentileRank(1, s), 12.5);
  assert.equal(percentileRank(4, s), 87.5);
  assert.equal(percentileRank(2.5, s), 50);
  assert.equal(percentileRank(0, s), 0);
  assert.equal(percentileRank(9, s), 100);
  assert.equal(percentileRank(2, [2, 2, 2]), 50);
  assert.equal(percentileRank(3, [1, Number.NaN, 3, Infinity]), 75);
  assert.ok(Number.isNaN(percentileRank(Number.NaN, s)));
  assert.ok(Number.isNaN(percentileRank(1, [])));
  assert.ok(Number.isNaN(percentileRank(1, [Number.NaN])));
});

test('percentileRanksWithinLayer ranks each value inside its own layer', () => {
  const values = [10, 30, 20, 5, 5, 7, Number.NaN];
  const layers = [0, 0, 0, 1, 1, 1, 1];
  const p = percentileRanksWithinLayer(values, layers);
  // Layer 0: 10 < 20 < 30 → 1/6, 5/6, 3/6 of 100.
  assert.deepEqual(Array.from(p.subarray(0, 3)).map((x) => +x.toFixed(6)), [16.666667, 83.333333, 50]);
  // Layer 1: the two 5s tie (mid-rank 1/3), 7 is top (5/6); NaN stays NaN and does not count.
  assert.equal(+p[3]!.toFixed(6), 33.333333);
  assert.equal(p[3], p[4]);
  assert.equal(+p[5]!.toFixed(6), 83.333333);
  assert.ok(Number.isNaN(p[6]!));
  // Agrees with percentileRank against the layer's sample.
  for (let i = 0; i < 6; i++) {
    const sample = values.filter((_, j) => layers[j] === layers[i]);
    assert.equal(p[i], percentileRank(values[i]!, sample));
  }
  // Rows of a layer need not be contiguous.
  assert.deepEqual(Array.from(percentileRanksWithinLayer([1, 9, 2], [0, 1, 0])), [25, 50, 75]);
  assert.throws(() => percentileRanksWithinLayer([1], [0, 1]), RangeError);
});

test('layerShares: counts, share and median excess of universal neurons per layer', () => {
  const layers = [0, 0, 0, 0, 1, 1, 2];
  const excess = [0.6, 0.7, 0.1, Number.NaN, 0.5, 0.9, 0.2];
  const s = layerShares(layers, excess, excess.map((x) => isUniversal(x, 0.5)), 4);
  assert.deepEqual(
    s.map((x) => [x.layer, x.neurons, x.universal, x.percent]),
    [
      [0, 4, 2, 50],
      [1, 2, 1, 50], // 0.5 is not > 0.5
      [2, 1, 0, 0],
      [3, 0, 0, 0],
    ],
  );
  assert.equal(+s[0]!.medianExcess.toFixed(6), 0.65);
  assert.ok(Number.isNaN(s[2]!.medianExcess));
  assert.equal(isUniversal(Number.NaN, 0), false);
  assert.equal(median([3, 1, 2]), 2);
  assert.ok(Number.isNaN(median([])));
});

test('histogram: equal bins, last bin closed, range and NaN handling', () => {
  const h = histogram([0, 0.25, 0.5, 0.75, 1, Number.NaN], 4);
  assert.deepEqual(h.edges, [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(h.counts, [1, 1, 1, 2]);
  const r = histogram([-5, 0.1, 0.9, 5], 2, 0, 1);
  assert.deepEqual(r.counts, [1, 1]);
  assert.deepEqual(histogram([], 2).counts, [0, 0]);
  assert.deepEqual(histogram([3, 3], 1).counts, [2]);
  assert.throws(() => histogram([1], 0), RangeError);
});

test('familyCounts and bestReferenceByPartner', () => {
  assert.deepEqual(familyCounts(['b', null, 'a', 'b', ''], [true, true, false, false, true]), [
    { family: 'b', neurons: 2, universal: 1 },
    { family: 'a', neurons: 1, universal: 0 },
  ]);
  const best = bestReferenceByPartner([
    { ref: 0, model: 'b', layer: 1, neuron: 5, corr: 0.4 },
    { ref: 1, model: 'b', layer: 1, neuron: 5, corr: 0.9 },
    { ref: 2, model: 'b', layer: 1, neuron: 5, corr: 0.9 },
    { ref: 3, model: 'c', layer: 1, neuron: 5, corr: Number.NaN },
  ]);
  assert.deepEqual(best.get(partnerKey('b', 1, 5)), { ref: 1, corr: 0.9 });
  assert.equal(best.get(partnerKey('c', 1, 5))!.ref, 3);
  assert.equal(best.get(partnerKey('b', 1, 6)), undefined);
});
