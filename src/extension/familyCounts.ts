/**
 * Tallies for the overview's family and role pictures: per layer, all neurons and the universal
 * ones. Plain counting over the run's columns (the science is in the engine's columns).
 */
import { ROLES, type FamilyLayerCounts, type Role, type RoleCount } from '../protocol';
import { compareFamilies } from '../engine/familyText';

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
