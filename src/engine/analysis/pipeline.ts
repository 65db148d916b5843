// Over 700 lines, not yet split: runAnalysis (open, plan, pass, finish) is one function over
// shared local state (manifest, checkpoint, passes, forwards kept between passes). Its seams are
// those four phases; splitting them is issue #18's remaining step, left until the #13 speed work
// on the pass loop settles so that the two do not rewrite the same lines at once.
/**
 * The streaming pass (docs/analysis-contract.md): open the models, read the corpus, run every
 * model's activations-only forward over each batch of rows, hand one ActivationBatch to every
 * accumulator (always in the same order), checkpoint every K batches, then finish and write the
 * results through the store.
 *
 * Resume: the run folder's manifest holds every setting; the checkpoint holds the accumulators'
 * states after batch `nextBatch − 1`. Batches are cut the same way on resume, and accumulators
 * see the same batches in the same order, so a resumed run's numbers equal an uninterrupted run's.
 *
 * Passes: a plan may spread its accumulators over several passes over the corpus (a spec's
 * `pass`), so that what is held at once is one pass's accumulators and the forwards they read
 * (`reads`): GPT-2-small's cross moments do not fit in memory together (blocking.ts). Each pass
 * re-runs the forwards it needs; batches are cut the same in every pass, so an accumulator sees
 * what it would in a single pass. Accumulators finished in an earlier pass stay in the checkpoint
 * as packed results (`pack`/`unpack`), and later ones may read them (`create(done)`).
 */
// First: onnxruntime's telemetry off before the GEMM or forward sessions exist (ortTelemetry.ts).
import '../ortTelemetry';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { hashFile, hubEntryOf, hubRepoName, peekCheckpoint, revisionOf, splitRevision, stepOfRevision } from '../checkpoint';
import { keptFilter, readCorpus, row, type Corpus } from '../corpus';
import { firstNonFinite } from '../arch/common';
import { parseModelConfig } from '../arch/index';
import { CancelledError, EngineError, ioReason, throwIfCancelled, type CancellationSignal } from '../errors';
import type { Model } from '../runtime';
import { hashVocab, Tokenizer } from '../tokenizer';
import { checkExecutionProvider, setExecutionProvider } from '../provider';
import { resolveThreads } from '../threads';
import {
  acquireRunLock,
  createRunDir,
  readCheckpoint,
  readJson,
  resolveRunDir,
  writeCheckpoint,
  writeJsonAtomic,
} from '../store';
import { setKernelThreads } from '../kernels/pool';
import { GB, planMemory, reclaim } from './blocking';
import { CHUNK_TOKENS } from './crossmoments';
import { pairSeed, RotationCache } from './rotations';
import { checkPartRequest, partInfo, planPasses, readPartState, writePartState } from './parts';
import type {
  Accumulator,
  AccumulatorSpec,
  AccumulatorState,
  ActivationBatch,
  AnalysisOptions,
  AnalysisPlan,
  ModelActivations,
  PlanContext,
  Progress,
  RunResult,
} from './types';
import { ANALYSIS_DEFAULTS as DEFAULTS, isUsableThreshold } from '../run/defaults';
import type { Manifest, Mode, ModelInfo, Settings } from '../run/manifest';

// The manifest's types are the run folder's (src/engine/run/manifest.ts); DEFAULTS are src/engine/run/defaults.ts.
export type { Manifest, Mode, ModelInfo, Settings };
// The plan's and the pass's interfaces are shared with plan.ts and familyResults.ts: types.ts.
export type { AccumulatorSpec, AnalysisOptions, AnalysisPlan, PlanContext, Progress, RunResult };
export { DEFAULTS };

/**
 * Below this budget fast mode runs exact. Its screen is at most half the budget, and at 20,480
 * tokens a 10k-token screen missed a partner by 0.06; from 40,960 up fast matched exact to ≤ 1.1e-6
 * on the shipped family (BENCHMARKS.md). Exact is also the quicker of the two there: the screen is
 * an all-pairs pass over half the tokens.
 */
export const FAST_MIN_TOKENS = 40_960;

/** Choices the pipeline itself makes where docs/method-notes.md is silent. */
const PIPELINE_CHOICES: Record<string, string> = {
  rows: 'TransformerLens tokenize_and_concatenate: documents joined with EOS (50256), rows of n_positions = BOS + n_positions−1 corpus tokens, the incomplete last row dropped',
  token_budget: 'the first floor(tokens / n_positions) whole rows of the stream; BOS counts towards the budget',
  token_filter: 'statistics and correlations use tokens other than 50256 and "\\n" (198); the rows still contain them, and the forward sees them',
  corpus_order: 'inputs in the order given; a folder contributes its .txt/.md/.jsonl/.tokens.bin files sorted by relative path (code-unit order), hidden entries skipped',
  text_tokenizer: "text inputs are tokenized with the reference model's tokenizer, document by document",
};

// ---------------------------------------------------------------------------------------------

/** sha256 of the tokenizer's id → token table: two models share a tokenizer iff these match. */
export function vocabHash(tok: { vocabSize: number; tokenRaw(id: number): string | undefined }): string {
  return tok instanceof Tokenizer ? tok.vocabHash() : hashVocab(tok);
}

function labelOf(dir: string): string {
  // A revision of a hub cache entry: `name@step1000`, what a user reads in a development chart.
  const rev = fs.existsSync(dir) ? undefined : splitRevision(dir);
  const name = (entry: string) => hubRepoName(entry).split('/').pop()!;
  if (rev) return `${name(resolve(rev.dir))}@${rev.revision}`;
  // A hub cache entry or one of its snapshots: named by its revision too (the entry alone: main).
  const entry = hubEntryOf(dir);
  const r = entry ? revisionOf(dir) : undefined;
  if (entry && r) return `${name(entry)}@${r.revision}`;
  return basename(resolve(dir));
}

/** The manifest's record of a model's hub revision (ref, commit, training step), when it has one. */
function revisionEntry(dir: string): { revision?: string; commit?: string; step?: number } {
  const r = revisionOf(dir);
  if (!r) return {};
  const step = [r.revision, ...r.refs].map(stepOfRevision).find((s) => s !== undefined);
  return { revision: r.revision, commit: r.commit, ...(step !== undefined ? { step } : {}) };
}

