/**
 * `manifest.json`: what a run is (models, corpus, settings) and where it stands (status,
 * progress, timings). The pipeline writes it as `Manifest` (`writeManifest`); every reader goes
 * through `readManifest` (or `readRunManifest`, the analysis' own: resume, merge, parts' status),
 * which checks it against `MANIFEST_SCHEMA` (src/schema.ts) rather than trusting a cast, so a
 * hand-edited, truncated or older manifest is refused with the field named, never a TypeError
 * later on.
 *
 * The schema requires what every reader needs (format, status, the models' folders and sizes)
 * and checks the type of every other field the pipeline writes where it is present: runs made by
 * earlier versions lack some of them (`settings.memoryGb`, `models[].tokenizer_sha256`, …).
 * Unknown fields are kept, so a reader that rewrites the manifest (workerClient.markStopped)
 * loses nothing.
 */
import * as fs from 'node:fs';
import { basename } from 'node:path';
import { array, boolean, integer, literal, nullable, number, object, optional, picklist, problem, record, refine, string, unknown, type Infer } from '../../schema';
import type { Corpus } from '../corpus';
import { RunError } from '../errors';
import { writeJsonAtomic } from '../store';
import { DEFAULT_THRESHOLD } from './defaults';
import { runFile } from './files';
import { statusText } from './liveness';

export const MANIFEST_FORMAT = 'universal-neurons/run@1';

export const RUN_STATUSES = ['running', 'cancelled', 'failed', 'complete'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export type Mode = 'exact' | 'fast';

/** The analysis settings, as given or defaulted (defaults.ts), recorded so that a run can be resumed. */
export interface Settings {
  reference: string;
  threshold: number;
  seed: number;
  batchRows: number;
  checkpointEvery: number;
  /**
   * …and at least this many seconds of stream apart (the default run's 60); 0 or missing (an
   * explicit `checkpointEvery`, and runs made before it existed): every checkpointEvery batches.
   */
  checkpointSeconds?: number;
  mode: Mode;
  /** onnxruntime threads as asked (0: the engine default). */
  threads: number;
  /** The threads this session actually used (`threads` resolved, threads.ts); set by each session, so a resumed run shows the last one's. */
  threadsUsed?: number;
  /** onnxruntime's execution provider of the last session (provider.ts); missing in earlier runs: cpu. */
  executionProvider?: 'cpu' | 'cuda';
  topK: number;
  tokens: number;
  /** Missing in runs made before blocking existed (resumed as unblocked). */
  memoryGb?: number;
  /** Reference columns of each pair's first block (it holds m's Gram); 0: unblocked. Chosen once, at the start. */
  gramBlock?: number;
  /** Reference columns of the pair's other blocks; 0: unblocked. */
  refBlock?: number;
  /** Fast mode, blocked: pairs whose candidates one pass counts (the memory planner's; missing: all). */
  candidatePairs?: number;
  /**
   * The baseline's rotation seed of each other model (label → seed): a fresh R_l per pair, as the
   * paper draws it (analysis/rotations.ts pairSeed). Missing in earlier runs: every pair used `seed`.
   */
  rotationSeeds?: Record<string, number>;
  /**
   * The cross moments' fp32 partial sums are added into float64 every this many kept tokens
   * (crossmoments.ts; default CHUNK_TOKENS). Recorded only when a run sets it (tests: token
   * shards begin where these additions happen, so small budgets need small chunks).
   */
  chunkTokens?: number;
  /**
   * False: every forward runs on the analysis' own thread. Default (missing): the next batch's
   * forwards run on a worker thread while this one accumulates (pipeline/prefetch.ts); the
   * numbers are the same either way.
   */
  overlap?: boolean;
}

export interface ModelInfo {
  label: string;
  dir: string;
  nLayers: number;
  dMlp: number;
  /** nLayers · dMlp */
  nNeurons: number;
  nPositions: number;
}

/** The manifest as the pipeline writes it. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  id: string;
  status: RunStatus;
  created: string;
  updated: string;
  software: Record<string, string>;
  models: (ModelInfo & {
    role: 'reference' | 'other';
    config_sha256: string;
    safetensors_sha256: string;
    vocab_sha256: string;
    tokenizer_sha256?: string;
    /** A hub cache revision (`DIR@REV`, or the entry's `main`): the ref given, its commit, and the training step a `stepN` ref names. */
    revision?: string;
    commit?: string;
    step?: number;
  })[];
  corpus: {
    inputs: string[];
    files: Corpus['files'];
    skipped: string[];
    hash: string;
    rows: number;
    row_length: number;
    tokens: Corpus['tokens'];
  };
  settings: Settings;
  choices: Record<string, string>;
  progress: { batches_done: number; batches_total: number; tokens_done: number };
  timings: { open_s: number; corpus_s: number; stream_s: number; finish_s: number; write_s: number; total_s: number; sessions: number };
  warnings: string[];
  error?: string;
  /** Why the run is `cancelled` or `failed`: the phase it stopped in, and what to do. */
  reason?: string;
  /** The process that last ran it, and its host: a reader on that host tells a killed run from a running one (liveness.ts). */
  pid?: number;
  hostname?: string;
  results?: Record<string, unknown>;
  /** A part of a split run (analysis/parts.ts): which pass it holds, of how many, and the key its siblings share. */
  part?: PartInfo;
}

