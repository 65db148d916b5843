// The two forwards (Forward for activations, Model for text with its windows) share session
// creation, the batching loop (runInBatches) and checkpoint loading; scorer.ts (per-token scores
// for the entropy intervention) builds on the same helpers.
/**
 * Runs a checkpoint's forward pass on onnxruntime (CPU) and returns every MLP neuron's
 * activations. Architecture-specific work (config, weight names, graph) lives in `arch/`.
 *
 * Batching (`runInBatches`, one loop for every forward): rows are sorted by length and packed
 * into batches of at most `batchTokens` padded tokens; shorter rows are padded on the right (id 0). Under a causal mask a position never
 * sees later positions, so right padding leaves every real token's activations unchanged, and
 * rows of equal length (the usual analysis case) are not padded at all.
 *
 * Long texts (`activations`): see `windows()` below.
 */
// Must run before onnxruntime-node creates its environment: see ortTelemetry.ts.
import './ortTelemetry';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  firstNonFinite,
  Hook,
  hookName,
  INPUT_IDS,
  KEPT_INDEX,
  KEPT_POST,
  KEPT_KINDS,
  KEPT_PRE,
  type KeptKind,
  LOGITS,
  POST_ALL,
  PRE_ALL,
} from './arch/common';
import { type ArchConfig, type ArchWeights, buildGraph } from './arch/index';
import { loadCheckpoint } from './checkpoint';
import { topNeuronsAt } from './editor';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { OnnxGraph } from './onnx';
import { sessionProviders } from './provider';
import { SafetensorsFile } from './safetensors';
import { resolveThreads } from './threads';
import { encodeWithBos, Tokenizer } from './tokenizer';
import { checkpointWeights } from './validate';

export interface ForwardOptions {
  /** ORT intra-op threads; 0 or absent: every core (threads.ts). */
  threads?: number;
  /** Graphs whose weights exceed this many bytes are written as ONNX external data (default 1.9 GB, under protobuf's 2 GB cap). */
  externalDataBytes?: number;
  /** Where external-data models are written (default: the OS temp folder); removed on close. */
  cacheDir?: string;
  /** Padded tokens per ORT run (default: what keeps one run's outputs near 256 MB, at most 8192). */
  batchTokens?: number;
  /**
   * Keep ORT's CPU arena (default true). Its memory grows to a run's largest intermediates and is
   * never given back, so a long analysis that forwards models in turn holds every model's peak at
   * once; without it, a run's buffers are freed as it ends (the speed was the same, BENCHMARKS.md).
   */
  memArena?: boolean;
  /**
   * Let ORT's worker threads spin-wait between operators (ORT's default). Off by default: on a
   * machine shared with an editor and other processes, spinning measured slower (the spinning
   * threads take cores from the work), and it burns CPU while the caller handles results.
   */
  spinWait?: boolean;
}

export interface RunOptions {
  /** Also compute logits (builds the full-forward variant on first use). */
  logits?: boolean;
  /** Which hooks to return (default both). Fewer hooks: less output copying. */
  hooks?: readonly Hook[];
  signal?: CancellationSignal;
}

/** The result of `runTokens`: rows concatenated in input order. */
export interface TokenRun {
  /** Row r occupies tokens offsets[r] .. offsets[r+1]-1. */
  offsets: number[];
  nTokens: number;
  /** Per layer, [nTokens * dMlp] row-major; empty when not requested. */
  hookPre: Float32Array[];
  hookPost: Float32Array[];
  /** [nTokens * vocabSize] when asked for. */
  logits?: Float32Array;
}

export interface TokenInfo {
  id: number;
  /** The token as the tokenizer spells it (BOS: `<|endoftext|>`). */
  text: string;
  /** UTF-16 range in the analysed text; BOS is [0, 0]. */
  start: number;
  end: number;
}

export interface Activations {
  tokens: TokenInfo[];
  /** Per layer, [T * dMlp]: token t's neuron n at t*dMlp + n. */
  hookPre: Float32Array[];
  hookPost: Float32Array[];
  /** [T * vocabSize] when asked for. */
  logits?: Float32Array;
}

