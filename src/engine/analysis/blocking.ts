/**
 * The memory budget of an analysis run: whether the cross-model correlations fit at once, and if
 * not, how many reference columns one block may hold (crossmoments.ts, "Blocks"; pipeline.ts,
 * passes).
 *
 * The dominant terms, in bytes (T = tokens per batch = batch rows × context length, N = L·d_mlp):
 * - per pair and reference column: 12·N_m (float64 S_xy and its fp32 partial; 4·N_m when the
 *   corpus fits in one partial, which is then the total) + 24·d_m (at the
 *   end, a layer's Cov·Rᵀ and ρ in float64, and ORT's output; the screen finish holds less, and
 *   the low-rank screen's X̃ᵀ, 4·T per column with T < d_m, fits in it: cross/lowrank.ts);
 * - m's Gram matrices: 12·L·d² (float64 totals and the fp32 upper-triangle partials);
 * - a forwarded model with every array kept: 16·T·N (pre, post, their kept copies), plus, while
 *   one model runs, 8·T·N of per-layer arrays that its graph concatenates at the end and two
 *   score-sized arrays of its attention, 8·rows·heads·S² (measured: 0.81 GB over the outputs at
 *   4 rows of a 4-layer GPT-2-width model; the graphs of fewer outputs hold less, runtime.ts
 *   keptSet); with keptPost alone: 12·T·N (outputs, post, keptPost).
 * - the statistics accumulators (activation statistics, examples, families): `statsBytes`, fixed
 *   whatever the batch; at GPT-2-small size ≈ 2 GB, most of it the families' group sums.
 * - fast mode, blocked: the blocks only screen, and passes of their own hold the pairs'
 *   candidates (`fastCandidates` per pair), as many pairs each as fit, with the reference and
 *   those pairs' models forwarded.
 * The base is what the process holds when the run is planned (open models, the corpus).
 * Unblocked, everything is held during the one pass. Blocked, a pass holds one block of one pair,
 * with the reference and m forwarded: a pair's first block also holds m's Gram, so it is narrower
 * than the others. The statistics get a pass of their own, where the reference keeps every array
 * and the other models only their kept pre-activations (4·T·N: the plan's `reads`).
 * Blocked, a block's fp32 partial and Gram are reused by the next block (cross/pool.ts): the pool
 * holds no more than one block's arrays, taken back at the next block's start and dropped before
 * the statistics pass, so the terms above are unchanged.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { EngineError } from '../errors';

export interface MemoryModel {
  nLayers: number;
  dMlp: number;
  nNeurons: number;
  nPositions: number;
  /** Attention heads: a forward's scores are rows × heads × positions² (counted when given). */
  nHeads?: number;
}

export interface MemoryPlan {
  /** Reference columns of each pair's first block, which also holds m's Gram; 0: unblocked. */
  gramBlock: number;
  /** Reference columns of the pair's other blocks (no Gram, so they can be wider); 0: unblocked. */
  refBlock: number;
  /** Fast mode, blocked: pairs whose candidates one pass counts (`fastCandidates`); else 0. */
  candidatePairs: number;
  batchRows: number;
  /** Estimated peak of the run, bytes. */
  estimateBytes: number;
}

export const GiB = 2 ** 30;
/** The budget's unit, as the issue and `--memory-gb` say it: 10⁹ bytes. */
export const GB = 1e9;

/** JS heap, ORT arenas and sessions, small accumulators: not modelled, kept free. */
const SLACK = 0.75 * GiB;

const gramBytes = (m: MemoryModel): number => 12 * m.nLayers * m.dMlp * m.dMlp;
/**
 * `fp32Only`: the pair never flushes its fp32 partial, so no float64 total exists (cross/dense.ts,
 * DenseMoments.sxy): 4 bytes per element are held, but 8 are counted. Measured at GPT-2-small size
 * (1,024 tokens, 8 GB): counting 4, the run peaked at 9.18 GB. What the model misses is ~1.2 GB:
 * the finish's temporaries beyond `24·d` per column (+0.88 GB over a 6,916-column first block's
 * arrays, measured alone), the forwards kept between passes, and native memory that grew by
 * 0.7 GB over the passes. With 12 bytes counted, the float64 totals that only appear at the
 * finish had hidden it.
 */
const perColumn = (m: MemoryModel, fp32Only = false): number => (fp32Only ? 8 : 12) * m.nNeurons + 24 * m.dMlp;

function gb(bytes: number): string {
  return `${(bytes / GB).toFixed(2)} GB`;
}

