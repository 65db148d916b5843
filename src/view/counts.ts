/**
 * Family and role tallies the views show: the overview's pictures (per family, per layer, per
 * role; all neurons beside the universal ones) and the neuron picker's family groups. Plain
 * counting over the run's columns (the science is in the engine's columns).
 */
import { ROLES, type FamilyCount, type FamilyLayerCounts, type Role, type RoleCount } from '../protocol';
import { compareFamilies } from './familyText';

/**
 * Neurons per family, most first, then by name. A neuron with no family (null or '') is left out,
 * or counted under `unassigned` when given; with `universalOnly` only universal neurons count.
 */
export function familyCounts(
  family: readonly (string | null | undefined)[],
  universal: ArrayLike<boolean | number>,
  opts: { unassigned?: string; universalOnly?: boolean } = {},
): FamilyCount[] {
  const m = new Map<string, FamilyCount>();
  family.forEach((name, i) => {
    const f = name || opts.unassigned;
    if (!f || (opts.universalOnly && !universal[i])) return;
    let t = m.get(f);
    if (!t) m.set(f, (t = { family: f, neurons: 0, universal: 0 }));
    t.neurons++;
    if (universal[i]) t.universal++;
  });
  return [...m.values()].sort((x, y) => y.neurons - x.neurons || (x.family < y.family ? -1 : x.family > y.family ? 1 : 0));
}

/** One entry per family present (display order), counts indexed by layer. Neurons with no family are left out. */
export function familyLayerCounts(
  family: readonly (string | null)[],
  layer: ArrayLike<number>,
  universal: readonly boolean[],
  nLayers: number,
): FamilyLayerCounts[] {
  const by = new Map<string, FamilyLayerCounts>();
  for (let i = 0; i < family.length; i++) {
    const f = family[i];
    const l = layer[i]!;
    if (!f || !(l >= 0 && l < nLayers)) continue;
    let c = by.get(f);
    if (!c) by.set(f, (c = { family: f, all: new Array<number>(nLayers).fill(0), universal: new Array<number>(nLayers).fill(0) }));
    c.all[l]!++;
    if (universal[i]) c.universal[l]!++;
  }
  return [...by.values()].sort((a, b) => compareFamilies(a.family, b.family));
}

/** Every role (ROLES order), with the neurons holding it; a neuron with several roles counts under each. */
export function roleCounts(roles: readonly (readonly Role[])[], layer: ArrayLike<number>, universal: readonly boolean[], nLayers: number): RoleCount[] {
  const out = ROLES.map((role): RoleCount => ({ role, neurons: 0, universal: 0, byLayer: new Array<number>(nLayers).fill(0) }));
  const at = new Map(out.map((c) => [c.role, c]));
  for (let i = 0; i < roles.length; i++) {
    const l = layer[i]!;
    for (const r of roles[i]!) {
      const c = at.get(r)!;
      c.neurons++;
      if (universal[i]) c.universal++;
      if (l >= 0 && l < nLayers) c.byLayer[l]!++;
    }
  }
  return out;
}
