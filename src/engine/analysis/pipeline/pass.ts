/**
 * The pass phase of a run (runAnalysis, pipeline.ts): one pass over the corpus. It drops the kept
 * forwards the pass does not read, makes (or, for a merge, restores) the pass's accumulators,
 * runs their screens, streams every batch into them in spec order, checkpoints every K batches
 * and at the end of the stream, and for a part writes the accumulators' state instead (parts.ts).
 */
import { EngineError, throwIfCancelled } from '../../errors';
import { KEPT_KINDS } from '../../arch/common';
import type { Model } from '../../runtime';
import { writeCheckpoint } from '../../store';
import { writeManifest } from '../../run/manifest';
import { reclaim } from '../blocking';
import { partName, writePartState } from '../parts';
import type { Accumulator, AccumulatorSpec, ActivationBatch, RunContext, RunState } from '../types';
import { threadsOf } from '../../threads';
import { buildBatch, forwardKeys, keptModels, nonFiniteError, prefetchBatch, unionReads, type BatchReads } from './batch';
import { ForwardPrefetch } from './prefetch';

/** Tokens in batches [b0, b) of a pass (a whole run: b0 = 0; a token shard: its first batch). */
export function tokensAt(rc: Pick<RunContext, 'settings' | 'corpus' | 'b0'>, b: number): number {
  const rows = (x: number): number => Math.min(x * rc.settings.batchRows, rc.corpus.nRows);
  return (rows(b) - rows(rc.b0)) * rc.corpus.nPositions;
}

/** The progress messages' prefix in a run of several passes. */
export function passNote(rc: RunContext, pass: number): string {
  const P = rc.passes.length;
  return P > 1 ? `pass ${pass + 1}/${P}: ` : '';
}

/** What a pass forwards: the union of its specs' reads, per model (everything if one does not say). */
function readsOf(rc: RunContext, ps: AccumulatorSpec[]): BatchReads | undefined {
  return ps.every((s) => s.reads) ? unionReads(ps.map((s) => s.reads!), rc.handles.length) : undefined;
}

/** A checkpoint within the pass: the finished passes' results and this pass's states after batch `next − 1`. */
function checkpoint(rc: RunContext, st: RunState, next: number): void {
  const { nBatches, settings, corpus, manifest: m, b0, b1 } = rc;
  const P = rc.passes.length;
  const { pass } = st;
  const cur = rc.passes[pass]!;
  const nb = b1 - b0;
  rc.progress({ phase: 'checkpoint', batch: pass * nb + next - b0, batches: P * nb });
  writeCheckpoint(rc.runDir, {
    nextBatch: next,
    meta: { corpusHash: corpus.hash, batchRows: settings.batchRows, nBatches, ...(P > 1 ? { pass } : {}) },
    states: { ...st.packed, ...Object.fromEntries(cur.map((s, i) => [s.name, st.accs[i]!.state()])) },
  });
  m.progress = { batches_done: pass * nb + next - b0, batches_total: P * nb, tokens_done: tokensAt(rc, next) };
  m.updated = new Date().toISOString();
  writeManifest(rc.runDir, m);
}

/**
 * Streams pass `st.pass` from batch `st.start`: `st.accs` then hold its accumulators' end-of-
 * stream state. A cancel writes no checkpoint on the way out: the run resumes from its last
 * periodic one.
 */