export interface PartInfo {
  /** The plan's pass this part computed (its state is part.ckpt); absent: every pass (a token shard alone). */
  block?: number;
  blocks: number;
  /** A token shard (analysis/parts.ts): shard `index` of `count`, its batches and corpus rows [start, end). */
  shard?: ShardInfo;
  /** sha256 over what the parts of one run share: version, models, corpus, settings, plan. */
  key: string;
  plan?: Record<string, unknown>;
}

export interface ShardInfo {
  index: number;
  count: number;
  batches: [number, number];
  rows: [number, number];
}

// ---------------------------------------------------------------------------------------------
// The schema a manifest is read with (src/schema.ts)

const nat = integer({ min: 0 });
const positive = integer({ min: 1 });
const finite = number();
const text = string();

const MODEL_SCHEMA = object({
  label: optional(text),
  dir: text,
  nLayers: positive,
  dMlp: positive,
  nNeurons: optional(nat),
  nPositions: optional(nat),
  role: optional(picklist(['reference', 'other'])),
  config_sha256: optional(text),
  safetensors_sha256: optional(text),
  vocab_sha256: optional(text),
  tokenizer_sha256: optional(text),
  revision: optional(text),
  commit: optional(text),
  step: optional(nat),
});

const SETTINGS_SCHEMA = object({
  reference: optional(text),
  threshold: optional(finite),
  seed: optional(nat),
  batchRows: optional(positive),
  checkpointEvery: optional(positive),
  checkpointSeconds: optional(finite),
  mode: optional(picklist(['exact', 'fast'])),
  threads: optional(nat),
  threadsUsed: optional(nat),
  executionProvider: optional(picklist(['cpu', 'cuda'])),
  topK: optional(nat),
  tokens: optional(nat),
  memoryGb: optional(finite),
  gramBlock: optional(nat),
  refBlock: optional(nat),
  candidatePairs: optional(positive),
  rotationSeeds: optional(record(nat)),
  chunkTokens: optional(positive),
  overlap: optional(boolean()),
});

const CORPUS_SCHEMA = object({
  inputs: optional(array(text)),
  files: optional(array(object({ path: text }))),
  skipped: optional(array(text)),
  hash: optional(text),
  rows: optional(nat),
  row_length: optional(nat),
  tokens: optional(object({ requested: optional(nat), available: optional(nullable(nat)), used: optional(nat), kept: optional(nat) })),
});

const seconds = optional(finite);

/** What every manifest.json must be; fields it does not name are kept as they are. */
export const MANIFEST_SCHEMA = object({
  format: literal(MANIFEST_FORMAT),
  id: optional(text),
  status: picklist(RUN_STATUSES),
  created: optional(text),
  updated: optional(text),
  software: optional(record(text)),
  models: refine(array(MODEL_SCHEMA), (m) => m.length > 0, 'lists no models'),
  corpus: optional(CORPUS_SCHEMA),
  settings: optional(SETTINGS_SCHEMA),
  choices: optional(record(text)),
  progress: optional(object({ batches_done: optional(nat), batches_total: optional(nat), tokens_done: optional(nat) })),
  timings: optional(object({ open_s: seconds, corpus_s: seconds, stream_s: seconds, finish_s: seconds, write_s: seconds, total_s: seconds, sessions: optional(nat) })),
  warnings: optional(array(text)),
  error: optional(text),
  reason: optional(text),
  pid: optional(nat),
  hostname: optional(text),
  results: optional(record(unknown())),
});

