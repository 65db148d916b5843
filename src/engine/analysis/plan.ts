/**
 * The default analysis plan: which accumulators the pipeline feeds and how their results become
 * the run's files. Wired to the universality (H4) and statistics (H5) modules.
 */
import { EngineError } from '../errors';
import type { AnalysisPlan } from './pipeline';

export function defaultPlan(): AnalysisPlan {
  throw new EngineError('the universality accumulators are not built into this version yet');
}
