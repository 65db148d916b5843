import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CrossMomentsResult, mergeBlocks } from '../../src/engine/analysis/crossmoments';
import { median, OtherModel, universalityTable } from '../../src/engine/analysis/universality';
import { EngineError } from '../../src/engine/errors';

const f64 = (v: number[]): Float64Array => Float64Array.from(v);
const i32 = (v: number[]): Int32Array => Int32Array.from(v);

// Reference: 2 layers × 3 neurons. Three other models with d_mlp 4.
const ref = { nLayers: 2, dMlp: 3 };
function others(): OtherModel[] {
  return [
    { label: 'b', dMlp: 4, result: { maxCorr: f64([0.9, 0.2, 0.5, 0.95, 0.3, 0.0]), partner: i32([5, 1, 2, 4, 0, -1]), baseline: f64([0.2, 0.15, 0.3, 0.1, 0.2, 0.0]) } },
    { label: 'c', dMlp: 4, result: { maxCorr: f64([0.8, 0.3, 0.7, 0.85, 0.3, 0.0]), partner: i32([6, 2, 3, 7, 1, -1]), baseline: f64([0.3, 0.25, 0.2, 0.2, 0.2, 0.0]) } },
    { label: 'd', dMlp: 4, result: { maxCorr: f64([0.7, 0.4, 0.6, 0.9, 0.3, 0.0]), partner: i32([1, 3, 0, 4, 2, -1]), baseline: f64([0.1, 0.2, 0.25, 0.15, 0.2, 0.0]) } },
  ];
}

const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

describe('universalityTable', () => {
  it('combines the per-model maxima: max/mean/min, baselines, excess and the flag', () => {
    const t = universalityTable(others(), ref);
    assert.deepEqual(Array.from(t.layer), [0, 0, 0, 1, 1, 1]);
    assert.deepEqual(Array.from(t.neuron), [0, 1, 2, 0, 1, 2]);
    close(t.max_corr[0]!, 0.9, 'max_corr');
    close(t.min_corr[0]!, 0.7, 'min_corr');
    close(t.mean_corr[0]!, 0.8, 'mean_corr');
    close(t.max_baseline[0]!, 0.3, 'max_baseline');
    close(t.min_baseline[0]!, 0.1, 'min_baseline');
    close(t.mean_baseline[0]!, 0.2, 'mean_baseline');
    close(t.excess_corr[0]!, 0.6, 'excess');
    close(t.excess_corr[3]!, 0.9 - 0.15, 'excess L1.N0');
    close(t.excess_corr[2]!, 0.6 - 0.25, 'excess L0.N2');
    // Universal: excess strictly above 0.5.
    assert.deepEqual(Array.from(t.universal), [1, 0, 0, 1, 0, 0]);
    assert.deepEqual(t.total, { neurons: 6, universal: 2, percent: (100 * 2) / 6 });
    assert.deepEqual(t.models, ['b', 'c', 'd']);
  });

  it('summarises layers, counts thresholds and lists the top neurons with named partners', () => {
    const t = universalityTable(others(), ref, { top: 5 });
    assert.equal(t.layers.length, 2);
    const [l0, l1] = t.layers;
    assert.equal(l0!.universal, 1);
    close(l0!.percent, 100 / 3, 'percent');
    // Layer 0 excesses: 0.6, 0.1, 0.35 -> median 0.35; baselines 0.2, 0.2, 0.25 -> 0.2.
    close(l0!.medianExcess, 0.35, 'median excess');
    close(l0!.medianBaseline, 0.2, 'median baseline');
    // Layer 1 excesses: 0.75, 0.1, 0 -> 0.1.
    close(l1!.medianExcess, 0.1, 'median excess L1');
    // Excesses: 0.6, 0.1, 0.35, 0.75, 0.1, 0.
    assert.deepEqual(
      t.counts.map((c) => [c.threshold, c.count]),
      [
        [0.3, 3],
        [0.4, 2],
        [0.5, 2],
      ],
    );
    close(t.universalMedians.mean_corr!, (0.8 + 0.9) / 2, 'universal median mean_corr');
    close(t.universalMedians.mean_baseline!, (0.2 + 0.15) / 2, 'universal median baseline');
    assert.deepEqual(
      t.top.map((n) => n.name),
      ['L1.N0', 'L0.N0'],
    );
    assert.deepEqual(t.top[0]!.partners, [
      { model: 'b', layer: 1, neuron: 0, corr: 0.95 },
      { model: 'c', layer: 1, neuron: 3, corr: 0.85 },
      { model: 'd', layer: 1, neuron: 0, corr: 0.9 },
    ]);
  });

  it('the threshold is a setting', () => {
    const t = universalityTable(others(), ref, { threshold: 0.3, thresholds: [0.05] });
    assert.deepEqual(Array.from(t.universal), [1, 0, 1, 1, 0, 0]);
    assert.deepEqual(t.counts, [{ threshold: 0.05, count: 5, percent: 500 / 6 }]);
  });

  it('with no universal neuron the medians are null and the list is empty', () => {
    const t = universalityTable(others(), ref, { threshold: 0.99 });
    assert.equal(t.total.universal, 0);
    assert.deepEqual(t.universalMedians, { mean_corr: null, mean_baseline: null });
    assert.deepEqual(t.top, []);
  });

  it('refuses missing models, partial results and non-finite values', () => {
    assert.throws(() => universalityTable([], ref), EngineError);
    const o = others();
    o[1]!.result.maxCorr = f64([0.1, 0.2]);
    assert.throws(() => universalityTable(o, ref), EngineError);
    const p = others();
    p[0]!.result.baseline[2] = NaN;
    assert.throws(() => universalityTable(p, ref), EngineError);
  });
});

describe('median', () => {
  it('odd, even and empty', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });
});

describe('mergeBlocks', () => {
  const block = (refStart: number, v: number[]): CrossMomentsResult => ({
    refStart,
    n: 100,
    seed: 1,
    mode: 'exact',
    maxCorr: f64(v),
    partner: i32(v.map((x) => Math.round(x * 10))),
    baseline: f64(v.map((x) => x / 2)),
    baselinePartner: i32(v.map(() => 0)),
  });

  it('joins blocks in any order into one result over every reference neuron', () => {
    const m = mergeBlocks([block(3, [0.4, 0.5]), block(0, [0.1, 0.2, 0.3])], 5);
    assert.equal(m.refStart, 0);
    assert.deepEqual(Array.from(m.maxCorr), [0.1, 0.2, 0.3, 0.4, 0.5]);
    assert.deepEqual(Array.from(m.partner), [1, 2, 3, 4, 5]);
    assert.deepEqual(Array.from(m.baseline), [0.05, 0.1, 0.15, 0.2, 0.25]);
  });

  it('refuses gaps, overlaps and blocks from different runs', () => {
    assert.throws(() => mergeBlocks([block(0, [0.1, 0.2]), block(3, [0.4])], 4), EngineError);
    assert.throws(() => mergeBlocks([block(0, [0.1, 0.2]), block(1, [0.4, 0.5])], 3), EngineError);
    assert.throws(() => mergeBlocks([block(0, [0.1]), { ...block(1, [0.4]), n: 99 }], 2), EngineError);
  });
});
