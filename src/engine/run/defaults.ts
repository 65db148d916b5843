/**
 * The one source of the analysis defaults and of what "universal" means. The CLI's usage text,
 * the editor's settings (package.json `contributes.configuration`, checked against these by
 * test/unit/run-folder.test.ts) and every reader of a run take them from here.
 */
import type { Mode } from './manifest';

/** Universal ⇔ excess correlation above this (docs/method-notes.md; the paper's 0.5, which it notes is not principled). */
export const DEFAULT_THRESHOLD = 0.5;

/**
 * Thresholds the engine accepts: excess correlation is a difference of two correlations' means,
 * so it lies in (−2, 2); a threshold at or below −1 or at or above 2 would make the universal set
 * meaningless. Both ends are exclusive.
 */
export const THRESHOLD_RANGE = { exclusiveMinimum: -1, exclusiveMaximum: 2 } as const;

export const isUsableThreshold = (t: number): boolean =>
  Number.isFinite(t) && t > THRESHOLD_RANGE.exclusiveMinimum && t < THRESHOLD_RANGE.exclusiveMaximum;

/** Universal ⇔ excess > threshold (docs/method-notes.md); a missing (NaN) excess is not universal. */
export const isUniversal = (excess: number, threshold: number): boolean => Number.isFinite(excess) && excess > threshold;

/** The thresholds the summaries count at, besides the run's own. */
export const SUMMARY_THRESHOLDS = [0.3, 0.4, 0.5] as const;

/** Settings an analysis takes when not given (analysis/pipeline/open.ts settingsFrom). */
export const ANALYSIS_DEFAULTS = {
  threshold: DEFAULT_THRESHOLD,
  seed: 0,
  batchRows: 8,
  checkpointEvery: 25,
  // …and at least this many seconds of stream apart. A checkpoint of the shipped family is ~310 MB
  // (the pairs' float64 sums) and took ~0.9 s to write: every 25 batches (~10 s) that was 9% of the
  // stream. A minute apart it is ~1.5%, and a crash loses at most about a minute.
  checkpointSeconds: 60,
  mode: 'exact' as Mode,
  threads: 0,
  topK: 20,
  memoryGb: 8,
};
