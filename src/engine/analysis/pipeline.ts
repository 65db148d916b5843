/**
 * The streaming analysis (docs/analysis-contract.md): open the models, read the corpus, run every
 * model's activations-only forward over each batch of rows, hand one ActivationBatch to every
 * accumulator (always in the same order), checkpoint every K batches, then finish and write the
 * results through the store.
 *
 * runAnalysis is the orchestrator of four phases, each a file of pipeline/ (docs/architecture.md):
 *   open    pipeline/open.ts    settings, preflight checks, models, corpus (nothing written yet)
 *   plan    pipeline/plan.ts    memory plan, run folder, manifest, accumulators and passes,
 *                               the state a checkpoint holds
 *   pass    pipeline/pass.ts    one pass over the corpus: screens, batches (pipeline/batch.ts),
 *                               periodic and end-of-stream checkpoints; a part writes its state
 *   finish  pipeline/finish.ts  the pass's results, the plan's finalize after the last pass, the
 *                               manifest's end (complete, cancelled or failed)
 * They hand on OpenedRun, RunContext and RunState (types.ts); what the run holds (lock, models,
 * rotation cache, manifest) is in a RunHold, given back here whatever stops the run.
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
 * as packed results (`pack`/`unpack`), and later ones may read them (`create(done)`). A split run
 * (parts.ts) computes one pass per part and merges their states (merge.ts).
 */
// First: onnxruntime's telemetry off before the GEMM or forward sessions exist (ortTelemetry.ts).
import '../ortTelemetry';
import type { CancellationSignal } from '../errors';
import type { AccumulatorSpec, AnalysisOptions, AnalysisPlan, PlanContext, Progress, RunHold, RunResult } from './types';
import { ANALYSIS_DEFAULTS as DEFAULTS } from '../run/defaults';
import type { Manifest, Mode, ModelInfo, Settings } from '../run/manifest';
import { openRun } from './pipeline/open';
import { planRun } from './pipeline/plan';
import { streamPass, writePart } from './pipeline/pass';
import { asRunError, completeRun, finishPass, markEnded } from './pipeline/finish';

// The manifest's types are the run folder's (src/engine/run/manifest.ts); DEFAULTS are src/engine/run/defaults.ts.
export type { Manifest, Mode, ModelInfo, Settings };
// The plan's and the pass's interfaces are shared with plan.ts and familyResults.ts: types.ts.
export type { AccumulatorSpec, AnalysisOptions, AnalysisPlan, PlanContext, Progress, RunResult };
export { DEFAULTS };
// The phases' public pieces, imported from here by the CLI, tests and benches.
export { FAST_MIN_TOKENS, preflight, vocabHash } from './pipeline/open';
export { buildBatch, interleave, nonFiniteError, unionReads, type BatchReads } from './pipeline/batch';
export { asRunError } from './pipeline/finish';

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
  const progress = (p: Progress): void => {
    if (p.message?.startsWith('warning: ')) {
      // a warning is not a phase
    } else if (p.phase !== 'checkpoint' && p.phase !== 'stream') phaseNow = p.message ?? p.phase;
    else if (p.phase === 'stream') phaseNow = 'streaming the corpus';
    onProgress(p);
  };

  const held: RunHold = { handles: [] };
  try {
    try {
      const run = await openRun(opts, progress, signal, held);
      const { rc, state } = await planRun(run, opts, plan, t0, progress, signal, held);
      for (; state.pass < rc.passes.length; state.pass++, state.start = rc.b0) {
        // A part streams its own pass only (a token shard alone: every pass), once, and keeps its
        // accumulators' state instead of finishing them.
        if (rc.part && ((rc.part.block !== undefined && state.pass !== rc.part.block) || rc.partDone.has(state.pass))) {
          state.accs = [];
          continue;
        }
        await streamPass(rc, state);
        if (rc.part) writePart(rc, state);
        else await finishPass(rc, state);
      }
      return completeRun(rc, state, t0);
    } catch (e) {
      // Whatever stops a run that has a manifest (a cancel, a full disk, a bug) is recorded
      // there, so that no reader takes a dead run for a running one. A cancel writes no
      // checkpoint: the run resumes from its last periodic one.
      const { manifest, runDir } = held;
      const err = manifest ? asRunError(e, runDir!) : e;
      if (manifest) markEnded(manifest, runDir!, err, phaseNow, t0);
      throw err;
    } finally {
      for (const h of held.handles) await h.close();
    }
  } finally {
    held.rotations?.close();
    held.release?.();
  }
}
