/**
 * The engine's onnxruntime thread count. One place decides what 0 ("engine default") means, so
 * that the forward pass, the weight statistics and the analysis's GEMMs agree and the run
 * manifest can record the number actually used (`settings.threadsUsed`).
 *
 * The default is every core this process may run on (`os.availableParallelism()`, which honours
 * the CPU affinity mask), with no cap. An earlier cap at 8 ("GEMMs this size stop scaling") was
 * never measured above 2 cores (BENCHMARKS.md); onnxruntime's own default is one thread per
 * physical core, uncapped; at GPT-2-small size the analysis's time goes to large GEMMs (the
 * forward's [8·1024 × 768]·[768 × 3072] and the cross moments' [tokens × 36,864]ᵀ blocks), which
 * MLAS splits over output tiles; and an analysis started from the editor runs in its own worker
 * thread, so its cores no longer come out of the extension host's event loop. Anyone who wants a
 * core left free says so with `--threads` / `universalNeurons.threads`.
 *
 * No onnxruntime import here: this module is loaded where the native addon must not be.
 */
import { availableParallelism } from 'node:os';

/** Threads for "0 / unset": every core this process may use. */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/** The thread count a run uses: the one asked for (a positive integer), else the default. */
export function resolveThreads(asked?: number): number {
  return asked !== undefined && Number.isFinite(asked) && asked >= 1 ? Math.floor(asked) : defaultThreads();
}

/** A run's thread count from its settings: what the session resolved, else the asked count resolved now. */
export function threadsOf(s: { threads: number; threadsUsed?: number }): number {
  return s.threadsUsed ?? resolveThreads(s.threads);
}
