/**
 * Small summaries the result views show (per-layer universal share, histograms, the reverse
 * partner index; family and role counts are counts.ts). Pure functions over a run's columns (the
 * view layer), so the extension host only loads and forwards data.
 */

export interface LayerShare {
  layer: number;
  neurons: number;
  universal: number;
  /** 0–100 */
  percent: number;
  /** Median excess_corr over the layer's universal neurons (NaN when none). */
  medianExcess: number;
}

export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Per layer 0..nLayers−1: neurons, universal neurons (the run's flags), their share and median excess. */
export function layerShares(layers: ArrayLike<number>, excess: ArrayLike<number>, universal: ArrayLike<boolean | number>, nLayers: number): LayerShare[] {
  const neurons = new Array<number>(nLayers).fill(0);
  const univ: number[][] = Array.from({ length: nLayers }, () => []);
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!;
    if (!(l >= 0 && l < nLayers)) continue;
    neurons[l]!++;
    if (universal[i]) univ[l]!.push(excess[i]!);
  }
  return neurons.map((n, layer) => ({
    layer,
    neurons: n,
    universal: univ[layer]!.length,
    percent: n ? (100 * univ[layer]!.length) / n : 0,
    medianExcess: median(univ[layer]!),
  }));
}

export interface Bins {
  edges: number[];
  counts: number[];
}

/**
 * Equal-width histogram of the finite values. Range [lo, hi] defaults to the data's; the last bin
 * is closed on the right. Values outside a given range are not counted.
 */
export function histogram(values: ArrayLike<number>, bins: number, lo?: number, hi?: number): Bins {
  if (!(Number.isInteger(bins) && bins > 0)) throw new RangeError(`bins ${bins} must be a positive integer`);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const a = lo ?? (Number.isFinite(min) ? min : 0);
  let b = hi ?? (Number.isFinite(max) ? max : 1);
  if (!(b > a)) b = a + 1;
  const w = (b - a) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, k) => (k === bins ? b : a + k * w));
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v) || v < a || v > b) continue;
    counts[Math.min(bins - 1, Math.floor((v - a) / w))]!++;
  }
  return { edges, counts };
}

export interface PartnerEdge {
  /** Reference neuron row (any stable index). */
  ref: number;
  /** Other model's index or label. */
  model: string;
  layer: number;
  neuron: number;
  corr: number;
}

/**
 * Reverse index: for each (model, partner layer, partner neuron), the reference neuron with the
 * highest correlation among those whose best partner it is (ties: the lower ref). Key
 * `${model}\0${layer}\0${neuron}`.
 */
export function bestReferenceByPartner(edges: Iterable<PartnerEdge>): Map<string, { ref: number; corr: number }> {
  const out = new Map<string, { ref: number; corr: number }>();
  for (const e of edges) {
    const key = partnerKey(e.model, e.layer, e.neuron);
    const c = Number.isFinite(e.corr) ? e.corr : -Infinity;
    const cur = out.get(key);
    if (!cur || c > cur.corr || (c === cur.corr && e.ref < cur.ref)) out.set(key, { ref: e.ref, corr: c });
  }
  return out;
}

export const partnerKey = (model: string, layer: number, neuron: number): string => `${model}\u0000${layer}\u0000${neuron}`;