export async function streamPass(rc: RunContext, st: RunState): Promise<void> {
  const { handles, corpus, settings, nBatches, signal, forwards, b1 } = rc;
  const cur = rc.passes[st.pass]!;
  const reads = readsOf(rc, cur);
  if (forwards) {
    // Before the pass allocates its accumulators: the last pair's forwards go first.
    const wanted = forwardKeys(reads, handles.length, corpus.nRows);
    const before = forwards.size;
    for (const key of [...forwards.keys()]) if (!wanted.has(key)) forwards.delete(key);
    if (forwards.size < before) await reclaim();
  }
  if (st.accs.length === 0 && rc.merge) {
    // A merge: the parts' end-of-stream states, finished as a resume finishes its last checkpoint.
    const states = rc.merge.states;
    st.accs = cur.map((s) => {
      const state = states[s.name];
      if (!state) throw new EngineError(`the parts hold no state for ${s.name}`);
      return s.restore(state, st.results);
    });
    st.start = nBatches;
    st.fresh = false;
  } else if (st.accs.length === 0) {
    st.accs = cur.map((s) => s.create(st.results));
    st.fresh = true;
  }
  const note = passNote(rc, st.pass);

  let lastCheckpoint = st.start;
  const sample = async (b: number, r: AccumulatorSpec['reads'], all?: BatchReads): Promise<ActivationBatch> => {
    throwIfCancelled(signal);
    rc.progress({ phase: 'stream', message: `${note}${all ? "the corpus' first batches, for ranges" : 'screening sample'}, batch ${b + 1} of ${nBatches}` });
    return buildBatch(handles, corpus, b, b * settings.batchRows, Math.min(settings.batchRows, corpus.nRows - b * settings.batchRows), signal, all ?? r);
  };
  if (screenOnly(cur)) {
    // Nothing to stream; the pass's end is checkpointed once its results are (finish.ts).
    if (st.fresh) await screenPass(cur, st.accs, nBatches, sample, handles);
    st.fresh = false;
    throwIfCancelled(signal);
    return;
  }
  // Checkpointed once screened, so that a resume does not screen again.
  if (st.fresh && (await screenPass(cur, st.accs, nBatches, sample, handles)) && !rc.boundaryOnly) checkpoint(rc, st, 0);
  // A token shard after the first: what the corpus' first batch fixes in a single run (histogram
  // ranges, the cross moments' shift) is fixed from it here too (parts.ts).
  if (st.fresh && st.start > 0) await primePass(st.accs, st.start, (b) => sample(b, undefined, reads));
  st.fresh = false;
  const prefetch = await startPrefetch(rc, reads, b1 - st.start);
  try {
    await streamBatches(rc, st, reads, prefetch, note, cur, (b) => (lastCheckpoint = b));
  } finally {
    await prefetch?.close();
  }
  // A cancel during the last batch: the manifest then says cancelled.
  throwIfCancelled(signal);
  // A checkpoint at the end: if finishing or writing fails (a full disk), resume skips the
  // stream. Not when the stream is one batch: there the accumulators' state (GBs at GPT-2-small
  // size: 450 s of a 2,600 s run went to these writes) costs more than the batch it saves. Not for
  // a part: its product is the state writePart writes.
  if (!rc.part && lastCheckpoint < b1 && !rc.boundaryOnly) checkpoint(rc, st, b1);
}

/** A pass whose accumulators only screen (AccumulatorSpec.screenOnly): it streams nothing. */
export function screenOnly(specs: readonly AccumulatorSpec[]): boolean {
  return specs.length > 0 && specs.every((s) => s.screen && s.screenOnly);
}

/** Share of the memory budget one more batch of forwards may take for the overlap (prefetch.ts). */
const PREFETCH_SHARE = 0.05;

/**
 * The forward worker of a pass (prefetch.ts), or none: with one batch there is nothing to
 * overlap, with one thread asked for there is no core for it, and a batch ahead must fit in a
 * small share of the memory budget (the planner does not count it: at GPT-2-small size a batch of
 * forwards is GBs, and there batches are few).
 */
async function startPrefetch(rc: RunContext, reads: BatchReads | undefined, batches: number): Promise<ForwardPrefetch | undefined> {
  const s = rc.settings;
  // One thread asked for: the worker would be a second one.
  if (s.overlap === false || batches < 2 || rc.forwards || threadsOf(s) < 2) return undefined;
  const models = keptModels(reads, rc.handles.length);
  if (models.length === 0) return undefined;
  if (batchBytes(rc, reads) > PREFETCH_SHARE * (s.memoryGb ?? 8) * 1e9) return undefined;
  const p = new ForwardPrefetch(threadsOf(s));
  try {
    for (const i of models) await p.load(i, rc.handles[i]!, reads ? reads[i]! : KEPT_KINDS);
  } catch (e) {
    await p.close();
    throw e;
  }
  return p;
}

/** Bytes of one batch of a pass' forwards: the arrays its models return. */
function batchBytes(rc: RunContext, reads: BatchReads | undefined): number {
  const T = rc.settings.batchRows * rc.corpus.nPositions;
  return keptModels(reads, rc.handles.length).reduce((a, i) => a + 4 * T * rc.handles[i]!.nLayers * rc.handles[i]!.dMlp * (reads ? reads[i]!.length : 4), 0);
}