const DEFAULT_EXTERNAL_BYTES = 1.9e9;
const OUTPUT_BUDGET_BYTES = 256 * 1024 * 1024;
const MAX_ACTIVATION_BYTES = 4 * 2 ** 30;

export { defaultThreads } from './threads';

/** The engine's session settings for a forward graph (plain data: a worker thread gets them too). */
export function sessionOptions(opts: ForwardOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: sessionProviders(),
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: resolveThreads(opts.threads),
    interOpNumThreads: 1,
    enableCpuMemArena: opts.memArena ?? true,
    enableMemPattern: true,
    extra: { session: { intra_op: { allow_spinning: opts.spinWait ? '1' : '0' } } },
  };
}

/**
 * What ORT loads a graph from: its bytes, or past `externalDataBytes` the path of a model written
 * with external data into a temp folder appended to `tempDirs` (the caller removes them).
 */
export function graphSource(graph: OnnxGraph, opts: ForwardOptions, tempDirs: string[]): Uint8Array | string {
  if (graph.weightBytes() <= (opts.externalDataBytes ?? DEFAULT_EXTERNAL_BYTES)) return graph.toBytes();
  const dir = mkdtempSync(join(opts.cacheDir ?? tmpdir(), 'universal-neurons-onnx-'));
  tempDirs.push(dir);
  return graph.writeExternal(dir);
}

/**
 * Loads a graph on ORT with the engine's session settings, as embedded bytes or, past
 * `externalDataBytes`, as external data in a temp folder appended to `tempDirs` (the caller
 * removes them on close).
 */
export async function createSession(graph: OnnxGraph, want: readonly string[], opts: ForwardOptions, tempDirs: string[]): Promise<ort.InferenceSession> {
  const src = graphSource(graph, opts, tempDirs);
  const options = sessionOptions(opts);
  const session = typeof src === 'string' ? await ort.InferenceSession.create(src, options) : await ort.InferenceSession.create(src, options);
  // Graph optimisation must not rename or drop the outputs we read.
  const missing = want.filter((n) => !session.outputNames.includes(n));
  if (missing.length) {
    await session.release();
    throw new EngineError(`onnxruntime dropped graph outputs ${missing.join(', ')} while optimising`);
  }
  return session;
}

/** 'kept:<kinds>': the kept layout with those outputs alone (GraphOptions.keptKinds). */
type Variant = 'acts' | 'logits' | `kept:${string}`;

/** runKept's outputs by what the analysis calls them. */
export const KEPT_OUTPUTS = { keptPre: KEPT_PRE, keptPost: KEPT_POST, post: POST_ALL, pre: PRE_ALL } as const satisfies Record<KeptKind, string>;

/** A set of kept kinds in one order (KEPT_KINDS'), so that one set is one session. */
export function keptSet(kinds: readonly KeptKind[]): KeptKind[] {
  const set = KEPT_KINDS.filter((k) => kinds.includes(k));
  if (set.length === 0) throw new EngineError('the kept forward needs at least one of keptPre, keptPost, pre, post');
  return set;
}

/**
 * One architecture-resolved model on ORT, without a tokenizer: the fast path. Two session
 * variants are built lazily — activations only (no LM head) and the full forward with logits.
 */
export class Forward {
  readonly config: ArchConfig;
  private readonly sessions = new Map<Variant, Promise<ort.InferenceSession>>();
  private readonly tempDirs: string[] = [];
  private closed = false;

  private constructor(
    private readonly weights: ArchWeights,
    private readonly opts: ForwardOptions,
  ) {
    this.config = weights.config;
  }

  /** Builds and loads the activations variant now, so that a broken model fails at open. */
  static async create(weights: ArchWeights, opts: ForwardOptions = {}): Promise<Forward> {
    const f = new Forward(weights, opts);
    await f.session('acts');
    return f;
  }

  get nLayers(): number {
    return this.config.nLayer;
  }

  get dMlp(): number {
    return this.config.dMlp;
  }

