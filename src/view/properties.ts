/**
 * "Properties of universal neurons" (the paper's Fig. 3) and "is the basis privileged?" as data:
 * pure functions over a run's columns, shared by the overview payload and the CLI summary.
 *
 * Properties: each statistic is turned into a percentile rank within the neuron's layer
 * (percentile.ts: mid-rank over the layer's finite values, every neuron of the layer counted), and
 * the ranks of universal neurons and of the rest are summarised by quantiles. Ranking within the
 * layer is what the paper does: raw values differ by layer (norms grow with depth), ranks do not.
 *
 * Basis: per layer, the distribution of the rotated baseline (mean_baseline: the best correlation a
 * randomly rotated basis of the other models reaches) against the neurons' own mean_corr.
 */
import { percentileRanksWithinLayer } from './percentile';

/** The statistics of the paper's figure, in its order: columns of neurons.arrow and universal.csv (a subset of engine/run/neurons.ts PAPER_COLUMNS, which the view may not import; a test checks). */
export const PROPERTY_STATS = [
  'w_in_norm',
  'input_bias',
  'w_out_norm',
  'in_out_sim',
  'l2_penalty',
  'mean',
  'skew',
  'kurt',
  'sparsity',
  'vocab_mean',
  'vocab_var',
  'vocab_skew',
  'vocab_kurt',
] as const;
export type PropertyStat = (typeof PROPERTY_STATS)[number];

/** The quantiles shown for a distribution (a box: whiskers at 10 and 90, box 25–75, line at 50). */
export interface Quantiles {
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of the finite values, by linear interpolation between order
 * statistics (numpy's default, `np.quantile(v, q)`); NaN when there is none.
 */
export function quantile(values: ArrayLike<number>, q: number): number {
  return quantileSorted(sortedFinite(values), q);
}

function sortedFinite(values: ArrayLike<number>): Float64Array {
  const v: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]!)) v.push(values[i]!);
  return Float64Array.from(v).sort();
}

