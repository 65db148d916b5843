/**
 * One row's family, best label, VR and roles (the run's family columns, read and checked by
 * src/engine/run/families.ts), and the lines the host's hover, Runs tree and neuron picker show
 * for a neuron. The view layer: no `vscode`, DOM or Node import.
 */
import type { Role } from '../protocol';
import { describeLabel, familyName, isExplained, ROLE_TITLES } from './familyText';

/** The family and role columns of a run, as src/engine/run/families.ts reads them (null: not in the run). */
export interface FamilyColumnsIn {
  family: readonly (string | null)[] | null;
  familyLabel: readonly (string | null)[] | null;
  familyVr: ArrayLike<number> | null;
  roles: readonly (readonly Role[])[] | null;
}

export interface RowFamily {
  family?: string;
  /** Machine-readable (`unigram:the`). */
  familyLabel?: string;
  familyVr?: number;
  /** The primary role first; absent when the run has no role columns. */
  roles?: Role[];
}

/** A row's family, label, VR and roles from the run's optional columns (absent ones stay undefined). */
export function familyOf(run: { families: FamilyColumnsIn }, r: number): RowFamily {
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

/** A neuron's line in the Runs tree: `excess 0.712 · token is “the” · prediction`. */
export function neuronDescription(excess: number, f: RowFamily): string {
  const explained = isExplained(f.family) && f.familyLabel ? describeLabel(f.familyLabel) : undefined;
  const roles = f.roles?.map((r) => ROLE_TITLES[r]).join(', ');
  return [`excess ${excess.toFixed(3)}`, explained, roles].filter(Boolean).join(' · ');
}

/** A neuron's tooltip in the Runs tree: its numbers, then its family and roles when the run has them. */
export function neuronTooltip(label: string, excess: number, meanCorr: number | undefined, meanBaseline: number | undefined, f: RowFamily): string {
  const lines = [
    `${label}: excess ${excess.toFixed(3)}${meanCorr !== undefined ? `, mean corr ${meanCorr.toFixed(3)}` : ''}${meanBaseline !== undefined ? `, mean baseline ${meanBaseline.toFixed(3)}` : ''}`,
  ];
  if (f.family) {
    const best = f.familyLabel ? `${isExplained(f.family) ? 'explained by' : 'best label'}: ${describeLabel(f.familyLabel)}` : '';
    const vr = f.familyVr !== undefined ? ` (VR ${f.familyVr.toFixed(2)})` : '';
    lines.push(`family: ${familyName(f.family)}${best ? ` · ${best}${vr}` : ''}`);
  }
  const roles = f.roles?.map((r) => ROLE_TITLES[r]).join(', ');
  if (roles) lines.push(`role${f.roles!.length > 1 ? 's' : ''}: ${roles}`);
  return lines.join('\n');
}