  private session(variant: Variant): Promise<ort.InferenceSession> {
    if (this.closed) throw new EngineError('the model has been closed');
    let s = this.sessions.get(variant);
    if (!s) {
      // 'acts' and each 'kept:…' hold every weight (~0.5 GB at GPT-2-small size), and a caller
      // uses one of them for a whole pass (the analysis: a kept set unless it reads every `pre`).
      // Holding two grew a blocked GPT-2-small-size run by 0.5 GB per model forwarded, memory the
      // planner had not counted; so loading one releases the others, rebuilt if wanted again.
      const exclusive = (v: Variant): boolean => v === 'acts' || v.startsWith('kept:');
      const prev = exclusive(variant) ? [...this.sessions.entries()].filter(([v]) => exclusive(v)) : [];
      for (const [v] of prev) this.sessions.delete(v);
      s = (async () => {
        for (const [, p] of prev) await p.then((x) => x.release()).catch(() => {});
        return this.load(variant);
      })();
      this.sessions.set(variant, s);
      s.catch(() => this.sessions.delete(variant));
    }
    return s;
  }

  /**
   * The analysis forward's graph and session settings, for a session on another thread
   * (pipeline/prefetch.ts); with `threads` its intra-op thread count instead of this model's.
   */
  keptGraph(kinds: readonly KeptKind[], threads?: number): { source: Uint8Array | string; options: ort.InferenceSession.SessionOptions } {
    if (this.closed) throw new EngineError('the model has been closed');
    const opts = threads ? { ...this.opts, threads } : this.opts;
    return { source: graphSource(buildGraph(this.weights, { logits: false, kept: true, keptKinds: keptSet(kinds) }), opts, this.tempDirs), options: sessionOptions(opts) };
  }

  /**
   * Releases every loaded session (each holds every weight); the next use loads again. For a
   * stream whose forwards run on another thread (pipeline/prefetch.ts).
   */
  async releaseSessions(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await s.then((x) => x.release()).catch(() => {});
  }

  /** The session variants loaded now (tests). */
  loadedVariants(): Variant[] {
    return [...this.sessions.keys()];
  }

  private async load(variant: Variant): Promise<ort.InferenceSession> {
    if (variant.startsWith('kept:')) {
      const kinds = keptSet(variant.slice(5).split(',') as KeptKind[]);
      return createSession(buildGraph(this.weights, { logits: false, kept: true, keptKinds: kinds }), kinds.map((k) => KEPT_OUTPUTS[k]), this.opts, this.tempDirs);
    }
    const want = [...Array(this.config.nLayer).keys()].flatMap((l) => [hookName(l, 'pre'), hookName(l, 'post')]);
    if (variant === 'logits') want.push(LOGITS);
    return createSession(buildGraph(this.weights, { logits: variant === 'logits' }), want, this.opts, this.tempDirs);
  }

  /**
   * The analysis' forward: rows of one length in one ORT run, returning only what `want` names,
   * already in the analysis' layout (neuron (l, n) at column l·d_mlp + n): the kept tokens'
   * pre- and post-activations (`keptIndex`: token indices into the concatenated rows) and every
   * token's pre- and post-activations. ORT concatenates and gathers (see GraphOptions.kept in arch/common.ts), so
   * nothing is copied in JavaScript. Rows of different lengths, or more tokens than one run
   * holds, go through runTokens instead (the caller interleaves).
   */
  async runKept(
    rows: readonly (readonly number[])[],
    keptIndex: Int32Array,
    want: readonly KeptKind[],
    signal?: CancellationSignal,
  ): Promise<Partial<Record<KeptKind, Float32Array>> | undefined> {
    const feeds = this.keptFeeds(rows, keptIndex);
    if (!feeds) return undefined;
    throwIfCancelled(signal);
    const session = await this.session(`kept:${keptSet(want).join(',')}`);
    const res = await session.run(
      { [INPUT_IDS]: new ort.Tensor('int64', feeds.ids, feeds.shape), [KEPT_INDEX]: new ort.Tensor('int64', feeds.kept, [feeds.kept.length]) },
      want.map((w) => KEPT_OUTPUTS[w]),
    );
    const out: Partial<Record<KeptKind, Float32Array>> = {};
    for (const w of want) out[w] = res[KEPT_OUTPUTS[w]]!.data as Float32Array;
    return out;
  }