/** A manifest as read back: checked; `id`, `created` and every model's `label` filled in where an older run lacks them. */
export type StoredManifest = Omit<Infer<typeof MANIFEST_SCHEMA>, 'id' | 'created' | 'models'> & {
  id: string;
  created: string;
  models: (Infer<typeof MODEL_SCHEMA> & { label: string })[];
  /** Fields this version does not read, kept for writing the manifest back. */
  [other: string]: unknown;
};

/** Checks a parsed manifest of the run in `dir` (`path`: its file, for messages). */
export function checkManifest(json: unknown, dir: string, path = runFile(dir, 'manifest')): StoredManifest {
  const isObj = typeof json === 'object' && json !== null && !Array.isArray(json);
  const format = isObj ? (json as { format?: unknown }).format : json;
  if (format !== MANIFEST_FORMAT) throw new RunError(`${path} is not a run manifest of this tool (format ${JSON.stringify(format)})`, 'corrupt', dir);
  const why = problem(MANIFEST_SCHEMA, json);
  if (why !== undefined) throw new RunError(`${path} is not a usable run manifest (${why})`, 'corrupt', dir);
  const m = json as Infer<typeof MANIFEST_SCHEMA>;
  return {
    ...m,
    id: m.id ?? basename(dir),
    created: m.created ?? '',
    models: m.models.map((x, i) => ({ ...x, label: x.label ?? `model ${i}` })),
  };
}

/**
 * Reads and checks `manifest.json` of the run in `dir`, whatever the run's status. Throws a
 * RunError: `missing` (no such folder) or `corrupt` (no manifest, not JSON, not this tool's, a
 * field of the wrong type).
 */
export function readManifest(dir: string): StoredManifest {
  const { json, path } = parseManifest(dir);
  return checkManifest(json, dir, path);
}

/**
 * The manifest as the analysis wrote it, for the analysis to go on from: a resume, a merge of
 * parts, the parts' status. Checked as readManifest checks it, then returned as written (no
 * label or id filled in: a resume keeps what the run recorded).
 */
export function readRunManifest(dir: string): Manifest {
  const { json, path } = parseManifest(dir);
  checkManifest(json, dir, path);
  return json as Manifest;
}

function parseManifest(dir: string): { json: unknown; path: string } {
  if (!fs.existsSync(dir)) throw new RunError(`the run folder ${dir} does not exist (moved or deleted)`, 'missing', dir);
  const path = runFile(dir, 'manifest');
  if (!fs.existsSync(path)) throw new RunError(`${dir} is not an analysis run: it has no manifest.json`, 'corrupt', dir);
  try {
    return { json: JSON.parse(fs.readFileSync(path, 'utf8')), path };
  } catch (e) {
    throw new RunError(`${path} is unreadable or not valid JSON (${(e as Error).message})`, 'corrupt', dir);
  }
}

/** Throws a RunError `incomplete` unless the run is complete (the editor's wording: what to do next). */
export function requireComplete(m: StoredManifest, dir: string): void {
  if (m.status === 'complete') return;
  // Running, interrupted (its process is gone), cancelled or failed: liveness.ts says which, and what to do.
  throw new RunError(`run ${m.id} has no results yet: it ${statusText(m, `universal-neurons analyze --resume ${dir}`)}`, 'incomplete', dir);
}

/** Universal ⇔ excess_corr above this: the run's own threshold, else the default. */
export const manifestThreshold = (m: Pick<StoredManifest, 'settings'>): number => m.settings?.threshold ?? DEFAULT_THRESHOLD;

/** Writes `manifest.json` atomically (store.writeFileAtomic). */
export function writeManifest(dir: string, m: Manifest | StoredManifest): void {
  writeJsonAtomic(runFile(dir, 'manifest'), m);
}
