/**
 * Families and roles in a run folder (written with the family analysis, analysis/familyResults.ts):
 *   neurons.arrow            columns family, family_label, family_vr, position_mi, role, roles,
 *                            attn_head, attn_score, family_hits (read here into typed columns)
 *   families.arrow           every neuron's best label and VR of every label kind (long format)
 *   universal_families.csv   the universal neurons' family and role columns
 * roles.json is roles.ts.
 */
import { writeArrowAtomic, writeFileAtomic, type Column } from '../store';
import { runFile } from './files';
import { isHeadName } from './roles';

/** The roles, in the analysis' order of precedence (a neuron's primary role is the first that applies). */
export const ROLES = ['entropy', 'attention-deactivation', 'prediction', 'suppression', 'partition'] as const;
export type Role = (typeof ROLES)[number];
export const isRole = (v: unknown): v is Role => (ROLES as readonly unknown[]).includes(v);

/** Family labels longer than this are not labels this tool writes: read as absent. */
export const MAX_LABEL = 200;

/** The family and role columns of a run's table, typed and checked; null where the run lacks the column. */
export interface FamilyColumns {
  /** Family per row; null: in none. */
  family: (string | null)[] | null;
  /** Best explaining label per row, machine-readable (`unigram:the`). */
  familyLabel: (string | null)[] | null;
  familyVr: Float64Array | null;
  positionMi: Float64Array | null;
  /** Roles per row, the primary (`role`) first; unknown names dropped. */
  roles: Role[][] | null;
  /** Strongest attention-deactivation head per row (its z-score is `attnScore`). */
  attnHead: (string | null)[] | null;
  attnScore: Float64Array | null;
  /** Per row, '1'/'0' per stored top example: does its max token carry the label. */
  familyHits: (string | null)[] | null;
}

/** Reads the family and role columns out of a decoded table; a column of the wrong type counts as absent. */
export function familyColumns(table: { text?: ReadonlyMap<string, string[]>; columns: ReadonlyMap<string, Float64Array> }): FamilyColumns {
  const str = (name: string, ok: (x: string) => boolean = () => true): (string | null)[] | null =>
    table.text?.get(name)?.map((x) => (x !== '' && ok(x) ? x : null)) ?? null;
  const primary = table.text?.get('role');
  const all = table.text?.get('roles');
  let roles: Role[][] | null = null;
  if (primary || all) {
    const n = (primary ?? all)!.length;
    roles = Array.from({ length: n }, (_, i) => {
      const list = [primary?.[i] ?? '', ...(all?.[i] ?? '').split(',')].map((x) => x.trim()).filter(isRole);
      return [...new Set(list)];
    });
  }
  return {
    family: str('family'),
    familyLabel: str('family_label', (x) => x.length <= MAX_LABEL),
    familyVr: table.columns.get('family_vr') ?? null,
    positionMi: table.columns.get('position_mi') ?? null,
    roles,
    attnHead: str('attn_head', isHeadName),
    attnScore: table.columns.get('attn_score') ?? null,
    familyHits: str('family_hits', (x) => /^[01]+$/.test(x)),
  };
}

/** Writes `families.arrow` (layer, neuron, kind, label, vr). */
export function writeFamilies(
  dir: string,
  cols: { layer: Int32Array; neuron: Int32Array; kind: string[]; label: string[]; vr: Float64Array },
  metadata: Record<string, string>,
): Promise<void> {
  return writeArrowAtomic(runFile(dir, 'families'), cols, metadata);
}

/** universal_families.csv: layer, neuron, then the family and role columns, universal neurons only. */
export function writeUniversalFamilies(runDir: string, universal: readonly boolean[], dMlp: number, columns: Record<string, Column>): void {
  const cols = ['family', 'family_label', 'family_vr', 'position_mi', 'role', 'roles', 'attn_head', 'attn_score'] as const;
  const cell = (v: unknown): string => {
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
    const s = String(v ?? '');
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [['layer', 'neuron', ...cols].join(',')];
  universal.forEach((u, j) => {
    if (!u) return;
    lines.push([Math.floor(j / dMlp), j % dMlp, ...cols.map((k) => cell((columns[k] as ArrayLike<unknown>)[j]))].join(','));
  });
  writeFileAtomic(runFile(runDir, 'universalFamilies'), lines.join('\n') + '\n');
}
