/**
 * The open phase of a run (runAnalysis, pipeline.ts): its settings (a resumed run's from its
 * manifest, a merge's from its parts, else from the options), the checks that need no model
 * (preflight), the models opened and checked against each other, and the corpus read. Nothing
 * is written here: a new run's folder appears in the plan phase, once all of this is usable.
 */
import * as fs from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { hashFile, hubEntryOf, hubRepoName, peekCheckpoint, revisionOf, splitRevision, stepOfRevision } from '../../checkpoint';
import { keptFilter, readCorpus } from '../../corpus';
import { parseModelConfig } from '../../arch/index';
import { EngineError, throwIfCancelled, type CancellationSignal } from '../../errors';
import type { Model } from '../../runtime';
import { hashVocab, Tokenizer } from '../../tokenizer';
import { checkExecutionProvider, setExecutionProvider } from '../../provider';
import { resolveThreads } from '../../threads';
import { acquireRunLock, resolveRunDir } from '../../store';
import { setKernelThreads } from '../../kernels/pool';
import { checkPartRequest } from '../parts';
import type { AnalysisOptions, OpenedRun, Progress, RunHold } from '../types';
import { ANALYSIS_DEFAULTS as DEFAULTS, isUsableThreshold } from '../../run/defaults';
import { readRunManifest, type Manifest, type ModelInfo, type Settings } from '../../run/manifest';

/**
 * Below this budget fast mode runs exact. Its screen is at most half the budget, and at 20,480
 * tokens a 10k-token screen missed a partner by 0.06; from 40,960 up fast matched exact to ≤ 1.1e-6
 * on the shipped family (BENCHMARKS.md). Exact is also the quicker of the two there: the screen is
 * an all-pairs pass over half the tokens.
 */
export const FAST_MIN_TOKENS = 40_960;


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


interface Opened {
  handles: Model[];
  infos: ModelInfo[];
  entries: Manifest['models'];
}

/** `recorded`: a resumed run's manifest entries, whose labels and revisions stand (its dirs are the snapshots, no longer `ENTRY@REV`). */
async function openModels(dirs: string[], threads: number, signal?: CancellationSignal, recorded?: Manifest['models']): Promise<Opened> {
  const { openModel } = await import('../../runtime'); // lazily: loads the native onnxruntime addon
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

function settingsFrom(opts: AnalysisOptions, reference: string): Settings {
  const s: Settings = {
    reference,
    threshold: opts.threshold ?? DEFAULTS.threshold,
    seed: opts.seed ?? DEFAULTS.seed,
    batchRows: opts.batchRows ?? DEFAULTS.batchRows,
    checkpointEvery: opts.checkpointEvery ?? DEFAULTS.checkpointEvery,
    checkpointSeconds: opts.checkpointSeconds ?? (opts.checkpointEvery !== undefined ? 0 : DEFAULTS.checkpointSeconds),
    ...(opts.chunkTokens !== undefined ? { chunkTokens: opts.chunkTokens } : {}),
    mode: opts.mode ?? DEFAULTS.mode,
    threads: opts.threads ?? DEFAULTS.threads,
    topK: opts.topK ?? DEFAULTS.topK,
    tokens: opts.tokens,
    memoryGb: opts.memoryGb ?? DEFAULTS.memoryGb,
    ...(opts.overlap === false ? { overlap: false } : {}),
  };
  if (!isUsableThreshold(s.threshold)) throw new EngineError(`threshold ${s.threshold} is not a usable excess correlation`);
  if (!Number.isSafeInteger(s.seed) || s.seed < 0 || s.seed >= 2 ** 32) throw new EngineError(`seed ${s.seed} must be an integer in [0, 2^32)`);
  if (!Number.isSafeInteger(s.batchRows) || s.batchRows < 1) throw new EngineError(`batch rows ${s.batchRows} must be a positive integer`);
  if (!Number.isSafeInteger(s.checkpointEvery) || s.checkpointEvery < 1) throw new EngineError(`checkpoint interval ${s.checkpointEvery} must be a positive integer`);
  if (!(Number.isFinite(s.checkpointSeconds) && s.checkpointSeconds! >= 0)) throw new EngineError(`checkpoint spacing ${s.checkpointSeconds} s must be a number ≥ 0`);
  if (s.mode !== 'exact' && s.mode !== 'fast') throw new EngineError(`mode ${String(s.mode)} is neither exact nor fast`);
  if (!(Number.isFinite(s.memoryGb) && s.memoryGb! > 0)) throw new EngineError(`memory budget ${s.memoryGb} GB must be a positive number`);
  return s;
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

/**
 * Opens a run: settings, preflight, threads and execution provider, models, corpus, the part it
 * computes and whether fast mode falls back to exact. Takes the run's lock at once for a resume
 * (`held.release`); the models' sessions go into `held.handles` once all are open.
 */
export async function openRun(opts: AnalysisOptions, onProgress: (p: Progress) => void, signal: CancellationSignal | undefined, held: RunHold): Promise<OpenedRun> {
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
    previous = readRunManifest(runDir);
    if (previous.status === 'complete') throw new EngineError(`run ${runDir} is already complete; nothing to resume`, runDir);
    id = previous.id;
    held.release = acquireRunLock(runDir);
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
  held.handles = handles;
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
  const pp = previous?.part;
  const part =
    opts.part ??
    (pp ? { ...(pp.block !== undefined ? { block: pp.block } : {}), ...(pp.shard ? { shard: { index: pp.shard.index, count: pp.shard.count } } : {}), ...(pp.plan ? { plan: pp.plan } : {}) } : undefined);
  if (part && !previous) checkPartRequest(settings, opts, part);
  let fastFallback: string | undefined;
  const budget = corpus.nRows * corpus.nPositions;
  if (!source && settings.mode === 'fast' && budget < (opts.fastMinTokens ?? FAST_MIN_TOKENS)) {
    settings.mode = 'exact';
    fastFallback =
      `fast mode was asked for, but ran exact: ${budget} tokens is below ${opts.fastMinTokens ?? FAST_MIN_TOKENS}, ` +
      'where the screening sample is too small to find every partner (exact is also quicker there)';
  }
  return {
    runDir,
    id,
    ...(previous ? { previous } : {}),
    ...(source ? { source } : {}),
    corpusPaths,
    settings,
    handles,
    infos,
    entries: opened.entries,
    corpus,
    ...(part ? { part } : {}),
    ...(fastFallback ? { fastFallback } : {}),
    tOpen,
  };
}