  /**
   * runKept's inputs (token ids [rows × S], kept token indices), checked; undefined when rows
   * differ in length or the outputs would exceed one run (the caller uses runTokens instead).
   */
  keptFeeds(rows: readonly (readonly number[])[], keptIndex: Int32Array): { ids: BigInt64Array; shape: [number, number]; kept: BigInt64Array } | undefined {
    const S = rows[0]?.length ?? 0;
    if (rows.length === 0 || rows.some((r) => r.length !== S)) return undefined;
    rowOffsets(rows, this.config); // checks lengths and ids
    const nTokens = rows.length * S;
    const N = this.config.nLayer * this.config.dMlp;
    if (4 * N * (2 * nTokens + 2 * keptIndex.length) > MAX_ACTIVATION_BYTES) return undefined;
    const ids = new BigInt64Array(nTokens);
    rows.forEach((r, b) => r.forEach((id, t) => (ids[b * S + t] = BigInt(id))));
    return { ids, shape: [rows.length, S], kept: BigInt64Array.from(keptIndex, (k) => BigInt(k)) };
  }

  private defaultBatchTokens(logits: boolean, hooks: number): number {
    const perToken = 4 * (hooks * this.config.nLayer * this.config.dMlp + (logits ? this.config.vocabSize : 0));
    return Math.max(1, Math.min(8192, Math.floor(OUTPUT_BUDGET_BYTES / Math.max(perToken, 1))));
  }

  /**
   * Runs rows of token ids (each 1..n_positions long). Returns activations concatenated over
   * rows in input order. Cancellation is checked between ORT runs.
   */
  async runTokens(rows: readonly (readonly number[])[], opts: RunOptions = {}): Promise<TokenRun> {
    const cfg = this.config;
    const hooks = opts.hooks ?? ['pre', 'post'];
    const wantPre = hooks.includes('pre');
    const wantPost = hooks.includes('post');
    const logits = !!opts.logits;
    const offsets = rowOffsets(rows, cfg);
    const nTokens = offsets[rows.length]!;
    const L = cfg.nLayer;
    const M = cfg.dMlp;
    const V = cfg.vocabSize;
    const out: TokenRun = { offsets, nTokens, hookPre: [], hookPost: [] };
    if (rows.length === 0) {
      if (wantPre) out.hookPre = Array.from({ length: L }, () => new Float32Array(0));
      if (wantPost) out.hookPost = Array.from({ length: L }, () => new Float32Array(0));
      if (logits) out.logits = new Float32Array(0);
      return out;
    }
    throwIfCancelled(opts.signal);
    const session = await this.session(logits ? 'logits' : 'acts');
    const fetches: string[] = [];
    for (let l = 0; l < L; l++) {
      if (wantPre) fetches.push(hookName(l, 'pre'));
      if (wantPost) fetches.push(hookName(l, 'post'));
    }
    if (logits) fetches.push(LOGITS);

    const batches = planBatches(rows, this.opts.batchTokens ?? this.defaultBatchTokens(logits, hooks.length));
    // Fast path: one batch, no padding, input order — ORT's output buffers are the result.
    const single = batches.length === 1 && batches[0]!.every((r, i) => r === i && rows[r]!.length === rows[0]!.length);
    if (!single) {
      if (wantPre) out.hookPre = Array.from({ length: L }, () => new Float32Array(nTokens * M));
      if (wantPost) out.hookPost = Array.from({ length: L }, () => new Float32Array(nTokens * M));
      if (logits) out.logits = new Float32Array(nTokens * V);
    }
    await runInBatches(session, rows, batches, fetches, opts.signal, (res, batch, S) => {
      const data = (name: string): Float32Array => res[name]!.data as Float32Array;
      if (single) {
        for (let l = 0; l < L; l++) {
          if (wantPre) out.hookPre.push(data(hookName(l, 'pre')));
          if (wantPost) out.hookPost.push(data(hookName(l, 'post')));
        }
        if (logits) out.logits = data(LOGITS);
        return true;
      }
      for (let l = 0; l < L; l++) {
        if (wantPre) scatterRows(data(hookName(l, 'pre')), out.hookPre[l]!, M, rows, offsets, batch, S);
        if (wantPost) scatterRows(data(hookName(l, 'post')), out.hookPost[l]!, M, rows, offsets, batch, S);
      }
      if (logits) scatterRows(data(LOGITS), out.logits!, V, rows, offsets, batch, S);
      return false;
    });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await releaseSessions(this.sessions, this.tempDirs);
  }
}