/** Reference column ranges of one pair: [0, first), then blocks of at most `rest`, equal up to rounding. */
export function blockBounds(N: number, first: number, rest: number): [number, number][] {
  const out: [number, number][] = [[0, Math.min(first, N)]];
  const left = N - out[0]![1];
  const k = Math.ceil(left / rest);
  for (let q = 0; q < k; q++) out.push([out[0]![1] + Math.floor((q * left) / k), out[0]![1] + Math.floor(((q + 1) * left) / k)]);
  return out;
}

/**
 * Chooses how to run within `budgetBytes`. `blocks` forces the blocks ([first, rest]; tests and
 * measurements). Batch rows are lowered (halving) only when `batchRowsFixed` is false and the
 * default does not fit. Throws an EngineError naming the terms when no choice fits.
 */
export function planMemory(args: {
  models: readonly MemoryModel[];
  batchRows: number;
  batchRowsFixed: boolean;
  /** Rows in the corpus: a batch never needs more. */
  corpusRows?: number;
  budgetBytes: number;
  baseBytes: number;
  /** What the statistics accumulators hold (AnalysisPlan.statsBytes). */
  statsBytes?: number;
  /**
   * Fast mode, blocked: bytes of one pair's candidate state (cross/fast.ts fastStateBytes). A
   * candidates' pass holds as many pairs as fit, with the reference and their models forwarded
   * (plan.ts fastBlockSpecs).
   */
  fastCandidates?: number;
  /** The corpus fits in one fp32 partial (kept tokens ≤ CHUNK_TOKENS): 4 bytes per S_xy element, not 12. */
  fp32Only?: boolean;
  blocks?: readonly [number, number];
}): MemoryPlan {
  const { models, budgetBytes, baseBytes } = args;
  const ref = models[0]!;
  const others = models.slice(1);
  const Na = ref.nNeurons;
  const T = (rows: number): number => rows * ref.nPositions;
  // Kept while the batch lives: pre, post and their kept copies of every model; while a model
  // runs, its per-layer outputs too.
  const running = (rows: number): number => Math.max(...models.map((m) => 8 * T(rows) * m.nNeurons + 8 * rows * (m.nHeads ?? 0) * m.nPositions ** 2));
  const allActs = (rows: number): number => models.reduce((s, m) => s + 16 * T(rows) * m.nNeurons, 0) + running(rows);
  const statsBytes = args.statsBytes ?? 0;
  const unblocked = (rows: number): number =>
    baseBytes + SLACK + statsBytes + allActs(rows) + staging(rows) + others.reduce((s, m) => s + gramBytes(m) + Na * perColumn(m, args.fp32Only), 0);
  // The statistics pass also stages each batch into the kernels' memories (kernels/index.ts
  // scratch): one [T × Na] float32 copy each for the statistics, the examples and the paper
  // histogram, two for families.
  const staging = (rows: number): number => 20 * T(rows) * Na;
  const statsActs = (rows: number): number =>
    16 * T(rows) * Na + others.reduce((s, m) => s + 4 * T(rows) * m.nNeurons, 0) + running(rows) + staging(rows);
  const pairActs = (rows: number): number => Math.max(...others.map((m) => 12 * T(rows) * (Na + m.nNeurons)));
  const gram = Math.max(...others.map(gramBytes));
  const perCol = Math.max(...others.map((m) => perColumn(m, args.fp32Only)));
  const statsPass = (rows: number): number => baseBytes + SLACK + statsBytes + statsActs(rows);
  const restFixed = (rows: number): number => baseBytes + SLACK + pairActs(rows);
  // Fast mode's candidates' pass (blocked), `k` pairs: their states, the reference's and their
  // models' keptPost forwards (the widest models counted).
  const widest = Math.max(...others.map((m) => m.nNeurons));
  const candPass = (rows: number, k: number): number =>
    args.fastCandidates === undefined ? 0 : baseBytes + SLACK + k * args.fastCandidates + 12 * T(rows) * (Na + k * widest);
  /** The most pairs one candidates' pass holds within the budget (0: not even one). */
  const candPairs = (rows: number): number => {
    if (args.fastCandidates === undefined) return 0;
    let k = others.length;
    while (k > 0 && candPass(rows, k) > budgetBytes) k--;
    return k;
  };
  const estimate = (rows: number, first: number, rest: number): number =>
    Math.max(
      statsPass(rows),
      candPass(rows, Math.max(1, candPairs(rows))),
      restFixed(rows) + gram + first * perCol,
      restFixed(rows) + rest * perCol,
    );

  if (args.blocks !== undefined) {
    const [first, rest] = args.blocks;
    for (const v of [first, rest]) if (!Number.isSafeInteger(v) || v < 0) throw new EngineError(`reference block ${v} must be a non-negative integer (0: unblocked)`);
    if ((first === 0) !== (rest === 0)) throw new EngineError('reference blocks: both sizes are 0 (unblocked) or neither');
    const est = first === 0 ? unblocked(args.batchRows) : estimate(args.batchRows, first, rest);
    return { gramBlock: first, refBlock: rest, batchRows: args.batchRows, estimateBytes: est, candidatePairs: first === 0 ? 0 : Math.max(1, candPairs(args.batchRows)) };
  }

  const start = Math.max(1, Math.min(args.batchRows, args.corpusRows ?? Infinity));
  const tries = args.batchRowsFixed ? [args.batchRows] : [];
  if (!args.batchRowsFixed) for (let r = start; r >= 1; r = Math.floor(r / 2)) tries.push(r);
  // Unblocked at the most rows that fit; else the blocks that need the fewest passes (each pass
  // re-runs two forwards over the corpus, while fewer rows per batch cost little), then more rows.
  let best: MemoryPlan | undefined;
  let bestBlocks = Infinity;
  for (const rows of tries) {
    if (unblocked(rows) <= budgetBytes) return { gramBlock: 0, refBlock: 0, batchRows: rows, estimateBytes: unblocked(rows), candidatePairs: 0 };
  }
  for (const rows of tries) {
    const maxFirst = Math.min(Na, Math.floor((budgetBytes - (restFixed(rows) + gram)) / perCol));
    const maxRest = Math.min(Na, Math.floor((budgetBytes - restFixed(rows)) / perCol));
    if (statsPass(rows) > budgetBytes || (args.fastCandidates !== undefined && candPairs(rows) < 1) || maxFirst < 1 || maxRest < 1) continue;
    // The rest in equal blocks: as few passes as fit, none of them nearly empty.
    const left = Na - maxFirst;
    const rest = left === 0 ? maxRest : Math.ceil(left / Math.ceil(left / maxRest));
    const blocks = blockBounds(Na, maxFirst, rest).length;
    if (blocks < bestBlocks) {
      bestBlocks = blocks;
      best = { gramBlock: maxFirst, refBlock: rest, batchRows: rows, estimateBytes: estimate(rows, maxFirst, rest), candidatePairs: candPairs(rows) };
    }
  }
  if (best) return best;
  const rows = tries[tries.length - 1]!;
  throw new EngineError(
    `a memory budget of ${gb(budgetBytes)} cannot hold this analysis: the process already holds ${gb(baseBytes)} (open models), ` +
      `${args.batchRowsFixed ? '' : 'even '}a batch of ${rows} row(s) of every model takes ${gb(statsActs(rows))} and the statistics ${gb(statsBytes)}, ` +
      `one pair's forward ${gb(pairActs(rows))} and m's Gram matrices ${gb(gram)}, and each reference column ${(perCol / 2 ** 20).toFixed(2)} MB ` +
      `(with ${gb(SLACK)} kept free); raise --memory-gb${args.batchRowsFixed ? ' or lower --batch-rows' : ''}`,
  );
}

let gcFn: (() => void) | null | undefined;

/**
 * A full garbage collection. The arrays a blocked run drops (a finished pass's sums, a layer's
 * products at the end) are hundreds of MB each but tiny objects to V8, which collects them late:
 * measured at GPT-2-small size, a finish rose 1.5–2 GiB above its live arrays without this. The
 * collector is reached through a fresh context, as `--expose-gc` cannot be assumed.
 *
 * Twice, with a task between: onnxruntime's output tensors are freed by finalizers that the first
 * collection only schedules (measured: a dropped 197 MB output survived one gc, and two in a row,
 * and went with a gc after a setImmediate). Without that, a finished pass's arrays sometimes
 * outlived the next pass's allocation (+2.3 GB in pass 25 of the GPT-2-small-size run).
 */
export async function reclaim(): Promise<void> {
  collect();
  await new Promise((r) => setImmediate(r));
  collect();
}

function collect(): void {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      // Otherwise a collected ArrayBuffer's memory is freed by a background sweeper up to ~100 ms
      // later (measured: 1 GiB still held after the gc and a setImmediate), and the next pass
      // allocates its block while the last one's is still mapped.
      v8.setFlagsFromString('--no-concurrent-array-buffer-sweeping');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}
