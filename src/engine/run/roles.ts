/**
 * `roles.json` (written with the family analysis, familyResults.ts):
 *
 *   { "entropy":   [ { layer, neuron, candidate?, rows?, baseline: {lnScale, entropy, loss},
 *                      points: [ {value, lnScale, entropy, loss, dLoss, dEntropy}, … ] } ],
 *     "attention": [ { layer, neuron, head: "L3.H1", score, raw }, … ]   (largest |raw| = |h| first),
 *     "baseline": …, "thresholds": …, "entropyQuery": …, "intervention": { rows, neurons, values },
 *     "attentionQuery": { positions: [1, n_ctx−1], rotaryDims, rotaryBase }   (rotary models only: the
 *                        query positions the attention score averages over; analysis/roles.ts) }
 *
 * Reading checks every entry; a bad entry is skipped and counted in the note, a bad file gives
 * only a note: the neuron pages must open whatever this optional file holds. Non-finite numbers
 * become null (JSON itself has none, but a writer may use null for them).
 */
import * as fs from 'node:fs';
import { writeJsonAtomic } from '../store';
import { runFile } from './files';

/** A number that may be missing (JSON has no NaN). */
export type Num = number | null;

export interface EntropyPoint {
  lnScale: Num;
  entropy: Num;
  loss: Num;
}

/** The entropy intervention of one neuron: its activation fixed to `value` at every position. */
export interface EntropyIntervention {
  /** Whether the neuron passes the entropy-neuron rule (false: the run's closest candidate, measured to show the shape). */
  candidate?: boolean;
  baseline: EntropyPoint;
  points: (EntropyPoint & { value: number; dLoss: Num; dEntropy: Num })[];
}

/** An attention-deactivation pair: a neuron against a later head. */
export interface AttentionPair {
  layer: number;
  neuron: number;
  /** `L3.H1` */
  head: string;
  /** z-score against random unit directions. */
  score: Num;
  /** The raw score (null when the file gives only the z-score). */
  raw: Num;
}

export interface RolesFile {
  /** Entropy interventions by neuron column l·d_mlp+n. */
  entropy: Map<number, EntropyIntervention>;
  /** Attention pairs, largest |h| first. */
  attention: AttentionPair[];
  note?: string;
}

/** An attention head as the engine names it (`L3.H1`). */
export const isHeadName = (v: unknown): v is string => typeof v === 'string' && /^L\d{1,4}\.H\d{1,4}$/.test(v);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A number or null; undefined when the value is of another type (the entry is then bad). */
const numOrNull = (v: unknown): Num | undefined => (v === null ? null : typeof v === 'number' ? (Number.isFinite(v) ? v : null) : undefined);

function point(v: unknown): EntropyPoint | undefined {
  if (!isObj(v)) return undefined;
  const lnScale = numOrNull(v.lnScale);
  const entropy = numOrNull(v.entropy);
  const loss = numOrNull(v.loss);
  if (lnScale === undefined || entropy === undefined || loss === undefined) return undefined;
  return { lnScale, entropy, loss };
}

/** Writes `roles.json` of the run in `dir`. */
export function writeRoles(dir: string, roles: { entropy: unknown[]; attention: unknown[]; baseline: unknown; thresholds: unknown; [more: string]: unknown }): void {
  writeJsonAtomic(runFile(dir, 'roles'), roles);
}

/** null when the run has no roles.json. `inRun(l, n)` gives the neuron's column when it is in the run. */
export function readRoles(runDir: string, inRun: (layer: number, neuron: number) => number | undefined): RolesFile | null {
  const path = runFile(runDir, 'roles');
  if (!fs.existsSync(path)) return null;
  const empty = (why: string): RolesFile => ({ entropy: new Map(), attention: [], note: `${path} ${why}: no role interventions shown` });
  let j: unknown;
  try {
    j = JSON.parse(fs.readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    return empty(`is unreadable or not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(j)) return empty('is not a JSON object');
  let skipped = 0;
  const entropy = new Map<number, EntropyIntervention>();
  for (const e of Array.isArray(j.entropy) ? j.entropy : []) {
    const col = isObj(e) && nat(e.layer) && nat(e.neuron) ? inRun(e.layer, e.neuron) : undefined;
    const baseline = isObj(e) ? point(e.baseline) : undefined;
    if (col === undefined || !baseline || !isObj(e) || !Array.isArray(e.points)) {
      skipped++;
      continue;
    }
    const points: EntropyIntervention['points'] = [];
    for (const p of e.points) {
      const q = point(p);
      const dLoss = isObj(p) ? numOrNull(p.dLoss ?? null) : undefined;
      const dEntropy = isObj(p) ? numOrNull(p.dEntropy ?? null) : undefined;
      if (!q || !isObj(p) || typeof p.value !== 'number' || !Number.isFinite(p.value) || dLoss === undefined || dEntropy === undefined) {
        skipped++;
        continue;
      }
      points.push({ value: p.value, ...q, dLoss, dEntropy });
    }
    points.sort((a, b) => a.value - b.value);
    entropy.set(col, { ...(typeof e.candidate === 'boolean' ? { candidate: e.candidate } : {}), baseline, points });
  }
  const attention: AttentionPair[] = [];
  for (const a of Array.isArray(j.attention) ? j.attention : []) {
    const ok = isObj(a) && nat(a.layer) && nat(a.neuron) && inRun(a.layer, a.neuron) !== undefined && isHeadName(a.head);
    const score = isObj(a) ? numOrNull(a.score) : undefined;
    const raw = isObj(a) ? numOrNull(a.raw ?? null) : undefined;
    if (!ok || score === undefined || raw === undefined) {
      skipped++;
      continue;
    }
    attention.push({ layer: a.layer as number, neuron: a.neuron as number, head: a.head as string, score, raw });
  }
  // Largest |h| first, as the engine lists them; by z-score where a file gives no h.
  const key = (a: AttentionPair): number => (a.raw !== null ? Math.abs(a.raw) : -Infinity);
  attention.sort((x, y) => key(y) - key(x) || (y.score ?? -Infinity) - (x.score ?? -Infinity));
  return { entropy, attention, ...(skipped ? { note: `${path}: ${skipped} malformed entr${skipped === 1 ? 'y' : 'ies'} skipped` } : {}) };
}
