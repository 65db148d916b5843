/**
 * One row's family, best label, VR and roles from a run's optional columns (`family`,
 * `family_label`, `family_vr`, `role`, `roles`), for the host's hover, tree and neuron picker. The
 * engine's run view reads every column generically; this picks and checks the family ones. No
 * `vscode` import (unit-tested).
 */
import type { RunView } from '../engine/runView';
import { isRole, type Role } from '../protocol';
import { describeLabel, familyName, isExplained, ROLE_TITLES } from '../engine/familyText';

export interface RowFamily {
  family?: string;
  /** Machine-readable (`unigram:the`). */
  familyLabel?: string;
  familyVr?: number;
  /** The primary role first; absent when the run has no role columns. */
  roles?: Role[];
}

/** A row's family, label, VR and roles from the run's optional columns (absent ones stay undefined). */
export function familyOf(run: Pick<RunView, 'family' | 'text' | 'columns'>, r: number): RowFamily {
  const out: RowFamily = {};
  const family = run.family?.[r];
  if (family) out.family = family;
  const label = run.text.family_label?.[r];
  if (label) out.familyLabel = label;
  const vr = run.columns.family_vr?.[r];
  if (vr !== undefined && Number.isFinite(vr)) out.familyVr = vr;
  const primary = run.text.role;
  const all = run.text.roles;
  if (primary || all) {
    const list = [primary?.[r] ?? '', ...(all?.[r] ?? '').split(',')].map((x) => x.trim()).filter(isRole);
    out.roles = [...new Set<Role>(list)];
  }
  return out;
}

/** `unigram · token is “the” · prediction`: a one-line summary (undefined when the run says nothing). */
export function familySummary(f: RowFamily): string | undefined {
  const parts: string[] = [];
  if (f.family) parts.push(familyName(f.family));
  if (isExplained(f.family) && f.familyLabel) parts.push(describeLabel(f.familyLabel));
  if (f.roles?.length) parts.push(f.roles.map((r) => ROLE_TITLES[r]).join(', '));
  return parts.length ? parts.join(' · ') : undefined;
}