/** Releases cached sessions (Forward's and Scorer's) and removes their external-data folders. */
export async function releaseSessions(sessions: Map<unknown, Promise<{ release(): Promise<void> }>>, tempDirs: readonly string[]): Promise<void> {
  for (const s of sessions.values()) {
    try {
      await (await s).release();
    } catch {
      // A session that failed to load has nothing to release.
    }
  }
  sessions.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

/** Checks rows of token ids against the model; returns where each row starts in the concatenation. */
export function rowOffsets(rows: readonly (readonly number[])[], cfg: ArchConfig): number[] {
  const offsets = [0];
  rows.forEach((r, i) => {
    if (r.length === 0) throw new EngineError(`row ${i} is empty`);
    if (r.length > cfg.nPositions) {
      throw new EngineError(`row ${i} has ${r.length} tokens; this model's context is ${cfg.nPositions} (n_positions)`);
    }
    for (const id of r) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new EngineError(`row ${i} has token id ${id}, outside this model's vocabulary [0, ${cfg.vocabSize})`);
      }
    }
    offsets.push(offsets[i]! + r.length);
  });
  return offsets;
}

/**
 * The batching loop of every forward (Forward.runTokens, Scorer.score): each batch of `batches`
 * (planBatches: longest row first) is padded on the right to its longest row (id 0: under the
 * causal mask padding never changes a real token), run with `extraFeeds`, and handed to `take`;
 * its outputs are then freed unless `take` keeps them (returns true). Cancellation is checked
 * before each run.
 */
export async function runInBatches(
  session: ort.InferenceSession,
  rows: readonly (readonly number[])[],
  batches: readonly (readonly number[])[],
  fetches: readonly string[],
  signal: CancellationSignal | undefined,
  take: (res: ort.InferenceSession.ReturnType, batch: readonly number[], S: number) => boolean | Promise<boolean>,
  extraFeeds?: (batch: readonly number[], S: number) => Record<string, ort.Tensor>,
): Promise<void> {
  for (const [q, batch] of batches.entries()) {
    // A turn of the event loop between runs: a caller's signal set from a handler (the CLI's
    // Ctrl-C) is seen here, not only after the whole forward.
    if (signal && q > 0) await new Promise((r) => setImmediate(r));
    throwIfCancelled(signal);
    const S = rows[batch[0]!]!.length; // longest first
    const res = await session.run({ [INPUT_IDS]: batchIds(rows, batch, S), ...extraFeeds?.(batch, S) }, fetches);
    if (!(await take(res, batch, S))) for (const name of fetches) res[name]!.dispose();
  }
}

/** A batch's input ids [rows × S], padded with id 0 (any valid id will do: rows are never left-padded). */
export function batchIds(rows: readonly (readonly number[])[], batch: readonly number[], S: number): ort.Tensor {
  const ids = new BigInt64Array(batch.length * S);
  batch.forEach((r, b) => rows[r]!.forEach((id, t) => (ids[b * S + t] = BigInt(id))));
  return new ort.Tensor('int64', ids, [batch.length, S]);
}

/** Copies each row's real tokens of a batch output ([batch × S × width]) to its place in the concatenation. */
export function scatterRows(
  src: Float32Array,
  dst: Float32Array,
  width: number,
  rows: readonly (readonly number[])[],
  offsets: readonly number[],
  batch: readonly number[],
  S: number,
): void {
  batch.forEach((r, b) => dst.set(src.subarray(b * S * width, (b * S + rows[r]!.length) * width), offsets[r]! * width));
}

