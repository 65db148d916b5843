/**
 * The plan phase of a run (runAnalysis, pipeline.ts): the memory plan (blocking.ts: batch rows
 * and reference blocks), the run folder and its manifest, the plan's accumulators grouped into
 * passes (parts.ts planPasses), and where the run stands: a fresh start, or the pass, batch and
 * accumulator states a checkpoint holds. The plan itself (which accumulators, how their results
 * are written) is ../plan.ts's defaultPlan or the caller's.
 */
import { hugePagesOn, HUGEPAGES_TUNABLE } from '../../hugePages';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { EngineError, type CancellationSignal } from '../../errors';
import { acquireRunLock, createRunDir, readCheckpoint } from '../../store';
import { GB, planMemory, reclaim } from '../blocking';
import { CHUNK_TOKENS } from '../crossmoments';
import { fastStateBytes } from '../cross/fast';
import { pairSeed, RotationCache } from '../rotations';
import { partInfo, planPasses, readPartState, shardInfo } from '../parts';
import { keptFilter } from '../../corpus';
import type { Accumulator, AccumulatorState, AnalysisOptions, AnalysisPlan, OpenedRun, PlanContext, Progress, RunContext, RunHold, RunState } from '../types';
import { writeManifest, type Manifest } from '../../run/manifest';
import { tokensAt } from './pass';

/** Choices the pipeline itself makes where docs/method-notes.md is silent. */
const PIPELINE_CHOICES: Record<string, string> = {
  rows: 'TransformerLens tokenize_and_concatenate: documents joined with EOS (50256), rows of n_positions = BOS + n_positions−1 corpus tokens, the incomplete last row dropped',
  token_budget: 'the first floor(tokens / n_positions) whole rows of the stream; BOS counts towards the budget',
  token_filter: 'statistics and correlations use tokens other than 50256 and "\\n" (198); the rows still contain them, and the forward sees them',
  corpus_order: 'inputs in the order given; a folder contributes its .txt/.md/.jsonl/.tokens.bin files sorted by relative path (code-unit order), hidden entries skipped',
  text_tokenizer: "text inputs are tokenized with the reference model's tokenizer, document by document",
};


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
  // The allocator's huge pages change how fast a run is, not its numbers (hugePages.ts).
  out['huge pages'] = hugePagesOn() ? HUGEPAGES_TUNABLE : 'off';
  try {
    const ort = await import('onnxruntime-node');
    out['onnxruntime-node'] = String(ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown');
  } catch {
    out['onnxruntime-node'] = 'unavailable';
  }
  return out;
}

/**
 * Plans an opened run: memory, run folder, manifest (in `held` as soon as it exists, so that a
 * failure from then on is recorded in it), accumulators, passes and the state to start from.
 * Writes the manifest once, before any pass streams.
 */
