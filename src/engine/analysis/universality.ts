/**
 * The per-neuron universality table (docs/method-notes.md, "Summary per neuron of a"): the per-model maxima
 * of CrossMoments combined over the other models, the excess correlation, the universal flag, a
 * per-layer summary and the counts at a few thresholds. Pure functions, no I/O.
 *
 * Column names follow the paper's universal.csv, so the store can write them as they are.
 */
import { EngineError } from '../errors';
import { DEFAULT_THRESHOLD, isUniversal, SUMMARY_THRESHOLDS } from '../run/defaults';
import { neuronName } from './types';

/** What universality needs from one CrossMoments result (reference vs one other model). */
export interface PairCorrelations {
  maxCorr: Float64Array;
  /** Column of the other model; −1 for none. */
  partner: Int32Array;
  baseline: Float64Array;
}

export interface OtherModel {
  /** e.g. `tiny-gpt2-b` */
  label: string;
  /** The other model's d_mlp, to name partners `L{l}.N{n}`. */
  dMlp: number;
  result: PairCorrelations;
}

export interface UniversalityOptions {
  /** Universal ⇔ excess_corr > threshold (default run/defaults.ts DEFAULT_THRESHOLD). */
  threshold?: number;
  /** Thresholds for the count table (default 0.3, 0.4, 0.5). */
  thresholds?: number[];
  /** How many of the most universal neurons to list (default 25). */
  top?: number;
}

export interface LayerSummary {
  layer: number;
  neurons: number;
  universal: number;
  /** universal / neurons · 100 */
  percent: number;
  /** Medians over the layer's neurons. */
  medianExcess: number;
  medianBaseline: number;
  medianMeanCorr: number;
}

export interface Partner {
  model: string;
  layer: number;
  neuron: number;
  corr: number;
}

export interface TopNeuron {
  layer: number;
  neuron: number;
  name: string;
  excess_corr: number;
  mean_corr: number;
  mean_baseline: number;
  /** Best partner in every other model. */
  partners: (Partner | null)[];
}

export interface UniversalityTable {
  threshold: number;
  models: string[];
  /** Per reference neuron, in column order (layer·d_mlp + neuron). */
  layer: Int32Array;
  neuron: Int32Array;
  max_corr: Float64Array;
  mean_corr: Float64Array;
  min_corr: Float64Array;
  max_baseline: Float64Array;
  min_baseline: Float64Array;
  mean_baseline: Float64Array;
  excess_corr: Float64Array;
  /** 1 when excess_corr > threshold. */
  universal: Uint8Array;
  total: { neurons: number; universal: number; percent: number };
  layers: LayerSummary[];
  /** Neurons with excess_corr above each threshold. */
  counts: { threshold: number; count: number; percent: number }[];
  /** Medians over the universal neurons (paper, GPT2-small: mean_corr ≈ 0.75, mean_baseline ≈ 0.155); null when there are none. */
  universalMedians: { mean_corr: number | null; mean_baseline: number | null };
  top: TopNeuron[];
}

/** Median of the values (mean of the middle two for an even count); NaN for none. */
export function median(values: ArrayLike<number>): number {
  const v = Float64Array.from(values).sort();
  const n = v.length;
  if (n === 0) return NaN;
  return n % 2 ? v[(n - 1) / 2]! : (v[n / 2 - 1]! + v[n / 2]!) / 2;
}

/**
 * Combines one CrossMoments result per other model (all over every reference neuron) into the
 * universality table of the reference model.
 */