/** Row indices grouped into batches: longest first, at most `budget` padded tokens each. */
export function planBatches(rows: readonly (readonly number[])[], budget: number): number[][] {
  const order = [...rows.keys()].sort((a, b) => rows[b]!.length - rows[a]!.length || a - b);
  const batches: number[][] = [];
  let cur: number[] = [];
  for (const r of order) {
    const width = cur.length ? rows[cur[0]!]!.length : rows[r]!.length;
    if (cur.length && (cur.length + 1) * width > budget) {
      batches.push(cur);
      cur = [];
    }
    cur.push(r);
  }
  if (cur.length) batches.push(cur);
  return batches;
}

/**
 * Long-text rule. A text of more than n_positions tokens (BOS included) is cut into windows
 * that run independently, as the paper's data pipeline does (TransformerLens
 * `tokenize_and_concatenate`: every row starts with BOS): window 0 is the first n_positions
 * tokens (the text's own BOS plus n_positions-1 text tokens); every later window is a fresh BOS
 * followed by the next n_positions-1 text tokens. Windows do not overlap, so each text token
 * appears exactly once; the inserted BOS positions are computed but not returned. A token near a
 * window's start therefore sees only the context of its own window.
 *
 * Returns the rows and, for each row, the index in the text's token list of its first returned
 * position and which row positions are returned (all of row 0; positions 1.. of later rows).
 */
export function windows(ids: readonly number[], nPositions: number, bos: number): { rows: number[][]; firstToken: number[]; skip: number[] } {
  if (nPositions < 2 && ids.length > nPositions) {
    throw new EngineError(`a context of ${nPositions} token cannot hold BOS plus a text token`);
  }
  const rows: number[][] = [ids.slice(0, nPositions)];
  const firstToken = [0];
  const skip = [0];
  for (let i = nPositions; i < ids.length; i += nPositions - 1) {
    rows.push([bos, ...ids.slice(i, i + nPositions - 1)]);
    firstToken.push(i);
    skip.push(1);
  }
  return { rows, firstToken, skip };
}

/** A checkpoint on disk with its tokenizer: what the editor and CLI use. */
export class Model {
  private constructor(
    readonly dir: string,
    readonly config: ArchConfig,
    readonly tokenizer: Tokenizer,
    readonly forward: Forward,
    private readonly weightsFile: SafetensorsFile,
    /** The resolved weights, for the other graphs of this model (intervene.ts). */
    readonly weights: ArchWeights,
  ) {}

  static async open(path: string, opts: ForwardOptions = {}): Promise<Model> {
    const ck = loadCheckpoint(path);
    try {
      const weights = checkpointWeights(ck);
      const forward = await Forward.create(weights, opts);
      return new Model(ck.dir, weights.config, ck.tokenizer, forward, ck.weights, weights);
    } catch (e) {
      ck.weights.close();
      throw e;
    }
  }

  get nLayers(): number {
    return this.config.nLayer;
  }

  get dMlp(): number {
    return this.config.dMlp;
  }

  /** The safetensors file the weights came from. */
  get weightsPath(): string {
    return this.weightsFile.path;
  }

