/**
 * The roles' settings in one table: the CLI's `--roles K=V,...`, the editor's
 * `universalNeurons.roles` (package.json, checked against this table by roles-settings.test.ts)
 * and the analysis' defaults (analysis/familyResults.ts, analysis/roles.ts) read it. The manifest
 * records the values a run used (`choices.roles`, `choices.entropy_intervention`) and roles.json
 * repeats them (`entropyQuery`, `intervention`).
 */

export interface RoleSetting {
  /** The CLI key (`--roles entropy-l2=3`). */
  cli: string;
  default: number;
  /** Inclusive bounds; `exclusiveMin` makes the lower one exclusive. */
  min: number;
  max?: number;
  exclusiveMin?: boolean;
  integer?: boolean;
  description: string;
}

export const ROLE_SETTINGS = {
  entropyLayers: {
    cli: 'entropy-layers',
    default: 0.2,
    min: 0,
    exclusiveMin: true,
    max: 1,
    description: "Entropy candidates come from the last max(1, round(this × layers)) layers (the paper's layer ≥ 10 of 12 for GPT2-small).",
  },
  entropyL2: { cli: 'entropy-l2', default: 3, min: 0, description: "Entropy candidates: l2_penalty at least this (the paper's 3)." },
  entropyVocabKurt: { cli: 'entropy-vocab-kurt', default: 10, min: 0, description: "Entropy candidates: vocab_kurt at most this (the paper's 10)." },
  entropyKurt: { cli: 'entropy-kurt', default: 10, min: 0, description: "Entropy candidates: activation kurtosis (the paper's histogram column) at most this (the paper's 10)." },
  entropyNeurons: {
    cli: 'entropy-neurons',
    // The sweep (entropySweep.ts) shares one forward of the rows: a last-layer neuron adds a kernel
    // pass over its logits (~20 s for 256 rows on the shipped family), an earlier one 9 forwards of
    // the layers above it with the LM head (BENCHMARKS.md, "The entropy intervention from one forward").
    default: 1,
    min: 0,
    integer: true,
    description: 'Entropy intervention: this many of the top-ranked candidates (by vocab_var, smallest first) are measured; a last-layer one costs a kernel pass over the one shared forward, an earlier one 9 forwards of the layers above it.',
  },
  interventionRows: {
    cli: 'intervention-rows',
    default: 256,
    min: 1,
    integer: true,
    description: 'Entropy intervention: corpus rows scored (the first of the budget), shared by every measured neuron.',
  },
  attentionZ: {
    cli: 'attention-z',
    default: 5,
    min: 0,
    description: "Attention deactivation: a neuron has the role when h's z-score against random directions on some later head is above this.",
  },
  attentionPairs: { cli: 'attention-pairs', default: 20, min: 0, integer: true, description: 'Attention deactivation: neuron-head pairs listed in roles.json, the top by |h|.' },
} as const satisfies Record<string, RoleSetting>;

export type RoleSettingKey = keyof typeof ROLE_SETTINGS;
export type RoleSettings = Partial<Record<RoleSettingKey, number>>;

export const ROLE_SETTING_KEYS = Object.keys(ROLE_SETTINGS) as RoleSettingKey[];

/** Why `v` is not a valid value of the setting, or undefined when it is. */
export function roleSettingProblem(key: RoleSettingKey, v: number): string | undefined {
  const s: RoleSetting = ROLE_SETTINGS[key];
  const lo = s.exclusiveMin ? v > s.min : v >= s.min;
  if (Number.isFinite(v) && lo && (s.max === undefined || v <= s.max) && (!s.integer || Number.isInteger(v))) return undefined;
  const range = `${s.exclusiveMin ? '>' : '>='} ${s.min}${s.max !== undefined ? ` and <= ${s.max}` : ''}`;
  return `${s.cli} needs ${s.integer ? 'an integer' : 'a number'} ${range}, got ${v}`;
}
