/**
 * One row's family, best label, VR and roles (the run view's family columns, read and checked by
 * src/engine/run/families.ts), for the host's hover, tree and neuron picker. No `vscode` import
 * (unit-tested).
 */
import type { RunView } from '../engine/run/view';
import type { Role } from '../protocol';
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
export function familyOf(run: Pick<RunView, 'families'>, r: number): RowFamily {
  const out: RowFamily = {};
  const f = run.families;
  const family = f.family?.[r];
  if (family) out.family = family;
  const label = f.familyLabel?.[r];
  if (label) out.familyLabel = label;
  const vr = f.familyVr?.[r];
  if (vr !== undefined && Number.isFinite(vr)) out.familyVr = vr;
  if (f.roles) out.roles = [...f.roles[r]!];
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
