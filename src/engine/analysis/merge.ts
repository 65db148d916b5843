/** `merge`: the parts of a split run (parts.ts) finished into its run folder by the pipeline. */
import type { CancellationSignal } from '../errors';
import type { Progress, RunResult } from './types';
import { partStates } from './parts';
import { runAnalysis } from './pipeline';
import { defaultPlan } from './plan';

/**
 * Finishes a split run: checks the parts, then runs the pipeline on their states (no forward
 * passes) and writes the run folder at `out`, the same files as a single run.
 */
export async function mergeParts(
  dirs: readonly string[],
  out: string,
  onProgress: (p: Progress) => void = () => {},
  signal?: CancellationSignal,
  threads = 0,
): Promise<RunResult> {
  const { parts, states } = partStates(dirs);
  const inherit = parts[0]!.manifest;
  const s = inherit.settings;
  return runAnalysis(
    {
      models: inherit.models.map((m) => m.dir),
      corpus: inherit.corpus.inputs,
      tokens: s.tokens,
      out,
      threads,
      plan: defaultPlan(inherit.part!.plan as Parameters<typeof defaultPlan>[0]),
      merge: { inherit: { ...inherit, settings: { ...s, threads } }, states },
    },
    onProgress,
    signal,
  );
}
