/**
 * The interfaces every analysis module shares (docs/analysis-contract.md): the streaming pass's
 * (ActivationBatch, Accumulator) and the plan's (AnalysisPlan, AccumulatorSpec, PlanContext),
 * with the options and progress of a run. The pipeline builds one ActivationBatch per batch of
 * corpus rows and hands it to every accumulator in a fixed order, so a resumed run reproduces a
 * full run bit for bit. pipeline.ts runs a plan, plan.ts and familyResults.ts make one; they all
 * import these from here, not from each other.
 */
import type { Corpus } from '../corpus';
import type { CancellationSignal } from '../errors';
import type { ExecutionProvider } from '../provider';
import type { Model } from '../runtime';
import type { Manifest, Mode, ModelInfo, Settings, ShardInfo } from '../run/manifest';
import type { RotationCache } from './rotations';

/** Neuron (l, n) of a model with d_mlp neurons per layer is column l·d_mlp + n. */
export const neuronColumn = (layer: number, neuron: number, dMlp: number): number => layer * dMlp + neuron;

/** TransformerLens-style neuron name, e.g. `L3.N1204`. */
export const neuronName = (layer: number, neuron: number): string => `L${layer}.N${neuron}`;

/** Token ids the paper drops from statistics: BOS/EOS/pad and "\n". */
export const EOS_ID = 50256;
export const NEWLINE_ID = 198;

export interface ModelActivations {
  /** [nTokens × N] all tokens, neuron columns as above. */
  pre: Float32Array;
  /** [nTokens × N] */
  post: Float32Array;
  /** [nKept × N] only kept tokens, in order. */
  keptPre: Float32Array;
  /** [nKept × N] */
  keptPost: Float32Array;
}

export interface ActivationBatch {
  /** 0, 1, 2, … over the whole run. */
  batchIndex: number;
  /** Token ids of these rows, BOS first. */
  rows: number[][];
  /** Corpus index of rows[0]. */
  rowStart: number;
  /** rows[r] occupies tokens offsets[r] .. offsets[r+1]-1 of the full arrays (length rows.length + 1). */
  offsets: number[];
  /** All tokens of these rows. */
  nTokens: number;
  /** [nTokens]; 1 = counted in statistics. */
  keep: Uint8Array;
  /** [nKept] full-array index of each kept token. */
  keptIndex: Int32Array;
  nKept: number;
  /** models[0] is the reference model. */
  models: ModelActivations[];
}

/** What `state()` returns: plain typed arrays and JSON-able values, so the store can persist it. */
export type StateValue = Float64Array | Float32Array | Int32Array | Uint32Array | number[] | number | string;
export type AccumulatorState = Record<string, StateValue>;

export interface Accumulator<R> {
  add(batch: ActivationBatch): void | Promise<void>;
  /** A sample batch, before any add() (a spec's `screen`: fast mode's screening sample). */
  screen?(batch: ActivationBatch): void | Promise<void>;
  /** Everything needed to resume: plain typed arrays and JSON-able numbers. */
  state(): AccumulatorState;
  /**
   * Token shards (parts.ts): whether something a single run fixes from the corpus' first batch
   * (a histogram range, a shift) is still open, and prime() to fix it from such a batch without
   * counting it. Accumulators without them depend on no batch but their own.
   */
  needsPrime?(): boolean;
  prime?(batch: ActivationBatch): void;
  /** Final results; may be called once at the end. A long finish checks `signal` (CancelledError) in its loops. */
  finish(signal?: CancellationSignal): R | Promise<R>;
}

// ---------------------------------------------------------------------------------------------
// A run and its plan (pipeline.ts runs them)