function quantileSorted(v: Float64Array, q: number): number {
  if (v.length === 0) return NaN;
  const h = (v.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(v.length - 1, lo + 1);
  return v[lo]! + (h - lo) * (v[hi]! - v[lo]!);
}

/** p10, p25, p50, p75, p90 of the finite values (all NaN when there is none). */
export function quantiles(values: ArrayLike<number>): Quantiles {
  const v = sortedFinite(values);
  return { p10: quantileSorted(v, 0.1), p25: quantileSorted(v, 0.25), p50: quantileSorted(v, 0.5), p75: quantileSorted(v, 0.75), p90: quantileSorted(v, 0.9) };
}

export interface PropertySummary {
  stat: PropertyStat;
  /** Within-layer percentile ranks (0–100) of the universal neurons and of the rest. */
  universal: Quantiles;
  rest: Quantiles;
  /** Neurons with a finite value, in each group. */
  nUniversal: number;
  nRest: number;
  /** Median raw value (the column's own units) in each group. */
  medianUniversal: number;
  medianRest: number;
}

export interface UniversalProperties {
  stats: PropertySummary[];
  /** Statistics of PROPERTY_STATS the table lacks (an older run, or a CSV with fewer columns). */
  missing: PropertyStat[];
}

/**
 * Within-layer percentiles of each statistic, summarised for universal neurons against the rest.
 * `layer[i]`, `universal[i]` and every column's `[i]` describe one neuron; the table must hold
 * every neuron of each layer it covers (a layer's ranks are relative to the neurons given).
 */
export function universalProperties(
  layer: ArrayLike<number>,
  universal: ArrayLike<boolean | number>,
  columns: { get(name: string): ArrayLike<number> | undefined },
): UniversalProperties {
  const stats: PropertySummary[] = [];
  const missing: PropertyStat[] = [];
  for (const stat of PROPERTY_STATS) {
    const values = columns.get(stat);
    if (!values || values.length !== layer.length) {
      missing.push(stat);
      continue;
    }
    const ranks = percentileRanksWithinLayer(values, layer);
    const [ru, rr, vu, vr] = [[], [], [], []] as number[][];
    for (let i = 0; i < layer.length; i++) {
      if (!Number.isFinite(ranks[i]!)) continue;
      if (universal[i]) {
        ru!.push(ranks[i]!);
        vu!.push(values[i]!);
      } else {
        rr!.push(ranks[i]!);
        vr!.push(values[i]!);
      }
    }
    stats.push({
      stat,
      universal: quantiles(ru!),
      rest: quantiles(rr!),
      nUniversal: ru!.length,
      nRest: rr!.length,
      medianUniversal: quantile(vu!, 0.5),
      medianRest: quantile(vr!, 0.5),
    });
  }
  return { stats, missing };
}

/**
 * Median raw value of each statistic over the given rows (the paper's published universal.csv
 * holds only universal neurons, so its ranks within a layer are unknown: raw medians are what
 * compare). Statistics the table lacks are in `missing`.
 */
export function statMedians(columns: { get(name: string): ArrayLike<number> | undefined }, rows?: ArrayLike<number>): { medians: Map<PropertyStat, number>; missing: PropertyStat[] } {
  const medians = new Map<PropertyStat, number>();
  const missing: PropertyStat[] = [];
  for (const stat of PROPERTY_STATS) {
    const c = columns.get(stat);
    if (!c) {
      missing.push(stat);
      continue;
    }
    medians.set(stat, quantile(rows ? Array.from(rows, (i) => c[i]!) : c, 0.5));
  }
  return { medians, missing };
}

// ---------------------------------------------------------------------------------------------
// Is the basis privileged?

export interface LayerBasis {
  layer: number;
  /** The rotated baseline (mean_baseline) over the layer's neurons. */
  baseline: Quantiles;
  /** The neurons' own mean_corr over the layer. */
  corr: Quantiles;
  /** Share (0–1) of the layer's neurons whose mean_corr exceeds the baseline's 90th percentile. */
  aboveBaseline: number;
  /** Top-5 principal components' share (0–1) of the activation variance; null: not in this run. */
  pcaTop5: number | null;
  /** Neurons beat random directions: the median neuron's mean_corr exceeds the baseline's 90th percentile. */
  privileged: boolean;
}

/**
 * Per layer 0..nLayers−1: the rotated baseline's and mean_corr's quantiles and the reading. The
 * rule is stated in the reading itself (basisReading) so that a user can check it.
 */
export function layerBasis(
  layer: ArrayLike<number>,
  meanCorr: ArrayLike<number>,
  meanBaseline: ArrayLike<number>,
  nLayers: number,
  pcaTop5: readonly (number | null)[] | null,
): LayerBasis[] {
  const corr: number[][] = Array.from({ length: nLayers }, () => []);
  const base: number[][] = Array.from({ length: nLayers }, () => []);
  for (let i = 0; i < layer.length; i++) {
    const l = layer[i]!;
    if (!(l >= 0 && l < nLayers)) continue;
    corr[l]!.push(meanCorr[i]!);
    base[l]!.push(meanBaseline[i]!);
  }
  return corr.map((c, l) => {
    const b = quantiles(base[l]!);
    const q = quantiles(c);
    let above = 0;
    let n = 0;
    for (const x of c) {
      if (!Number.isFinite(x)) continue;
      n++;
      if (x > b.p90) above++;
    }
    return { layer: l, baseline: b, corr: q, aboveBaseline: n ? above / n : NaN, pcaTop5: pcaTop5?.[l] ?? null, privileged: q.p50 > b.p90 };
  });
}

/** The one-line reading of a layer's basis. */
export function basisReading(b: LayerBasis): string {
  if (!Number.isFinite(b.corr.p50) || !Number.isFinite(b.baseline.p90)) return 'no correlations in this layer';
  const verb = b.privileged ? 'are' : 'are not';
  return `neurons here ${verb} more meaningful than random directions (median mean_corr ${b.corr.p50.toFixed(3)} ${b.privileged ? '>' : '≤'} the rotated baseline's 90th percentile ${b.baseline.p90.toFixed(3)})`;
}