export async function planRun(
  run: OpenedRun,
  opts: AnalysisOptions,
  plan: AnalysisPlan,
  t0: number,
  onProgress: (p: Progress) => void,
  signal: CancellationSignal | undefined,
  held: RunHold,
): Promise<{ rc: RunContext; state: RunState }> {
  const { previous, source, settings, handles, infos, corpus, part } = run;
  let { runDir, id } = run;
  let memEstimate = 0;
  if (!source) {
    // Measured after opening the models and reading the corpus: they are the base every pass holds.
    const budget = corpus.nRows * corpus.nPositions;
    const statsBytes = plan.statsBytes?.({ models: infos, handles, settings, corpus, runDir: '', signal, progress: onProgress }) ?? 0;
    // What opening left as garbage (a GPT-2-small-size graph's bytes, the weights' conversions)
    // is not held: without a collection first the measured base varied by ~0.1 GB from run to
    // run, and the 8 GB default sometimes refused a GPT-2-small-size run it had planned before.
    await reclaim();
    const mem = planMemory({
      statsBytes,
      models: infos.map((m, i) => ({ ...m, nHeads: handles[i]!.config.nHead })),
      batchRows: settings.batchRows,
      // A part's batches must be cut as every other part's, whatever this machine's memory.
      batchRowsFixed: opts.batchRows !== undefined || part !== undefined,
      corpusRows: corpus.nRows,
      budgetBytes: settings.memoryGb! * GB,
      baseBytes: process.memoryUsage().rss,
      ...(settings.mode === 'fast' ? { fastCandidates: Math.max(...infos.slice(1).map((m) => fastStateBytes(infos[0]!.nNeurons, m.nLayers, m.dMlp))) } : {}),
      fp32Only: budget <= CHUNK_TOKENS,
      blocks: opts.refBlocks,
    });
    // A token shard's blocks must be every shard's: the planner's depend on this machine's memory.
    if (part?.shard && !opts.refBlocks && mem.refBlock) {
      throw new EngineError(
        `a token shard (--shard) of a run the memory planner cuts into blocks of reference neurons needs the blocks given, so that every machine cuts alike: ` +
          `the planner chose --block-size ${mem.gramBlock},${mem.refBlock} here; give it (or a size of your own) to every shard`,
      );
    }
    settings.batchRows = mem.batchRows;
    settings.gramBlock = mem.gramBlock;
    settings.refBlock = mem.refBlock;
    if (settings.mode === 'fast' && mem.refBlock) settings.candidatePairs = mem.candidatePairs;
    memEstimate = mem.estimateBytes;
    // A fresh rotation per pair, as the paper draws it; recorded, so a resume draws the same.
    settings.rotationSeeds = Object.fromEntries(infos.slice(1).map((m, i) => [m.label, pairSeed(settings.seed, i + 1)]));
  }
  // A token shard: its batches, from the corpus and settings alone (refused here, before any
  // work, when the corpus does not split into that many: parts.ts shardCuts).
  const shard = part?.shard
    ? (previous?.part?.shard ?? shardInfo(corpus, keptFilter(handles[0]!.tokenizer), settings.batchRows, settings.chunkTokens ?? CHUNK_TOKENS, part.shard.index, part.shard.count))
    : undefined;
  // A new run's folder appears only once models and corpus are known to be usable.
  if (!previous) {
    ({ dir: runDir, id } = createRunDir({ out: opts.out, workspace: opts.workspace }));
    held.release = acquireRunLock(runDir);
  }
  onProgress({ phase: 'run', runDir, message: `${previous ? 'resuming' : 'run'} ${runDir}` });
  const tCorpus = Date.now();

  const nBatches = Math.ceil(corpus.nRows / settings.batchRows);
  const now = new Date().toISOString();
  const m: Manifest = {
    format: 'universal-neurons/run@1',
    id,
    status: 'running',
    // Who runs it: a reader on this host tells a killed run from a running one (run/liveness.ts).
    pid: process.pid,
    hostname: hostname(),
    created: previous?.created ?? now,
    updated: now,
    software: await softwareVersions(),
    models: run.entries,
    corpus: {
      inputs: run.corpusPaths,
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
      open_s: (previous?.timings.open_s ?? 0) + (run.tOpen - t0) / 1000,
      corpus_s: (previous?.timings.corpus_s ?? 0) + (tCorpus - run.tOpen) / 1000,
      stream_s: previous?.timings.stream_s ?? 0,
      finish_s: 0,
      write_s: 0,
      total_s: previous?.timings.total_s ?? 0,
      sessions: (previous?.timings.sessions ?? 0) + 1,
    },
    warnings: [...corpus.warnings],
  };
  held.manifest = m;
  held.runDir = runDir;
  if (run.fastFallback) {
    m.choices.mode = run.fastFallback;
    m.warnings.push(run.fastFallback);
  }
  if (settings.refBlock) {
    m.choices.memory =
      `cross moments in blocks of reference columns within a ${settings.memoryGb} GB budget: per other model a first block of ${settings.gramBlock} ` +
      `(it holds m's Gram and exports m's moments), then blocks of at most ${settings.refBlock}; one pass over the corpus per block and other model ` +
      '(the forwards re-run), then one pass for the statistics; results equal an unblocked run' +
      (memEstimate ? `; planned peak ${(memEstimate / GB).toFixed(2)} GB` : '');
  }
  // A blocked run finishes every pass with the same L matrices: drawn once, kept in a file.
  const rotations = settings.refBlock ? (held.rotations = new RotationCache()) : undefined;
  const planCtx: PlanContext = { models: infos, handles, settings, corpus, runDir, signal, progress: onProgress, ...(rotations ? { rotations } : {}) };
  const specs = await plan.accumulators(planCtx);
  const names = new Set(specs.map((s) => s.name));
  if (names.size !== specs.length) throw new EngineError('accumulator names in the plan are not unique');
  for (const s of specs) {
    if (s.pass !== undefined && !(Number.isSafeInteger(s.pass) && s.pass >= 0)) throw new EngineError(`accumulator ${s.name}: pass ${s.pass} is not a non-negative integer`);
  }
  const passes = planPasses(specs);
  const P = passes.length;
  if (part) {
    if (part.block !== undefined && !(Number.isSafeInteger(part.block) && part.block >= 0 && part.block < P)) {
      throw new EngineError(`--block ${part.block}: this run's plan has ${P} parts, --block 0 to ${P - 1}`);
    }
    m.part = partInfo(m, part, P, shard);
  }
  const [b0, b1] = shard ? shard.batches : [0, nBatches];
  const rc: RunContext = {
    runDir,
    id,
    manifest: m,
    plan,
    planCtx,
    passes,
    nBatches,
    ...(part ? { part } : {}),
    // The passes a resumed part has written its state for: nothing left to stream in them.
    partDone: new Set(part ? (readPartState(runDir)?.passes ?? []) : []),
    ...(shard ? { shard } : {}),
    b0,
    b1,
    ...(opts.merge ? { merge: opts.merge } : {}),
    handles,
    corpus,
    settings,
    ...(signal ? { signal } : {}),
    progress: onProgress,
    // When one batch holds the whole corpus (few tokens, large models: GPT-2-small size at 1,024
    // tokens is 29 passes of one batch), the next pass forwards what this one did: the
    // reference in every pass, m in each of its pair's blocks. Those forwards are kept between
    // passes, and what the next pass does not read is dropped before it starts (GPT-2-small size:
    // 4·T·N = 0.15 GB a model; the planner's reserve for fp32-only blocks covers them).
    ...(nBatches === 1 && P > 1 ? { forwards: new Map() } : {}),
    boundaryOnly: nBatches === 1,
    tokensTotal: 0,
  };
  rc.tokensTotal = tokensAt(rc, b1);
  const state = restoreState(rc, previous !== undefined);
  // A token shard streams (and counts) its own batches.
  state.start = Math.max(state.start, b0);
  const nb = b1 - b0;
  m.progress = { batches_done: state.pass * nb + state.start - b0, batches_total: P * nb, tokens_done: tokensAt(rc, state.start) };
  writeManifest(runDir, m);
  const tStream = Date.now();
  state.tStream = tStream;
  state.streamBase = m.timings.stream_s;
  state.tWrite = tStream;
  state.sessionStart = state.pass * rc.tokensTotal + tokensAt(rc, state.start);
  return { rc, state };
}

/**
 * Restores or creates every accumulator of the pass the run is in: a resumed run's checkpoint
 * gives the pass, the batch to go on from and the states (and the finished passes' results).
 */
function restoreState(rc: RunContext, resumed: boolean): RunState {
  const { runDir, passes, part, corpus, settings } = rc;
  const P = passes.length;
  let pass = 0;
  let start = 0;
  const results = new Map<string, unknown>();
  const packed: Record<string, AccumulatorState> = {};
  const ck = resumed ? readCheckpoint(runDir) : undefined;
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
    // Parts and merges make their accumulators as they reach their passes (pass.ts).
    accs = part || rc.merge ? [] : passes[0]!.map((s) => s.create(results));
  }
  return { pass, start, accs, fresh, results, packed, tStream: 0, streamBase: 0, sessionStart: 0, finishSecs: 0, tWrite: 0 };
}