export interface AnalysisOptions {
  /** Model folders; the reference is moved to the front. */
  models: string[];
  /** The reference model: a folder basename (e.g. `tiny-gpt2-a`), a path as given, or an index; default the first. */
  reference?: string;
  corpus: string[];
  /** Token budget (BOS included): whole rows of the model's context length. */
  tokens: number;
  /** Run folder; default `<workspace>/.universal-neurons/runs/<id>`. */
  out?: string;
  workspace?: string;
  /** Continue the run in this folder (or id under the workspace). Other settings come from its manifest. */
  resume?: string;
  threshold?: number;
  /** Seed of the baseline's random rotations. */
  seed?: number;
  batchRows?: number;
  /**
   * Checkpoint every K batches. Given, the checkpoints are exactly every K batches; left out,
   * every 25 batches that are also `checkpointSeconds` (default 60) of stream after the last.
   */
  checkpointEvery?: number;
  /** Seconds of stream between checkpoints at least (0: none; default 60 unless checkpointEvery is given). */
  checkpointSeconds?: number;
  mode?: Mode;
  /** onnxruntime intra-op threads (0: engine default). */
  threads?: number;
  /** False: no forward worker (Settings.overlap). */
  overlap?: boolean;
  /** onnxruntime's execution provider for this session (provider.ts; default cpu); checked before any model opens. */
  executionProvider?: ExecutionProvider;
  /** Top examples kept per neuron (reference model). */
  topK?: number;
  /** Peak memory to plan for, GB = 10⁹ bytes (blocking.ts); default 8. */
  memoryGb?: number;
  /** Reference blocks [first, rest] instead of what the budget gives ([0, 0]: unblocked; tests, measurements). */
  refBlocks?: readonly [number, number];
  /** The cross moments' fp32 chunk (settings.chunkTokens; tests: token shards at small budgets). */
  chunkTokens?: number;
  /** Fast mode on a budget of fewer tokens (rows × context) runs exact (default FAST_MIN_TOKENS; tests lower it). */
  fastMinTokens?: number;
  /** Replaces the accumulators and result writing (tests; other analyses). */
  plan?: AnalysisPlan;
  /** Runs one part of a split run (parts.ts): pass `block` of the plan only, keeping its accumulators' state, not results. */
  part?: PartRequest;
  /** Finishes a run from its parts' states (parts.ts mergeParts): models, corpus and settings are `inherit`'s. */
  merge?: { inherit: Manifest; states: Record<string, AccumulatorState> };
}

/** Which part of a split run to compute: a pass of the plan (a block of reference neurons against one other model, or the statistics). */
export interface PartRequest {
  /** The pass; absent: every pass (a token shard alone). */
  block?: number;
  /** Token shard `index` of `count` (parts.ts: its batches follow from the corpus and settings). */
  shard?: { index: number; count: number };
  /** The plan's options, recorded so that the merge builds the same plan. */
  plan?: Record<string, unknown>;
}

export interface PlanContext {
  models: ModelInfo[];
  /** Open models (reference first); the others are closed before `finalize`, the reference after it. */
  handles: Model[];
  settings: Settings;
  corpus: Corpus;
  runDir: string;
  signal?: CancellationSignal;
  progress: (p: Progress) => void;
  /** The baseline's rotation matrices, drawn once per run (blocked runs; closed when the run ends). */
  rotations?: RotationCache;
}

export interface AccumulatorSpec {
  /** Key in the checkpoint; unique within a plan. */
  name: string;
  /** `done`: results of the accumulators finished so far (earlier passes; earlier specs of this pass once it finishes). */
  create(done: ReadonlyMap<string, unknown>): Accumulator<unknown>;
  restore(state: AccumulatorState, done: ReadonlyMap<string, unknown>): Accumulator<unknown>;
  /** Pass over the corpus, 0, 1, …; passes run in order, and specs without one run in a last pass. */
  pass?: number;
  /** What add() reads (default: every array of every model); the rest of the batch is left empty. */
  reads?: { models: number[]; arrays: (keyof ModelActivations)[] };
  /**
   * Before its pass streams, the accumulator's screen() gets batches 0, every, 2·every, … (fast
   * mode's screen, spread over the corpus). Not checkpointed part-way: a run cancelled during
   * the screen screens again on resume.
   */
  screen?: { every: number };
  /**
   * With `screen`: the accumulator only screens (add() is never called), and finishes once its
   * screen is read. A pass of such specs forwards the sample batches alone and checkpoints at its
   * end (its finished results); its accumulators' state is never written.
   */
  screenOnly?: boolean;
  /** Required of specs that finish before the last pass: their result as checkpoint state, and back. */
  pack?(result: unknown): AccumulatorState;
  unpack?(state: AccumulatorState): unknown;
}

export interface AnalysisPlan {
  /** Accumulators in the order they see each batch. */
  accumulators(ctx: PlanContext): AccumulatorSpec[] | Promise<AccumulatorSpec[]>;
  /** Writes the results from every accumulator's `finish()`; returns what goes into the manifest's `results`. */
  finalize(ctx: PlanContext, results: Map<string, unknown>): Promise<Record<string, unknown>>;
  /** Bytes the accumulators of the last pass (the statistics) hold whatever the batch, for the memory planner. */
  statsBytes?(ctx: PlanContext): number;
  /** Choices the plan makes where docs/method-notes.md leaves one open (for the manifest). */
  choices?: Record<string, string>;
}