async function streamBatches(
  rc: RunContext,
  st: RunState,
  reads: BatchReads | undefined,
  prefetch: ForwardPrefetch | undefined,
  note: string,
  cur: AccumulatorSpec[],
  checkpointed: (b: number) => void,
): Promise<void> {
  const { handles, corpus, settings, signal, forwards, b1, b0 } = rc;
  const nb = b1 - b0;
  const P = rc.passes.length;
  const rowsAt = (b: number): number => Math.min(settings.batchRows, corpus.nRows - b * settings.batchRows);
  // A batch of forwards past the prefetch share is GBs of onnxruntime outputs, which V8 sees as
  // small objects and collects late: measured in a 4-layer GPT-2-width statistics pass, the RSS
  // between batches crept from 5.8 to 7.3 GB and the peaks from 7.95 to 9.08 GB (8 GB planned).
  // Collected after each such batch, before the next batch's forwards allocate (a few collections
  // per batch of ~20 s; the tiny family never gets here).
  const collect = !forwards && batchBytes(rc, reads) > PREFETCH_SHARE * (settings.memoryGb ?? 8) * 1e9;
  // Checkpoints fall on multiples of checkpointEvery, and (by default) only once checkpointSeconds
  // of stream have passed since the last one or since this session's stream began.
  const spacingMs = 1000 * (settings.checkpointSeconds ?? 0);
  let lastAt = Date.now();
  for (let b = st.start; b < b1; b++) {
    // A cancel writes no checkpoint on the way out: the run resumes from its last periodic one.
    throwIfCancelled(signal);
    const rowStart = b * settings.batchRows;
    const batch = await buildBatch(handles, corpus, b, rowStart, rowsAt(b), signal, reads, forwards, prefetch);
    // The next batch's forwards run on the worker while this thread accumulates this one.
    if (prefetch && b + 1 < b1) prefetchBatch(prefetch, handles, corpus, b + 1, (b + 1) * settings.batchRows, rowsAt(b + 1), reads);
    await addBatch(st.accs, batch, handles);
    if (collect) await dropped(batch);
    const done = st.pass * rc.tokensTotal + tokensAt(rc, b + 1);
    const secs = (Date.now() - st.tStream) / 1000;
    const rate = (done - st.sessionStart) / Math.max(secs, 1e-3);
    rc.manifest.timings.stream_s = st.streamBase + secs - st.finishSecs;
    if ((b + 1) % settings.checkpointEvery === 0 && b + 1 < b1 && Date.now() - lastAt >= spacingMs) {
      checkpoint(rc, st, b + 1);
      checkpointed(b + 1);
      lastAt = Date.now();
    }
    rc.progress({
      phase: 'stream',
      ...(note ? { message: `${note}${cur.map((s) => s.name).join(', ')}` } : {}),
      batch: st.pass * nb + b + 1 - b0,
      batches: P * nb,
      tokensDone: done,
      tokensTotal: P * rc.tokensTotal,
      tokensPerSec: rate,
      etaSec: (P * rc.tokensTotal - done) / Math.max(rate, 1e-9),
    });
  }
}

/** Lets go of a batch's arrays and collects them (the caller holds no other reference). */
async function dropped(batch: ActivationBatch): Promise<void> {
  batch.models.length = 0;
  await reclaim();
}

/** A part's product: its accumulators' state at the end of the stream, for the merge (parts.ts). */
export function writePart(rc: RunContext, st: RunState): void {
  const P = rc.passes.length;
  const cur = rc.passes[st.pass]!;
  rc.progress({ phase: 'checkpoint', message: `writing part ${rc.manifest.part ? partName(rc.manifest.part) : ''}, pass ${st.pass + 1} of ${P}` });
  writePartState(
    rc.runDir,
    st.pass,
    { corpusHash: rc.corpus.hash, batchRows: rc.settings.batchRows, nBatches: rc.nBatches },
    Object.fromEntries(cur.map((s, i) => [s.name, st.accs[i]!.state()])),
    rc.shard,
  );
  st.accs = [];
}

// The pass loop's accumulator calls live in their own frames: a loop in runAnalysis left the last
// accumulator it called in a register of that suspended async frame, so a finished pass's arrays
// (2.5 GB per GPT-2-small-size block) stayed reachable until the next pass had allocated its own
// (a heap snapshot showed the finished CrossMoments held by "(Stack roots)" alone). Likewise the
// accumulators live in RunState, never in a local of runAnalysis or of a phase that outlives them.
async function addBatch(accs: readonly Accumulator<unknown>[], batch: ActivationBatch, handles: readonly Model[]): Promise<void> {
  try {
    for (const a of accs) await a.add(batch);
  } catch (e) {
    throw nonFiniteError(batch, handles) ?? e;
  }
}

/**
 * Feeds batches 0, 1, … (before `start`) to the accumulators' prime() while any needs it: what a
 * single run fixes from the corpus' first batch with kept tokens (parts.ts, token shards).
 */
async function primePass(accs: readonly Accumulator<unknown>[], start: number, build: (b: number) => Promise<ActivationBatch>): Promise<void> {
  const open = (): Accumulator<unknown>[] => accs.filter((a) => a.needsPrime?.() === true);
  for (let b = 0; b < start && open().length > 0; b++) {
    const batch = await build(b);
    for (const a of open()) a.prime!(batch);
  }
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