function pickReference(models: string[], ref: string | undefined): number {
  if (ref === undefined || ref === '') return 0;
  const byPath = models.findIndex((m) => m === ref || resolve(m) === resolve(ref));
  if (byPath >= 0) return byPath;
  const byLabel = models.map(labelOf).indexOf(ref);
  if (byLabel >= 0) return byLabel;
  if (/^\d+$/.test(ref) && Number(ref) < models.length) return Number(ref);
  throw new EngineError(`--reference ${ref} is none of the models (${models.map(labelOf).join(', ')})`);
}

function packageVersion(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (fs.existsSync(p)) {
      try {
        return String((JSON.parse(fs.readFileSync(p, 'utf8')) as { version?: string }).version ?? 'unknown');
      } catch {
        return 'unknown';
      }
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

async function softwareVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = { 'universal-neurons': packageVersion(), node: process.version };
  try {
    const ort = await import('onnxruntime-node');
    out['onnxruntime-node'] = String(ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown');
  } catch {
    out['onnxruntime-node'] = 'unavailable';
  }
  return out;
}

/**
 * Layer arrays [T×d_mlp] interleaved into one [rows×N] matrix (neuron (l,n) at column
 * l·d_mlp+n): every token, or with `tokens` only those, packed in that order. Kept rows are
 * gathered straight from the layers: a full matrix compacted afterwards cost a copy and an
 * allocation per model and batch, and the full pre-activations are rarely read.
 */
export function interleave(layers: readonly Float32Array[], nTokens: number, dMlp: number, tokens?: Int32Array): Float32Array {
  const L = layers.length;
  const N = L * dMlp;
  const rows = tokens ? tokens.length : nTokens;
  const out = new Float32Array(rows * N);
  for (let l = 0; l < L; l++) {
    const src = layers[l]!;
    for (let k = 0; k < rows; k++) {
      const t = tokens ? tokens[k]! : k;
      out.set(src.subarray(t * dMlp, (t + 1) * dMlp), k * N + l * dMlp);
    }
  }
  return out;
}

/**
 * What one batch forwards and keeps, per model (index = model): the arrays it keeps; an empty
 * list means the model does not run.
 */
export type BatchReads = readonly (readonly (keyof ModelActivations)[])[];

/** The union of specs' reads, per model: a model keeps only what some spec reading it wants. */
export function unionReads(reads: readonly NonNullable<AccumulatorSpec['reads']>[], nModels: number): BatchReads {
  return Array.from({ length: nModels }, (_, i) => [...new Set(reads.filter((r) => r.models.includes(i)).flatMap((r) => r.arrays))]);
}

/**
 * Builds the contract's ActivationBatch for rows [rowStart, rowStart+nRows) of the corpus. With
 * `reads`, only the models that read something run and only the arrays read are kept; the
 * others are empty.
 */
/** The arrays of a model that `runKept` returns, when a pass wants no full `pre`. */
function keptKinds(want: (k: keyof ModelActivations) => boolean): ('keptPre' | 'keptPost' | 'post')[] {
  return (['keptPre', 'keptPost', 'post'] as const).filter((k) => want(k));
}

function forwardKey(batchIndex: number, rowStart: number, nRows: number, model: number, kinds: readonly string[]): string {
  return `${batchIndex}:${rowStart}:${nRows}:${model}:${kinds.join(',')}`;
}

/** The `forwards` keys a pass reading `reads` asks buildBatch for (one batch of `nRows` rows). */
function forwardKeys(reads: BatchReads | undefined, models: number, nRows: number): Set<string> {
  const keys = new Set<string>();
  for (let i = 0; i < models && reads; i++) {
    const want = (k: keyof ModelActivations): boolean => reads[i]!.includes(k);
    if (!want('pre')) keys.add(forwardKey(0, 0, nRows, i, keptKinds(want)));
  }
  return keys;
}

export async function buildBatch(
  handles: readonly Model[],
  corpus: Corpus,
  batchIndex: number,
  rowStart: number,
  nRows: number,
  signal?: CancellationSignal,
  reads?: AccumulatorSpec['reads'] | BatchReads,
  /** Forwards kept from an earlier pass over the same batch (see `runAnalysis`), filled as they run. */
  forwards?: Map<string, ModelActivations>,
): Promise<ActivationBatch> {
  const perModel: BatchReads | undefined = reads && !Array.isArray(reads) ? unionReads([reads as NonNullable<AccumulatorSpec['reads']>], handles.length) : (reads as BatchReads | undefined);
  const rows: number[][] = [];
  for (let r = rowStart; r < rowStart + nRows; r++) rows.push(row(corpus, r));
  const offsets = [0];
  for (const r of rows) offsets.push(offsets[offsets.length - 1]! + r.length);
  const nTokens = offsets[rows.length]!;
  const keep = new Uint8Array(nTokens);
  const kept: number[] = [];
  const isKept = keptFilter(handles[0]!.tokenizer);
  let t = 0;
  for (const r of rows) {
    for (const id of r) {
      if (isKept(id)) {
        keep[t] = 1;
        kept.push(t);
      }
      t++;
    }
  }
  const keptIndex = Int32Array.from(kept);
  const models: ModelActivations[] = [];
  const empty = new Float32Array(0);
  for (const [i, m] of handles.entries()) {
    const want = (k: keyof ModelActivations): boolean => !perModel || perModel[i]!.includes(k);
    const wantPre = want('pre') || want('keptPre');
    const wantPost = want('post') || want('keptPost');
    if (!(wantPre || wantPost)) {
      models.push({ pre: empty, post: empty, keptPre: empty, keptPost: empty });
      continue;
    }
    // The analysis' layout straight from ORT (it concatenates layers and gathers kept rows).
    if (!want('pre')) {
      const kind = keptKinds(want);
      const key = forwardKey(batchIndex, rowStart, nRows, i, kind);
      const kept = forwards?.get(key);
      if (kept) {
        models.push(kept);
        continue;
      }
      const k = await m.runKept(rows, keptIndex, kind, signal);
      if (k) {
        const acts = { pre: empty, post: k.post ?? empty, keptPre: k.keptPre ?? empty, keptPost: k.keptPost ?? empty };
        forwards?.set(key, acts);
        models.push(acts);
        continue;
      }
    }
    const hooks: ('pre' | 'post')[] = [...(wantPre ? ['pre' as const] : []), ...(wantPost ? ['post' as const] : [])];
    const run = await m.runTokens(rows, { hooks, signal });
    const d = m.dMlp;
    models.push({
      pre: want('pre') ? interleave(run.hookPre, nTokens, d) : empty,
      post: want('post') ? interleave(run.hookPost, nTokens, d) : empty,
      keptPre: want('keptPre') ? interleave(run.hookPre, nTokens, d, keptIndex) : empty,
      keptPost: want('keptPost') ? interleave(run.hookPost, nTokens, d, keptIndex) : empty,
    });
  }
  return { batchIndex, rows, rowStart, offsets, nTokens, keep, keptIndex, nKept: keptIndex.length, models };
}

// ---------------------------------------------------------------------------------------------

interface Opened {
  handles: Model[];
  infos: ModelInfo[];
  entries: Manifest['models'];
}

/** `recorded`: a resumed run's manifest entries, whose labels and revisions stand (its dirs are the snapshots, no longer `ENTRY@REV`). */
async function openModels(dirs: string[], threads: number, signal?: CancellationSignal, recorded?: Manifest['models']): Promise<Opened> {
  const { openModel } = await import('../runtime'); // lazily: loads the native onnxruntime addon
  const handles: Model[] = [];
  try {
    const entries: Manifest['models'] = [];
    const infos: ModelInfo[] = [];
    const labels = new Set<string>();
    for (const [i, dir] of dirs.entries()) {
      throwIfCancelled(signal);
      // No ORT arena: passes forward different models in turn, and each arena would keep its peak.
      const m = await openModel(dir, { ...(threads ? { threads } : {}), memArena: false });
      handles.push(m);
      const before = recorded?.[i];
      let label = before?.label ?? labelOf(dir);
      while (!before && labels.has(label)) label = `${label}_${i}`;
      labels.add(label);
      const info: ModelInfo = {
        label,
        dir: m.dir,
        nLayers: m.nLayers,
        dMlp: m.dMlp,
        nNeurons: m.nLayers * m.dMlp,
        nPositions: m.config.nPositions,
      };
      infos.push(info);
      entries.push({
        ...info,
        role: i === 0 ? 'reference' : 'other',
        config_sha256: await hashFile(join(m.dir, 'config.json')),
        // The weights file loadCheckpoint chose (a folder's only .safetensors may have another name).
        safetensors_sha256: await hashFile(m.weightsPath),
        vocab_sha256: vocabHash(m.tokenizer),
        // Vocabulary AND merges (Tokenizer.fingerprint): same vocabulary with other merges gives other ids.
        tokenizer_sha256: m.tokenizer.fingerprint(),
        ...(before ? { revision: before.revision, commit: before.commit, step: before.step } : revisionEntry(dir)),
      });
    }
    const ref = entries[0]!;
    for (const e of entries.slice(1)) {
      const diffs: string[] = [];
      const [refType, eType] = [handles[0]!.config.modelType, handles[entries.indexOf(e)]!.config.modelType];
      if (refType !== eType) diffs.push(`model_type ${refType} vs ${eType} in their config.json`);
      if (e.nLayers !== ref.nLayers) diffs.push(`n_layer ${ref.nLayers} vs ${e.nLayers}`);
      if (e.dMlp !== ref.dMlp) diffs.push(`d_mlp ${ref.dMlp} vs ${e.dMlp}`);
      if (e.nPositions !== ref.nPositions) diffs.push(`n_positions ${ref.nPositions} vs ${e.nPositions}`);
      if (diffs.length) {
        throw new EngineError(
          `models ${ref.dir} and ${e.dir} differ in architecture (${diffs.join(', ')}); universality compares models of one architecture`,
          e.dir,
        );
      }
      if (e.vocab_sha256 !== ref.vocab_sha256 || e.tokenizer_sha256 !== ref.tokenizer_sha256) {
        const what = e.vocab_sha256 !== ref.vocab_sha256 ? 'vocabularies' : 'merges or settings (same vocabulary)';
        const files = `${handles[0]!.tokenizer.source} vs ${handles[entries.indexOf(e)]!.tokenizer.source}`;
        throw new EngineError(
          `models ${ref.dir} and ${e.dir} use different tokenizers (${files}): their ${what} differ (tokenizer hashes ` +
            `${ref.tokenizer_sha256!.slice(0, 12)} vs ${e.tokenizer_sha256!.slice(0, 12)}), so one text gives them different ids; ` +
            `they must read the same tokens: give every model the same tokenizer.json`,
          e.dir,
        );
      }
    }
    return { handles, infos, entries };
  } catch (e) {
    for (const h of handles) await h.close();
    throw e;
  }
}

/** Temp files a killed writer left behind (never under a final name; see store.writeFileAtomic). */
function removeStaleTemps(runDir: string): void {
  for (const dir of [runDir, join(runDir, 'checkpoint')]) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (/^\..+\.tmp$/.test(n)) fs.rmSync(join(dir, n), { force: true });
  }
}

// The pass loop's accumulator calls live in their own frames: a loop in runAnalysis left the last
// accumulator it called in a register of that suspended async frame, so a finished pass's arrays
// (2.5 GB per GPT-2-small-size block) stayed reachable until the next pass had allocated its own
// (a heap snapshot showed the finished CrossMoments held by "(Stack roots)" alone).
async function addBatch(accs: readonly Accumulator<unknown>[], batch: ActivationBatch, handles: readonly Model[]): Promise<void> {
  try {
    for (const a of accs) await a.add(batch);
  } catch (e) {
    throw nonFiniteError(batch, handles) ?? e;
  }
}

/**
 * When an accumulator refuses a batch, which model produced a non-finite value, if one did. The
 * statistics see only columns ("activation column 1234 has a non-finite value"); weights are
 * checked finite at open, so this is a forward pass overflowing fp32, and the message must name
 * the model. Scanned only after a failure, so a healthy run pays nothing for it.
 */
export function nonFiniteError(batch: ActivationBatch, handles: readonly Pick<Model, 'dir' | 'nLayers' | 'dMlp' | 'weightsPath'>[]): EngineError | undefined {
  for (const [i, m] of batch.models.entries()) {
    const h = handles[i];
    if (!h) continue;
    for (const k of ['pre', 'post', 'keptPre', 'keptPost'] as const) {
      const a = m[k];
      const j = firstNonFinite(a);
      if (j < 0) continue;
      const N = h.nLayers * h.dMlp;
      const col = j % N;
      const row = Math.floor(j / N);
      const token = k.startsWith('kept') ? batch.keptIndex[row]! : row;
      let r = 0;
      while (r + 1 < batch.offsets.length - 1 && batch.offsets[r + 1]! <= token) r++;
      return new EngineError(
        `${h.dir}: the forward pass produced ${a[j]} at L${Math.floor(col / h.dMlp)}.N${col % h.dMlp} (hook_${/pre$/i.test(k) ? 'pre' : 'post'}) ` +
          `in corpus row ${batch.rowStart + r}, position ${token - batch.offsets[r]!}, although every weight is finite: the model's weights overflow fp32 ` +
          'on this corpus, so its statistics cannot be computed. Check the checkpoint (a weight of absurd size), or leave this model out',
        h.weightsPath,
      );
    }
  }
  return undefined;
}

async function finishPass(
  specs: readonly AccumulatorSpec[],
  accs: readonly Accumulator<unknown>[],
  results: Map<string, unknown>,
  packed: Record<string, AccumulatorState> | undefined,
  signal: CancellationSignal | undefined,
): Promise<void> {
  for (const [i, s] of specs.entries()) {
    throwIfCancelled(signal);
    const r = await accs[i]!.finish(signal);
    results.set(s.name, r);
    if (packed) packed[`done:${s.name}`] = s.pack!(r);
  }
}

function settingsFrom(opts: AnalysisOptions, reference: string): Settings {
  const s: Settings = {
    reference,
    threshold: opts.threshold ?? DEFAULTS.threshold,
    seed: opts.seed ?? DEFAULTS.seed,
    batchRows: opts.batchRows ?? DEFAULTS.batchRows,
    checkpointEvery: opts.checkpointEvery ?? DEFAULTS.checkpointEvery,
    mode: opts.mode ?? DEFAULTS.mode,
    threads: opts.threads ?? DEFAULTS.threads,
    topK: opts.topK ?? DEFAULTS.topK,
    tokens: opts.tokens,
    memoryGb: opts.memoryGb ?? DEFAULTS.memoryGb,
  };
  if (!isUsableThreshold(s.threshold)) throw new EngineError(`threshold ${s.threshold} is not a usable excess correlation`);
  if (!Number.isSafeInteger(s.seed) || s.seed < 0 || s.seed >= 2 ** 32) throw new EngineError(`seed ${s.seed} must be an integer in [0, 2^32)`);
  if (!Number.isSafeInteger(s.batchRows) || s.batchRows < 1) throw new EngineError(`batch rows ${s.batchRows} must be a positive integer`);
  if (!Number.isSafeInteger(s.checkpointEvery) || s.checkpointEvery < 1) throw new EngineError(`checkpoint interval ${s.checkpointEvery} must be a positive integer`);
  if (s.mode !== 'exact' && s.mode !== 'fast') throw new EngineError(`mode ${String(s.mode)} is neither exact nor fast`);
  if (!(Number.isFinite(s.memoryGb) && s.memoryGb! > 0)) throw new EngineError(`memory budget ${s.memoryGb} GB must be a positive number`);
  return s;
}

/**
 * The screens of a pass's specs that have one (`screen`): each sample batch is built once, with the
 * reads of the specs that screen it, and handed to their screen(). Returns whether any screened.
 */
async function screenPass(
  specs: AccumulatorSpec[],
  accs: Accumulator<unknown>[],
  nBatches: number,
  build: (b: number, reads: AccumulatorSpec['reads']) => Promise<ActivationBatch>,
  handles: readonly Model[],
): Promise<boolean> {
  const who = specs.flatMap((s, i) => (s.screen ? [{ s, a: accs[i]!, every: s.screen.every }] : []));
  if (who.length === 0) return false;
  for (const w of who) {
    if (!(Number.isSafeInteger(w.every) && w.every >= 1)) throw new EngineError(`accumulator ${w.s.name}: screen every ${w.every} is not a positive integer`);
    if (!w.a.screen) throw new EngineError(`accumulator ${w.s.name} has a screen but no screen()`);
  }
  for (let b = 0; b < nBatches; b++) {
    const now = who.filter((w) => b % w.every === 0);
    if (now.length === 0) continue;
    const reads = now.every((w) => w.s.reads)
      ? { models: [...new Set(now.flatMap((w) => w.s.reads!.models))], arrays: [...new Set(now.flatMap((w) => w.s.reads!.arrays))] }
      : undefined;
    const batch = await build(b, reads);
    try {
      for (const w of now) await w.a.screen!(batch);
    } catch (e) {
      throw nonFiniteError(batch, handles) ?? e;
    }
  }
  return true;
}

/**
 * An error as the run reports it: an EngineError or a cancel as it is; a raw file-system error
 * (ENOSPC, EACCES, EROFS, … without a path in its message) rewrapped to name the file (or the
 * run folder) and say what to do.
 */
export function asRunError(e: unknown, runDir: string): unknown {
  if (e instanceof CancelledError || e instanceof EngineError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  if (err && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) {
    const path = err.path ?? runDir;
    const verb = err.syscall === 'open' || err.syscall === 'read' || err.syscall === 'scandir' ? 'cannot read or open' : err.syscall ? `cannot ${err.syscall}` : 'cannot access';
    return new EngineError(`${verb} ${path} (run ${runDir}): ${ioReason(e)}`, path);
  }
  return e;
}

/**
 * The checks that need no model opened (issue #19: a bad budget or --out must not wait for the
 * models to load): every model folder resolves to a checkpoint with a usable config; the token
 * budget holds at least one row of the reference's context (and a budget that is not a multiple
 * of it is said now, not at the end); every corpus path exists; `out` is not a run already.
 */
export function preflight(modelDirs: readonly string[], corpusPaths: readonly string[], tokens: number, out: string | undefined, onProgress: (p: Progress) => void): void {
  const ctx: { n: number; config: string }[] = [];
  for (const d of modelDirs) {
    const ck = peekCheckpoint(d);
    ctx.push({ n: parseModelConfig(ck.configJson, ck.configPath).nPositions, config: ck.configPath });
  }
  const { n, config } = ctx[0]!;
  if (!(Number.isSafeInteger(tokens) && tokens >= n)) {
    throw new EngineError(
      `the token budget ${tokens} is less than one row: the reference model's context is ${n} tokens (n_positions in ${config}); give --tokens ${n} or more (a multiple of ${n})`,
      config,
    );
  }
  if (tokens % n !== 0) {
    const rows = Math.floor(tokens / n);
    onProgress({ phase: 'open', message: `warning: the token budget ${tokens} is not a multiple of the row length ${n}; using ${rows * n} tokens (${rows} rows)` });
  }
  for (const p of corpusPaths) {
    if (!fs.existsSync(p)) throw new EngineError(`corpus path ${p} does not exist`, p);
  }
  if (out !== undefined && fs.existsSync(join(out, 'manifest.json'))) {
    throw new EngineError(`${out} already holds a run (manifest.json); choose another --out, or continue it with --resume ${out}`, out);
  }
}

/** Marks a run that stopped: `cancelled` or `failed`, with the reason, written best-effort. */
function markEnded(m: Manifest, runDir: string, e: unknown, phase: string, t0: number): void {
  const cancelled = e instanceof CancelledError;
  m.status = cancelled ? 'cancelled' : 'failed';
  const resume = `resume it with: universal-neurons analyze --resume ${runDir}`;
  if (cancelled) {
    m.reason = `cancelled while ${phase}; no checkpoint was written on the way out, so a resume continues from the last periodic checkpoint (batch ${m.progress.batches_done} of ${m.progress.batches_total}); ${resume}`;
    delete m.error;
  } else {
    m.error = e instanceof Error ? e.message : String(e);
    m.reason = `failed while ${phase}: ${m.error}`;
  }
  m.updated = new Date().toISOString();
  m.timings.total_s += (Date.now() - t0) / 1000;
  try {
    writeJsonAtomic(join(runDir, 'manifest.json'), m);
  } catch {
    // the original error matters more (a full disk may refuse this write too)
  }
}

/**
 * Runs (or resumes) one analysis end to end. Progress goes to `onProgress`; `signal` stops it
 * within about a second in any phase (CancelledError): the manifest says `cancelled` with the
 * phase, and no checkpoint is written on the way out, so `resume` continues from the last
 * periodic one (or the end-of-stream one, when it stopped while finishing or writing).
 */
export async function runAnalysis(
  opts: AnalysisOptions,
  onProgress: (p: Progress) => void = () => {},
  signal?: CancellationSignal,
): Promise<RunResult> {
  const t0 = Date.now();
  const plan = opts.plan ?? (await import('./plan')).defaultPlan();
  // The phase a cancel or failure happened in, for the manifest's reason.
  let phaseNow = 'opening the models';
  const report = onProgress;
  onProgress = (p) => {
    if (p.message?.startsWith('warning: ')) {
      // a warning is not a phase
    } else if (p.phase !== 'checkpoint' && p.phase !== 'stream') phaseNow = p.message ?? p.phase;
    else if (p.phase === 'stream') phaseNow = 'streaming the corpus';
    report(p);
  };

  let release: (() => void) | undefined;
  let rotations: RotationCache | undefined;
  try {
    // Settings: a resumed run takes everything from its manifest.
    let runDir: string;
    let id: string;
    let previous: Manifest | undefined;
    let modelDirs: string[];
    let corpusPaths: string[];
    let settings: Settings;
    // A merge takes models, corpus and settings from its parts (`inherit`), as a resume does from its manifest.
    const inherit = opts.merge?.inherit;
    if (opts.resume) {
      runDir = resolveRunDir(opts.resume, opts.workspace);
      previous = readJson<Manifest>(join(runDir, 'manifest.json'));
      if (previous.format !== 'universal-neurons/run@1') throw new EngineError(`${runDir}/manifest.json is not a run manifest of this tool`, runDir);
      if (previous.status === 'complete') throw new EngineError(`run ${runDir} is already complete; nothing to resume`, runDir);
      id = previous.id;
      release = acquireRunLock(runDir);
      removeStaleTemps(runDir);
      modelDirs = previous.models.map((m) => m.dir);
      corpusPaths = previous.corpus.inputs;
      settings = previous.settings;
    } else if (inherit) {
      modelDirs = inherit.models.map((m) => m.dir);
      corpusPaths = inherit.corpus.inputs;
      settings = { ...inherit.settings };
      runDir = '';
      id = '';
    } else {
      if (opts.models.length < 2) throw new EngineError(`universality needs at least two models (got ${opts.models.length})`);
      const ri = pickReference(opts.models, opts.reference);
      // Absolute, so that --resume works from any folder.
      modelDirs = [opts.models[ri]!, ...opts.models.filter((_, i) => i !== ri)].map((d) => resolve(d));
      corpusPaths = opts.corpus.map((p) => resolve(p));
      settings = settingsFrom(opts, labelOf(modelDirs[0]!));
      runDir = '';
      id = '';
    }

    // Before any model is opened: the folders, configs, budget, corpus paths and run folder.
    preflight(modelDirs, corpusPaths, settings.tokens, previous ? undefined : opts.out, onProgress);

    // What 0 means is decided once, here, and recorded: every session uses (and writes) its own.
    // The kernels' worker pool takes the same count as onnxruntime.
    settings.threadsUsed = resolveThreads(settings.threads);
    setKernelThreads(settings.threadsUsed);
    // The provider is this session's, as the threads (a resumed run may move to a GPU or off one);
    // a missing CUDA provider fails here, before any model is read.
    settings.executionProvider = opts.executionProvider ?? 'cpu';
    await checkExecutionProvider(settings.executionProvider);
    setExecutionProvider(settings.executionProvider);
    onProgress({ phase: 'open', message: `opening ${modelDirs.length} models` });
    const opened = await openModels(modelDirs, settings.threadsUsed, signal, previous?.models);
    const { handles, infos } = opened;
    let manifest: Manifest | undefined;
    try {
      const source = previous ?? inherit;
      if (source) {
        for (const [i, e] of opened.entries.entries()) {
          const p = source.models[i]!;
          const tokChanged = p.tokenizer_sha256 !== undefined && p.tokenizer_sha256 !== e.tokenizer_sha256; // older runs lack it
          if (p.safetensors_sha256 !== e.safetensors_sha256 || p.config_sha256 !== e.config_sha256 || tokChanged) {
            throw new EngineError(`model ${e.dir} changed since run ${source.id} started (sha256 of its config, weights or tokenizer differs); start a new run`, e.dir);
          }
        }
      }
      const tOpen = Date.now();
      onProgress({ phase: 'corpus', message: `reading the corpus (${settings.tokens} tokens)` });
      const ref = handles[0]!;
      const corpus = readCorpus({
        paths: corpusPaths,
        nPositions: infos[0]!.nPositions,
        tokens: settings.tokens,
        encode: (text, maxTokens) => ref.tokenizer.encode(text, maxTokens),
        bos: ref.tokenizer.bosId,
        eos: ref.tokenizer.eosId,
        isKept: keptFilter(ref.tokenizer),
        vocabSize: Math.min(...handles.map((h) => h.config.vocabSize)), // .tokens.bin ids checked at read, naming the file
        signal,
      });
      if (source && source.corpus.hash !== corpus.hash) {
        throw new EngineError(`the corpus changed since run ${source.id} started (token hash differs); start a new run`, corpusPaths[0]);
      }
      // A part of a split run: its own pass, on the settings every part computes alike.
      const part = opts.part ?? (previous?.part ? { block: previous.part.block, ...(previous.part.plan ? { plan: previous.part.plan } : {}) } : undefined);
      if (part && !previous) checkPartRequest(settings, opts);
      let fastFallback: string | undefined;
      const budget = corpus.nRows * corpus.nPositions;
      if (!source && settings.mode === 'fast' && budget < (opts.fastMinTokens ?? FAST_MIN_TOKENS)) {
        settings.mode = 'exact';
        fastFallback =
          `fast mode was asked for, but ran exact: ${budget} tokens is below ${opts.fastMinTokens ?? FAST_MIN_TOKENS}, ` +
          'where the screening sample is too small to find every partner (exact is also quicker there)';
      }
      let memEstimate = 0;
      if (!source) {
        // Measured after opening the models and reading the corpus: they are the base every pass holds.
        const statsBytes = plan.statsBytes?.({ models: infos, handles, settings, corpus, runDir: '', signal, progress: onProgress }) ?? 0;
        const mem = planMemory({
          statsBytes,
          models: infos,
          batchRows: settings.batchRows,
          // A part's batches must be cut as every other part's, whatever this machine's memory.
          batchRowsFixed: opts.batchRows !== undefined || part !== undefined,
          corpusRows: corpus.nRows,
          budgetBytes: settings.memoryGb! * GB,
          baseBytes: process.memoryUsage().rss,
          everyBlockGram: settings.mode !== 'exact',
          fp32Only: budget <= CHUNK_TOKENS,
          blocks: opts.refBlocks,
        });
        settings.batchRows = mem.batchRows;
        settings.gramBlock = mem.gramBlock;
        settings.refBlock = mem.refBlock;
        memEstimate = mem.estimateBytes;
        // A fresh rotation per pair, as the paper draws it; recorded, so a resume draws the same.
        settings.rotationSeeds = Object.fromEntries(infos.slice(1).map((m, i) => [m.label, pairSeed(settings.seed, i + 1)]));
      }
      // A new run's folder appears only once models and corpus are known to be usable.
      if (!previous) {
        ({ dir: runDir, id } = createRunDir({ out: opts.out, workspace: opts.workspace }));
        release = acquireRunLock(runDir);
      }
      onProgress({ phase: 'run', runDir, message: `${previous ? 'resuming' : 'run'} ${runDir}` });
      const tCorpus = Date.now();

      const nBatches = Math.ceil(corpus.nRows / settings.batchRows);
      const now = new Date().toISOString();
      manifest = {
        format: 'universal-neurons/run@1',
        id,
        status: 'running',
        // Who runs it: a reader on this host tells a killed run from a running one (run/liveness.ts).
        pid: process.pid,
        hostname: hostname(),
        created: previous?.created ?? now,
        updated: now,
        software: await softwareVersions(),
        models: opened.entries,
        corpus: {
          inputs: corpusPaths,
          files: corpus.files,
          skipped: corpus.skipped,
          hash: corpus.hash,
          rows: corpus.nRows,
          row_length: corpus.nPositions,
          tokens: corpus.tokens,
        },
        settings,
        choices: { ...PIPELINE_CHOICES, ...(plan.choices ?? {}) },
        progress: { batches_done: 0, batches_total: nBatches, tokens_done: 0 },
        timings: {
          open_s: (previous?.timings.open_s ?? 0) + (tOpen - t0) / 1000,
          corpus_s: (previous?.timings.corpus_s ?? 0) + (tCorpus - tOpen) / 1000,
          stream_s: previous?.timings.stream_s ?? 0,
          finish_s: 0,
          write_s: 0,
          total_s: previous?.timings.total_s ?? 0,
          sessions: (previous?.timings.sessions ?? 0) + 1,
        },
        warnings: [...corpus.warnings],
      };
      const m = manifest;
      if (fastFallback) {
        m.choices.mode = fastFallback;
        m.warnings.push(fastFallback);
      }
      if (settings.refBlock) {
        m.choices.memory =
          `cross moments in blocks of reference columns within a ${settings.memoryGb} GB budget: per other model a first block of ${settings.gramBlock} ` +
          `(it holds m's Gram and exports m's moments), then blocks of at most ${settings.refBlock}; one pass over the corpus per block and other model ` +
          '(the forwards re-run), then one pass for the statistics; results equal an unblocked run' +
          (memEstimate ? `; planned peak ${(memEstimate / GB).toFixed(2)} GB` : '');
      }
      // A blocked run finishes every pass with the same L matrices: drawn once, kept in a file.
      if (settings.refBlock) rotations = new RotationCache();
      const ctx: PlanContext = { models: infos, handles, settings, corpus, runDir, signal, progress: onProgress, ...(rotations ? { rotations } : {}) };
      const specs = await plan.accumulators(ctx);
      const names = new Set(specs.map((s) => s.name));
      if (names.size !== specs.length) throw new EngineError('accumulator names in the plan are not unique');
      for (const s of specs) {
        if (s.pass !== undefined && !(Number.isSafeInteger(s.pass) && s.pass >= 0)) throw new EngineError(`accumulator ${s.name}: pass ${s.pass} is not a non-negative integer`);
      }
      const passes = planPasses(specs);
      const P = passes.length;
      if (part) {
        if (!(Number.isSafeInteger(part.block) && part.block >= 0 && part.block < P)) {
          throw new EngineError(`--block ${part.block}: this run's plan has ${P} parts, --block 0 to ${P - 1}`);
        }
        m.part = partInfo(m, part, P);
      }
      // A part resumed after writing its state has nothing left to stream.
      const partDone = part ? readPartState(runDir)?.passes.includes(part.block) === true : false;
      // What a pass forwards: the union of its specs' reads, per model (everything if one does not say).
      const readsOf = (ps: AccumulatorSpec[]): BatchReads | undefined =>
        ps.every((s) => s.reads) ? unionReads(ps.map((s) => s.reads!), handles.length) : undefined;

      // Restore or create every accumulator of the pass the run is in.
      let pass = 0;
      let start = 0;
      const results = new Map<string, unknown>();
      const packed: Record<string, AccumulatorState> = {};
      const ck = previous ? readCheckpoint(runDir) : undefined;
      let accs: Accumulator<unknown>[];
      // Restored accumulators were checkpointed after their screen (if any); fresh ones screen first.
      let fresh = !ck;
      if (ck) {
        if (ck.meta.corpusHash !== corpus.hash || ck.meta.batchRows !== settings.batchRows) {
          throw new EngineError(`the checkpoint in ${runDir} belongs to other data or batch size; start a new run`, runDir);
        }
        pass = typeof ck.meta.pass === 'number' ? ck.meta.pass : 0;
        if (!(pass < P)) throw new EngineError(`the checkpoint in ${runDir} is in pass ${pass + 1} of a plan with ${P}; start a new run`, runDir);
        for (const s of part ? [] : passes.slice(0, pass).flat()) {
          const st = ck.states[`done:${s.name}`];
          if (!st) throw new EngineError(`the checkpoint in ${runDir} has no result for ${s.name}`, runDir);
          results.set(s.name, s.unpack!(st));
          packed[`done:${s.name}`] = st;
        }
        start = ck.nextBatch;
        // A pass-boundary checkpoint (one batch per pass) holds the finished passes only: this
        // pass's accumulators start afresh below.
        const boundary = start === 0 && passes[pass]!.every((s) => !ck.states[s.name]);
        if (!boundary) {
          for (const s of passes[pass]!) if (!ck.states[s.name]) throw new EngineError(`the checkpoint in ${runDir} has no state for ${s.name}`, runDir);
        }
        accs = boundary ? [] : passes[pass]!.map((s) => s.restore(ck.states[s.name]!, results));
        fresh = boundary;
      } else {
        // Parts and merges make their accumulators as they reach their passes (below).
        accs = part || opts.merge ? [] : passes[0]!.map((s) => s.create(results));
      }
      const tokensAt = (b: number) => Math.min(b * settings.batchRows, corpus.nRows) * corpus.nPositions;
      m.progress = { batches_done: pass * nBatches + start, batches_total: P * nBatches, tokens_done: tokensAt(start) };
      writeJsonAtomic(join(runDir, 'manifest.json'), m);

      const tokensTotal = corpus.nRows * corpus.nPositions;
      const tStream = Date.now();
      const streamBase = m.timings.stream_s;
      let finishSecs = 0;
      let tWrite = tStream;
      const sessionStart = pass * tokensTotal + tokensAt(start);
      // When one batch holds the whole corpus (few tokens, large models: GPT-2-small size at 1,024
      // tokens is 29 passes of one batch), the next pass forwards what this one did: the
      // reference in every pass, m in each of its pair's blocks. Those forwards are kept between
      // passes, and what the next pass does not read is dropped before it starts (GPT-2-small size:
      // 4·T·N = 0.15 GB a model; the planner's reserve for fp32-only blocks covers them).
      const forwards = nBatches === 1 && P > 1 ? new Map<string, ModelActivations>() : undefined;
      // One batch per pass: checkpoints only at pass boundaries, holding the finished results.
      const boundaryOnly = nBatches === 1;
      for (; pass < P; pass++, start = 0) {
        const cur = passes[pass]!;
        // A part streams its own pass only.
        if (part && (pass !== part.block || partDone)) continue;
        const reads = readsOf(cur);
        if (forwards) {
          // Before the pass allocates its accumulators: the last pair's forwards go first.
          const wanted = forwardKeys(reads, handles.length, corpus.nRows);
          const before = forwards.size;
          for (const key of [...forwards.keys()]) if (!wanted.has(key)) forwards.delete(key);
          if (forwards.size < before) await reclaim();
        }
        if (accs.length === 0 && opts.merge) {
          // A merge: the parts' end-of-stream states, finished as a resume finishes its last checkpoint.
          const states = opts.merge.states;
          accs = cur.map((s) => {
            const st = states[s.name];
            if (!st) throw new EngineError(`the parts hold no state for ${s.name}`);
            return s.restore(st, results);
          });
          start = nBatches;
          fresh = false;
        } else if (accs.length === 0) {
          accs = cur.map((s) => s.create(results));
          fresh = true;
        }
        const passNote = P > 1 ? `pass ${pass + 1}/${P}: ` : '';
        const checkpoint = (next: number): void => {
          onProgress({ phase: 'checkpoint', batch: pass * nBatches + next, batches: P * nBatches });
          writeCheckpoint(runDir, {
            nextBatch: next,
            meta: { corpusHash: corpus.hash, batchRows: settings.batchRows, nBatches, ...(P > 1 ? { pass } : {}) },
            states: { ...packed, ...Object.fromEntries(cur.map((s, i) => [s.name, accs[i]!.state()])) },
          });
          m.progress = { batches_done: pass * nBatches + next, batches_total: P * nBatches, tokens_done: tokensAt(next) };
          m.updated = new Date().toISOString();
          writeJsonAtomic(join(runDir, 'manifest.json'), m);
        };

        // Stream.
        let lastCheckpoint = start;
        try {
          const sample = async (b: number, r: AccumulatorSpec['reads']): Promise<ActivationBatch> => {
            throwIfCancelled(signal);
            onProgress({ phase: 'stream', message: `${passNote}screening sample, batch ${b + 1} of ${nBatches}` });
            return buildBatch(handles, corpus, b, b * settings.batchRows, Math.min(settings.batchRows, corpus.nRows - b * settings.batchRows), signal, r);
          };
          // Checkpointed once screened, so that a resume does not screen again.
          if (fresh && (await screenPass(cur, accs, nBatches, sample, handles)) && !boundaryOnly) checkpoint(0);
          fresh = false;
          for (let b = start; b < nBatches; b++) {
            // A cancel writes no checkpoint on the way out: the run resumes from its last periodic one.
            throwIfCancelled(signal);
            const rowStart = b * settings.batchRows;
            const batch = await buildBatch(handles, corpus, b, rowStart, Math.min(settings.batchRows, corpus.nRows - rowStart), signal, reads, forwards);
            await addBatch(accs, batch, handles);
            const done = pass * tokensTotal + tokensAt(b + 1);
            const secs = (Date.now() - tStream) / 1000;
            const rate = (done - sessionStart) / Math.max(secs, 1e-3);
            m.timings.stream_s = streamBase + secs - finishSecs;
            if ((b + 1) % settings.checkpointEvery === 0 && b + 1 < nBatches) {
              checkpoint(b + 1);
              lastCheckpoint = b + 1;
            }
            onProgress({
              phase: 'stream',
              ...(passNote ? { message: `${passNote}${cur.map((s) => s.name).join(', ')}` } : {}),
              batch: pass * nBatches + b + 1,
              batches: P * nBatches,
              tokensDone: done,
              tokensTotal: P * tokensTotal,
              tokensPerSec: rate,
              etaSec: (P * tokensTotal - done) / Math.max(rate, 1e-9),
            });
          }
          // A cancel during the last batch, inside this block: the manifest then says cancelled.
          throwIfCancelled(signal);
        } finally {
          // (a failure or cancel is recorded by the catch around the whole run, below)
        }
        if (part) {
          // The part's product: its accumulators' state at the end of the stream, for the merge.
          onProgress({ phase: 'checkpoint', message: `writing part ${part.block} of ${P}` });
          writePartState(runDir, pass, { corpusHash: corpus.hash, batchRows: settings.batchRows, nBatches }, Object.fromEntries(cur.map((s, i) => [s.name, accs[i]!.state()])));
          accs = [];
          continue;
        }
        // A checkpoint at the end: if finishing or writing fails (a full disk), resume skips the
        // stream. Not when the stream is one batch: there the accumulators' state (GBs at GPT-2-small
        // size: 450 s of a 2,600 s run went to these writes) costs more than the batch it saves.
        if (lastCheckpoint < nBatches && !boundaryOnly) checkpoint(nBatches);

        // Finish (and, after the last pass, write).
        const tFinish = Date.now();
        try {
          onProgress({ phase: 'finish', message: `${passNote}computing correlations and statistics` });
          // Cancel points between the finishing steps: the end-of-stream checkpoint above means a
          // resume redoes only this phase.
          await finishPass(cur, accs, results, pass < P - 1 ? packed : undefined, signal);
          throwIfCancelled(signal);
          // The finished accumulators' memory goes before the next pass allocates its own.
          accs = [];
          if (P > 1) await reclaim();
          if (boundaryOnly && pass < P - 1) {
            // The finished passes' packed results (per-neuron vectors: small); a resume starts the
            // next pass afresh.
            onProgress({ phase: 'checkpoint', batch: (pass + 1) * nBatches, batches: P * nBatches });
            writeCheckpoint(runDir, {
              nextBatch: 0,
              meta: { corpusHash: corpus.hash, batchRows: settings.batchRows, nBatches, pass: pass + 1 },
              states: { ...packed },
            });
            m.progress = { batches_done: (pass + 1) * nBatches, batches_total: P * nBatches, tokens_done: 0 };
            m.updated = new Date().toISOString();
            writeJsonAtomic(join(runDir, 'manifest.json'), m);
          }
          tWrite = Date.now();
          finishSecs += (tWrite - tFinish) / 1000;
          if (pass === P - 1) {
            // The finalize reads the reference alone (its tokenizer; the intervention opens its
            // own scorer): the other models' sessions go first, 0.55 GB each at GPT-2-small size,
            // where the write phase peaked at 9.2 GB with all five open.
            for (const h of handles.slice(1)) await h.close();
            onProgress({ phase: 'write', message: `writing results to ${runDir}` });
            m.results = await plan.finalize(ctx, results);
          }
        } finally {
          // (a failure or cancel is recorded by the catch around the whole run, below)
        }
      }
      const tEnd = Date.now();
      m.status = 'complete';
      delete m.error;
      delete m.reason;
      m.updated = new Date().toISOString();
      m.progress = { batches_done: P * nBatches, batches_total: P * nBatches, tokens_done: tokensTotal };
      m.timings.finish_s = finishSecs;
      m.timings.write_s = (tEnd - tWrite) / 1000;
      m.timings.total_s += (tEnd - t0) / 1000;
      writeJsonAtomic(join(runDir, 'manifest.json'), m);
      // The checkpoint has served its purpose; the results are final.
      fs.rmSync(join(runDir, 'checkpoint'), { recursive: true, force: true });
      onProgress({ phase: 'done', message: runDir });
      return { runDir, id, manifest: m, results };
    } catch (e) {
      // Whatever stops a run that has a manifest (a cancel, a full disk, a bug) is recorded
      // there, so that no reader takes a dead run for a running one. A cancel writes no
      // checkpoint: the run resumes from its last periodic one.
      const err = manifest ? asRunError(e, runDir) : e;
      if (manifest) markEnded(manifest, runDir, err, phaseNow, t0);
      throw err;
    } finally {
      for (const h of handles) await h.close();
    }
  } finally {
    rotations?.close();
    release?.();
  }
}