  /** Tokenizes with BOS, runs (windowed past n_positions), returns per-token activations. */
  async activations(text: string, opts: { logits?: boolean; signal?: CancellationSignal } = {}): Promise<Activations> {
    const enc = encodeWithBos(this.tokenizer, text);
    const T = enc.ids.length;
    // Every token's activations are held at once: refuse what would exhaust memory.
    const bytes = 4 * T * (2 * this.config.nLayer * this.config.dMlp + (opts.logits ? this.config.vocabSize : 0));
    if (bytes > MAX_ACTIVATION_BYTES) {
      throw new EngineError(
        `the text is ${T} tokens; its activations would take ${(bytes / 2 ** 30).toFixed(1)} GiB (limit ${MAX_ACTIVATION_BYTES / 2 ** 30} GiB). Analyse a shorter excerpt.`,
      );
    }
    const w = windows(enc.ids, this.config.nPositions, this.tokenizer.bosId);
    const run = await this.forward.runTokens(w.rows, { logits: opts.logits, signal: opts.signal });
    const tokens = enc.ids.map((id, i) => ({ id, text: this.tokenizer.tokenString(id), start: enc.starts[i]!, end: enc.ends[i]! }));
    this.checkFinite(run, w.rows.length === 1 ? tokens : undefined);
    if (w.rows.length === 1) {
      return { tokens, hookPre: run.hookPre, hookPost: run.hookPost, logits: run.logits };
    }
    // Drop the inserted BOS of every window after the first.
    const gather = (src: Float32Array, width: number): Float32Array => {
      const dst = new Float32Array(T * width);
      w.rows.forEach((row, r) => {
        const from = run.offsets[r]! + w.skip[r]!;
        const n = row.length - w.skip[r]!;
        dst.set(src.subarray(from * width, (from + n) * width), w.firstToken[r]! * width);
      });
      return dst;
    };
    return {
      tokens,
      hookPre: run.hookPre.map((a) => gather(a, this.config.dMlp)),
      hookPost: run.hookPost.map((a) => gather(a, this.config.dMlp)),
      logits: run.logits && gather(run.logits, this.config.vocabSize),
    };
  }

  runTokens(rows: readonly (readonly number[])[], opts: RunOptions = {}): Promise<TokenRun> {
    return this.forward.runTokens(rows, opts);
  }

  /** See Forward.runKept. */
  runKept(...args: Parameters<Forward['runKept']>): ReturnType<Forward['runKept']> {
    return this.forward.runKept(...args);
  }

  /**
   * Refuses a non-finite activation, naming the model, the neuron and (when known) the token:
   * JSON would write it as null and every statistic over it would be NaN. Weights are checked
   * finite at open, so this is an overflow inside the forward.
   */
  private checkFinite(run: TokenRun, tokens?: readonly TokenInfo[]): void {
    const M = this.config.dMlp;
    for (const [hook, layers] of [['pre', run.hookPre], ['post', run.hookPost]] as const) {
      layers.forEach((a, l) => {
        const i = firstNonFinite(a);
        if (i < 0) return;
        const t = Math.floor(i / M);
        const where = tokens ? `token ${t} (${JSON.stringify(tokens[t]!.text)})` : `row position ${t}`;
        throw new EngineError(
          `${this.dir}: the forward pass produced ${a[i]} at L${l}.N${i % M} hook_${hook}, ${where}, although every weight is finite; ` +
            `the model's weights overflow fp32 on this text, so its activations cannot be reported`,
          this.weightsFile.path,
        );
      });
    }
    // Logits too (ln_f and the LM head come after the last MLP): a consumer would turn an
    // overflowed logit into a NaN probability or entropy.
    const i = run.logits ? firstNonFinite(run.logits) : -1;
    if (i >= 0) {
      const V = this.config.vocabSize;
      const t = Math.floor(i / V);
      throw new EngineError(
        `${this.dir}: the forward pass produced ${run.logits![i]} in the logit of token id ${i % V} at ${tokens ? `token ${t} (${JSON.stringify(tokens[t]!.text)})` : `row position ${t}`}, ` +
          `although every weight is finite; the model's weights overflow fp32 on this text, so its logits cannot be reported`,
        this.weightsFile.path,
      );
    }
  }

  async close(): Promise<void> {
    await this.forward.close();
    this.weightsFile.close();
  }
}

export function openModel(path: string, opts: ForwardOptions = {}): Promise<Model> {
  return Model.open(path, opts);
}

export { safetensorsSource } from './validate';

/**
 * The k neurons with the largest post-activation at one token, across all layers, largest
 * first (ties: lower layer, then lower index).
 */
export function topNeurons(
  acts: Pick<Activations, 'hookPost' | 'tokens'>,
  tokenIndex: number,
  k: number,
): { layer: number; neuron: number; value: number }[] {
  const T = acts.tokens.length;
  if (!Number.isInteger(tokenIndex) || tokenIndex < 0 || tokenIndex >= T) {
    throw new EngineError(`token index ${tokenIndex} is outside 0..${T - 1}`);
  }
  return topNeuronsAt(acts.hookPost, T, tokenIndex, k);
}
