/**
 * The memory budget of an analysis run: whether the cross-model correlations fit at once, and if
 * not, how many reference columns one block may hold (crossmoments.ts, "Blocks"; pipeline.ts,
 * passes).
 *
 * The dominant terms, in bytes (T = tokens per batch = batch rows × context length, N = L·d_mlp):
 * - per pair and reference column: 12·N_m (float64 S_xy and its fp32 partial) + 24·d_m (at the
 *   end, a layer's Cov·Rᵀ and ρ in float64, and ORT's output);
 * - m's Gram matrices: 12·L·d² (float64 totals and the fp32 upper-triangle partials);
 * - a forwarded model with every array kept: 24·T·N (pre, post, their kept copies, and the
 *   forward's per-layer outputs); with keptPost alone: 12·T·N.
 * The base is what the process holds when the run is planned (open models, the corpus).
 * Unblocked, everything is held during the one pass. Blocked, a pass holds one block of one pair
 * (and that pair's Gram, in the block that accumulates it), with the reference and m forwarded;
 * the statistics get a pass of their own with every model forwarded.
 */
import { EngineError } from '../errors';

export interface MemoryModel {
  nLayers: number;
  dMlp: number;
  nNeurons: number;
  nPositions: number;
}

export interface MemoryPlan {
  /** Reference columns per block; 0: unblocked. */
  refBlock: number;
  batchRows: number;
  /** Estimated peak of the run, bytes. */
  estimateBytes: number;
}

export const GiB = 2 ** 30;

/** JS heap, ORT arenas and sessions, small accumulators: not modelled, kept free. */
const SLACK = 0.75 * GiB;

const gramBytes = (m: MemoryModel): number => 12 * m.nLayers * m.dMlp * m.dMlp;
const perColumn = (m: MemoryModel): number => 12 * m.nNeurons + 24 * m.dMlp;

function gb(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GB`;
}

/**
 * Chooses how to run within `budgetBytes`. `refBlock` forces a block size (0: unblocked; tests
 * and measurements). Batch rows are lowered (halving) only when `batchRowsFixed` is false and the
 * default does not fit. Throws an EngineError naming the terms when no choice fits.
 */
export function planMemory(args: {
  models: readonly MemoryModel[];
  batchRows: number;
  batchRowsFixed: boolean;
  budgetBytes: number;
  baseBytes: number;
  refBlock?: number;
}): MemoryPlan {
  const { models, budgetBytes, baseBytes } = args;
  const ref = models[0]!;
  const others = models.slice(1);
  const Na = ref.nNeurons;
  const T = (rows: number): number => rows * ref.nPositions;
  const allActs = (rows: number): number => models.reduce((s, m) => s + 24 * T(rows) * m.nNeurons, 0);
  const unblocked = (rows: number): number =>
    baseBytes + SLACK + allActs(rows) + others.reduce((s, m) => s + gramBytes(m) + Na * perColumn(m), 0);
  const pairFixed = (rows: number): number =>
    baseBytes + SLACK + Math.max(...others.map((m) => 12 * T(rows) * (Na + m.nNeurons) + gramBytes(m)));
  const perCol = Math.max(...others.map(perColumn));
  const statsPass = (rows: number): number => baseBytes + SLACK + allActs(rows);

  if (args.refBlock !== undefined) {
    if (!Number.isSafeInteger(args.refBlock) || args.refBlock < 0) throw new EngineError(`reference block ${args.refBlock} must be a non-negative integer (0: unblocked)`);
    const B = args.refBlock >= Na ? 0 : args.refBlock;
    const est = B === 0 ? unblocked(args.batchRows) : Math.max(statsPass(args.batchRows), pairFixed(args.batchRows) + B * perCol);
    return { refBlock: B, batchRows: args.batchRows, estimateBytes: est };
  }

  const tries = args.batchRowsFixed ? [args.batchRows] : [];
  if (!args.batchRowsFixed) for (let r = args.batchRows; r >= 1; r = Math.floor(r / 2)) tries.push(r);
  for (const rows of tries) {
    if (unblocked(rows) <= budgetBytes) return { refBlock: 0, batchRows: rows, estimateBytes: unblocked(rows) };
    const maxB = Math.floor((budgetBytes - pairFixed(rows)) / perCol);
    if (statsPass(rows) > budgetBytes || maxB < 1) continue;
    // Equal blocks: as few passes as fit, none of them nearly empty.
    const k = Math.ceil(Na / Math.min(maxB, Na));
    const B = Math.ceil(Na / k);
    return { refBlock: B >= Na ? 0 : B, batchRows: rows, estimateBytes: Math.max(statsPass(rows), pairFixed(rows) + B * perCol) };
  }
  const rows = tries[tries.length - 1]!;
  throw new EngineError(
    `a memory budget of ${gb(budgetBytes)} cannot hold this analysis: the process already holds ${gb(baseBytes)} (open models), ` +
      `${args.batchRowsFixed ? '' : 'even '}a batch of ${rows} row(s) of every model takes ${gb(allActs(rows))}, ` +
      `one pair's forward and Gram matrices ${gb(pairFixed(rows) - baseBytes - SLACK)}, and each reference column ${(perCol / 2 ** 20).toFixed(2)} MB ` +
      `(with ${gb(SLACK)} kept free); raise --memory-gb${args.batchRowsFixed ? ' or lower --batch-rows' : ''}`,
  );
}