export function universalityTable(
  others: readonly OtherModel[],
  ref: { nLayers: number; dMlp: number },
  opts: UniversalityOptions = {},
): UniversalityTable {
  const threshold = opts.threshold ?? DEFAULT_THRESHOLD;
  const thresholds = opts.thresholds ?? [...SUMMARY_THRESHOLDS];
  const topK = opts.top ?? 25;
  if (!Number.isFinite(threshold)) throw new EngineError(`universality threshold ${threshold} is not a number`);
  if (others.length === 0) throw new EngineError('universality needs the results of at least one other model');
  const N = ref.nLayers * ref.dMlp;
  for (const o of others) {
    const r = o.result;
    if (r.maxCorr.length !== N || r.baseline.length !== N || r.partner.length !== N) {
      throw new EngineError(`universality: the results for ${o.label} cover ${r.maxCorr.length} neurons; the reference has ${N} (merge the blocks first)`);
    }
    for (let i = 0; i < N; i++) {
      if (!Number.isFinite(r.maxCorr[i]!) || !Number.isFinite(r.baseline[i]!)) {
        throw new EngineError(`universality: ${o.label} has a non-finite correlation at ${neuronName(Math.floor(i / ref.dMlp), i % ref.dMlp)}`);
      }
    }
  }
  const M = others.length;
  const t: UniversalityTable = {
    threshold,
    models: others.map((o) => o.label),
    layer: new Int32Array(N),
    neuron: new Int32Array(N),
    max_corr: new Float64Array(N),
    mean_corr: new Float64Array(N),
    min_corr: new Float64Array(N),
    max_baseline: new Float64Array(N),
    min_baseline: new Float64Array(N),
    mean_baseline: new Float64Array(N),
    excess_corr: new Float64Array(N),
    universal: new Uint8Array(N),
    total: { neurons: N, universal: 0, percent: 0 },
    layers: [],
    counts: [],
    universalMedians: { mean_corr: null, mean_baseline: null },
    top: [],
  };
  for (let i = 0; i < N; i++) {
    t.layer[i] = Math.floor(i / ref.dMlp);
    t.neuron[i] = i % ref.dMlp;
    let cMax = -Infinity;
    let cMin = Infinity;
    let cSum = 0;
    let bMax = -Infinity;
    let bMin = Infinity;
    let bSum = 0;
    for (const o of others) {
      const c = o.result.maxCorr[i]!;
      const b = o.result.baseline[i]!;
      cMax = Math.max(cMax, c);
      cMin = Math.min(cMin, c);
      cSum += c;
      bMax = Math.max(bMax, b);
      bMin = Math.min(bMin, b);
      bSum += b;
    }
    t.max_corr[i] = cMax;
    t.min_corr[i] = cMin;
    t.mean_corr[i] = cSum / M;
    t.max_baseline[i] = bMax;
    t.min_baseline[i] = bMin;
    t.mean_baseline[i] = bSum / M;
    t.excess_corr[i] = t.mean_corr[i]! - t.mean_baseline[i]!;
    if (isUniversal(t.excess_corr[i]!, threshold)) {
      t.universal[i] = 1;
      t.total.universal++;
    }
  }
  t.total.percent = (100 * t.total.universal) / N;
  for (let l = 0; l < ref.nLayers; l++) {
    const lo = l * ref.dMlp;
    const hi = lo + ref.dMlp;
    let u = 0;
    for (let i = lo; i < hi; i++) u += t.universal[i]!;
    t.layers.push({
      layer: l,
      neurons: ref.dMlp,
      universal: u,
      percent: (100 * u) / ref.dMlp,
      medianExcess: median(t.excess_corr.subarray(lo, hi)),
      medianBaseline: median(t.mean_baseline.subarray(lo, hi)),
      medianMeanCorr: median(t.mean_corr.subarray(lo, hi)),
    });
  }
  for (const th of thresholds) {
    let c = 0;
    for (let i = 0; i < N; i++) if (isUniversal(t.excess_corr[i]!, th)) c++;
    t.counts.push({ threshold: th, count: c, percent: (100 * c) / N });
  }
  const uni = [...Array(N).keys()].filter((i) => t.universal[i]);
  if (uni.length) {
    t.universalMedians = { mean_corr: median(uni.map((i) => t.mean_corr[i]!)), mean_baseline: median(uni.map((i) => t.mean_baseline[i]!)) };
  }
  uni.sort((a, b) => t.excess_corr[b]! - t.excess_corr[a]! || a - b);
  t.top = uni.slice(0, topK).map((i) => ({
    layer: t.layer[i]!,
    neuron: t.neuron[i]!,
    name: neuronName(t.layer[i]!, t.neuron[i]!),
    excess_corr: t.excess_corr[i]!,
    mean_corr: t.mean_corr[i]!,
    mean_baseline: t.mean_baseline[i]!,
    partners: others.map((o) => {
      const j = o.result.partner[i]!;
      return j < 0 ? null : { model: o.label, layer: Math.floor(j / o.dMlp), neuron: j % o.dMlp, corr: o.result.maxCorr[i]! };
    }),
  }));
  return t;
}
