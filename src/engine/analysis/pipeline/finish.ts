/**
 * The finish phase of a run (runAnalysis, pipeline.ts): a streamed pass's accumulators finished
 * into results (packed into the checkpoint when a later pass reads them), after the last pass the
 * plan's finalize writing the run folder's files, and the manifest's last word: complete, or
 * cancelled or failed with the phase and reason.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CancelledError, EngineError, ioReason, throwIfCancelled, type CancellationSignal } from '../../errors';
import { writeCheckpoint } from '../../store';
import { reclaim } from '../blocking';
import type { Accumulator, AccumulatorSpec, AccumulatorState, RunContext, RunResult, RunState } from '../types';
import { writeManifest, type Manifest } from '../../run/manifest';
import { passNote, screenOnly } from './pass';

/**
 * Finishes pass `st.pass` (its accumulators go once finished, before the next pass allocates
 * its own) and, after the last pass, writes the results through the plan's finalize.
 */
export async function finishPass(rc: RunContext, st: RunState): Promise<void> {
  const { nBatches, corpus, settings, manifest: m, signal } = rc;
  const P = rc.passes.length;
  const { pass } = st;
  const tFinish = Date.now();
  rc.progress({ phase: 'finish', message: `${passNote(rc, pass)}computing correlations and statistics` });
  // Cancel points between the finishing steps: the end-of-stream checkpoint (pass.ts) means a
  // resume redoes only this phase.
  await finishAccumulators(rc.passes[pass]!, st.accs, st.results, pass < P - 1 ? st.packed : undefined, signal);
  throwIfCancelled(signal);
  // The finished accumulators' memory goes before the next pass allocates its own.
  st.accs = [];
  if (P > 1) await reclaim();
  if ((rc.boundaryOnly || screenOnly(rc.passes[pass]!)) && pass < P - 1) {
    // The finished passes' packed results (per-neuron vectors or candidate lists: small); a
    // resume starts the next pass afresh.
    rc.progress({ phase: 'checkpoint', batch: (pass + 1) * nBatches, batches: P * nBatches });
    writeCheckpoint(rc.runDir, {
      nextBatch: 0,
      meta: { corpusHash: corpus.hash, batchRows: settings.batchRows, nBatches, pass: pass + 1 },
      states: { ...st.packed },
    });
    m.progress = { batches_done: (pass + 1) * nBatches, batches_total: P * nBatches, tokens_done: 0 };
    m.updated = new Date().toISOString();
    writeManifest(rc.runDir, m);
  }
  st.tWrite = Date.now();
  st.finishSecs += (st.tWrite - tFinish) / 1000;
  if (pass === P - 1) {
    // The finalize reads the reference alone (its tokenizer; the intervention opens its
    // own scorer): the other models' sessions go first, 0.55 GB each at GPT-2-small size,
    // where the write phase peaked at 9.2 GB with all five open.
    for (const h of rc.handles.slice(1)) await h.close();
    rc.progress({ phase: 'write', message: `writing results to ${rc.runDir}` });
    m.results = await rc.plan.finalize(rc.planCtx, st.results);
  }
}

async function finishAccumulators(
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

/** Marks the run complete (every pass done, or this part's state written) and removes its checkpoint. */
export function completeRun(rc: RunContext, st: RunState, t0: number): RunResult {
  const { manifest: m, runDir } = rc;
  const P = rc.passes.length;
  const tEnd = Date.now();
  m.status = 'complete';
  delete m.error;
  delete m.reason;
  m.updated = new Date().toISOString();
  // A token shard counts its own batches.
  const nb = rc.b1 - rc.b0;
  m.progress = { batches_done: P * nb, batches_total: P * nb, tokens_done: rc.tokensTotal };
  m.timings.finish_s = st.finishSecs;
  m.timings.write_s = (tEnd - st.tWrite) / 1000;
  m.timings.total_s += (tEnd - t0) / 1000;
  writeManifest(runDir, m);
  // The checkpoint has served its purpose; the results are final.
  fs.rmSync(join(runDir, 'checkpoint'), { recursive: true, force: true });
  rc.progress({ phase: 'done', message: runDir });
  return { runDir, id: rc.id, manifest: m, results: st.results };
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


/** Marks a run that stopped: `cancelled` or `failed`, with the reason, written best-effort. */
export function markEnded(m: Manifest, runDir: string, e: unknown, phase: string, t0: number): void {
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
    writeManifest(runDir, m);
  } catch {
    // the original error matters more (a full disk may refuse this write too)
  }
}

