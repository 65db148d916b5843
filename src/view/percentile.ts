/**
 * Percentile ranks within a layer (paper Fig. 3 compares universal neurons to the rest of their
 * layer this way). Pure functions, no I/O.
 *
 * Definition: the mid-rank percentile, 100 · (#{v < x} + ½·#{v = x}) / n over the layer's finite
 * values. It is symmetric (the smallest of n distinct values gets 50/n, the largest 100 − 50/n),
 * ties share one rank, and a layer of equal values puts all of them at 50. NaN/±Infinity values
 * neither count in n nor get a rank (NaN out).
 */

/** Percentile rank of `x` among the finite values of `sample` (NaN when x is not finite or the sample has none). */
export function percentileRank(x: number, sample: ArrayLike<number>): number {
  if (!Number.isFinite(x)) return NaN;
  let n = 0;
  let below = 0;
  let equal = 0;
  for (let i = 0; i < sample.length; i++) {
    const v = sample[i]!;
    if (!Number.isFinite(v)) continue;
    n++;
    if (v < x) below++;
    else if (v === x) equal++;
  }
  return n === 0 ? NaN : (100 * (below + equal / 2)) / n;
}

/**
 * Percentile rank of every value within its own layer, in one sort per layer (O(n log n)).
 * `layers[i]` is the layer of `values[i]`; rows of one layer need not be contiguous.
 */
export function percentileRanksWithinLayer(values: ArrayLike<number>, layers: ArrayLike<number>): Float64Array {
  if (values.length !== layers.length) throw new RangeError(`values (${values.length}) and layers (${layers.length}) differ in length`);
  const out = new Float64Array(values.length).fill(NaN);
  const byLayer = new Map<number, number[]>();
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) continue;
    const l = layers[i]!;
    let rows = byLayer.get(l);
    if (!rows) byLayer.set(l, (rows = []));
    rows.push(i);
  }
  for (const rows of byLayer.values()) {
    rows.sort((a, b) => values[a]! - values[b]!);
    const n = rows.length;
    for (let s = 0; s < n; ) {
      let e = s + 1;
      while (e < n && values[rows[e]!]! === values[rows[s]!]!) e++;
      const p = (100 * (s + (e - s) / 2)) / n;
      for (let k = s; k < e; k++) out[rows[k]!] = p;
      s = e;
    }
  }
  return out;
}