export interface Progress {
  phase: 'open' | 'corpus' | 'run' | 'stream' | 'checkpoint' | 'finish' | 'write' | 'done';
  message?: string;
  /** The run folder, from phase 'run' on. */
  runDir?: string;
  batch?: number;
  batches?: number;
  tokensDone?: number;
  tokensTotal?: number;
  tokensPerSec?: number;
  etaSec?: number;
}

export interface RunResult {
  runDir: string;
  id: string;
  manifest: Manifest;
  results: Map<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// A run in progress: runAnalysis (pipeline.ts) runs its phases, pipeline/open.ts, plan.ts,
// pass.ts and finish.ts, which hand these on.

/**
 * What a run has taken so far, given back (and, once there is a manifest, marked failed or
 * cancelled) by runAnalysis whatever stops it: the phases fill it in as they take each thing.
 */
export interface RunHold {
  /** The run folder's lock (store.acquireRunLock). */
  release?: () => void;
  /** The models' sessions (closing one twice is harmless: the last pass closes all but the reference first). */
  handles: Model[];
  rotations?: RotationCache;
  /** From the first manifest on, a failure or cancel is recorded in it. */
  manifest?: Manifest;
  runDir?: string;
}

/** The open phase's product (pipeline/open.ts): settings, models and corpus, checked against each other and a resumed run. */
export interface OpenedRun {
  /** A resumed run's folder and id; '' for a new run until the plan phase creates its folder. */
  runDir: string;
  id: string;
  /** The resumed run's manifest. */
  previous?: Manifest;
  /** Where models, corpus and settings came from: the resumed run's manifest, or a merge's parts. */
  source?: Manifest;
  corpusPaths: string[];
  /** Final but for the memory plan's fields (batchRows, gramBlock, refBlock), set by the plan phase. */
  settings: Settings;
  handles: Model[];
  infos: ModelInfo[];
  /** The manifest's model entries (hashes, revisions). */
  entries: Manifest['models'];
  corpus: Corpus;
  /** This session's part of a split run, if it is one. */
  part?: PartRequest;
  /** Why fast mode ran exact, for the manifest. */
  fastFallback?: string;
  /** Date.now() once the models were open. */
  tOpen: number;
}

/** The plan phase's product (pipeline/plan.ts), fixed for the rest of the run. */
export interface RunContext {
  runDir: string;
  id: string;
  /** The manifest object the run keeps writing (progress, timings, results). */
  manifest: Manifest;
  plan: AnalysisPlan;
  /** What the plan's accumulators() and finalize() get. */
  planCtx: PlanContext;
  /** The plan's accumulators grouped into passes over the corpus (parts.ts planPasses). */
  passes: AccumulatorSpec[][];
  nBatches: number;
  part?: PartRequest;
  /** The passes a part has written its state for (a resumed part): nothing left to stream in them. */
  partDone: ReadonlySet<number>;
  /** A token shard (parts.ts): the batches [b0, b1) it streams; a whole run: [0, nBatches). */
  shard?: ShardInfo;
  b0: number;
  b1: number;
  merge?: AnalysisOptions['merge'];
  handles: Model[];
  corpus: Corpus;
  settings: Settings;
  signal?: CancellationSignal;
  progress: (p: Progress) => void;
  /** Forwards kept between passes when one batch holds the whole corpus (pipeline/pass.ts). */
  forwards?: Map<string, ModelActivations>;
  /** One batch per pass: checkpoints only at pass boundaries, holding the finished results. */
  boundaryOnly: boolean;
  /** Tokens a pass streams (a token shard: its rows'). */
  tokensTotal: number;
}

/** Where a run is, updated as it goes: the pass, its accumulators, the finished results, the clock. */
export interface RunState {
  pass: number;
  /** The batch this pass (re)starts at. */
  start: number;
  /** This pass's accumulators; empty between passes, so that a finished pass's memory can go. */
  accs: Accumulator<unknown>[];
  /** Whether the accumulators are new and must screen first (restored ones were checkpointed after it). */
  fresh: boolean;
  /** The finished accumulators' results, by spec name. */
  results: Map<string, unknown>;
  /** The finished passes' results as checkpoint state (`done:NAME`), before the last pass. */
  packed: Record<string, AccumulatorState>;
  /** Date.now() when this session began streaming, the manifest's stream_s then, and tokens done by then. */
  tStream: number;
  streamBase: number;
  sessionStart: number;
  /** Seconds this session spent finishing passes; Date.now() when the last finish ended. */
  finishSecs: number;
  tWrite: number;
}
