/**
 * A run's universal neurons in the order the editor lists them (the neuron picker, the Runs tree):
 * ranked by excess correlation, grouped by layer and family. Pure functions over the run's
 * columns (the view layer).
 */

/** What ranking reads of a run (src/engine/run/view.ts RunView has it). */
export interface RankedRun {
  excess: ArrayLike<number>;
  layer: ArrayLike<number>;
  neuron: ArrayLike<number>;
  /** Per row, 1/true: universal. */
  universal: ArrayLike<number | boolean>;
  /** Family per row ('' = none); undefined: the run has no families. */
  family: readonly string[] | undefined;
  reference: { nLayers: number };
}

/** Rows by excess correlation, highest first (NaN last; ties: lower layer, lower neuron). */
export function rankByExcess(run: Pick<RankedRun, 'excess' | 'layer' | 'neuron' | 'universal'>, k: number, onlyUniversal = false): number[] {
  const rows: number[] = [];
  for (let r = 0; r < run.excess.length; r++) if (!onlyUniversal || run.universal[r]) rows.push(r);
  const key = (r: number) => (Number.isNaN(run.excess[r]!) ? -Infinity : run.excess[r]!);
  rows.sort((a, b) => key(b) - key(a) || run.layer[a]! - run.layer[b]! || run.neuron[a]! - run.neuron[b]!);
  return rows.slice(0, Math.max(0, k));
}

export const NO_FAMILY = 'no family assigned';

/**
 * Universal neurons grouped by layer, then by family (families sorted by name, the unassigned
 * group last), each group by excess correlation, highest first.
 */
export function universalByLayerAndFamily(
  run: RankedRun,
): { layer: number; families: { family: string; rows: number[] }[] }[] {
  const byLayer = new Map<number, Map<string, number[]>>();
  for (const r of rankByExcess(run, run.excess.length, true)) {
    const l = run.layer[r]!;
    const fam = run.family?.[r] || NO_FAMILY;
    let m = byLayer.get(l);
    if (!m) byLayer.set(l, (m = new Map()));
    let list = m.get(fam);
    if (!list) m.set(fam, (list = []));
    list.push(r);
  }
  const out: { layer: number; families: { family: string; rows: number[] }[] }[] = [];
  for (let l = 0; l < run.reference.nLayers; l++) {
    const m = byLayer.get(l) ?? new Map<string, number[]>();
    const families = [...m.entries()]
      .sort(([a], [b]) => (a === NO_FAMILY ? 1 : b === NO_FAMILY ? -1 : a < b ? -1 : a > b ? 1 : 0))
      .map(([family, rows]) => ({ family, rows }));
    out.push({ layer: l, families });
  }
  return out;
}
