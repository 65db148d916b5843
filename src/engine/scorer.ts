/**
 * Per-token scores of a checkpoint (loss, entropy, final-LN scale) computed inside the graph, with
 * an optional fixed neuron: the entropy intervention's forward. Split from runtime.ts at the seam
 * its header named: it needs only session creation, the batching loop and checkpoint loading.
 */
// Must run before onnxruntime-node creates its environment: see ortTelemetry.ts.
import './ortTelemetry';
import * as ort from 'onnxruntime-node';
import {
  ENTROPY,
  firstNonFinite,
  INTERVENTION_VALUE,
  LN_FINAL_SCALE,
  NeuronRef,
  NLL,
  TARGETS,
} from './arch/common';
import { type ArchConfig, type ArchWeights, buildGraph } from './arch/index';
import { loadCheckpoint } from './checkpoint';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { checkpointWeights } from './validate';
import { createSession, planBatches, releaseSessions, rowOffsets, runInBatches, scatterRows, type ForwardOptions } from './runtime';

export interface ScorerOptions extends ForwardOptions {
  /** The neuron whose hook_post `score(rows, { value })` fixes. */
  intervention?: NeuronRef;
}

export interface ScoreOptions {
  /** Fix the scorer's intervention neuron's hook_post to this value at every position. */
  value?: number;
  signal?: CancellationSignal;
}

/** The result of `Scorer.score`: rows concatenated in input order, one value per token. */
export interface TokenScores {
  /** Row r occupies tokens offsets[r] .. offsets[r+1]-1. */
  offsets: number[];
  nTokens: number;
  /** −log p(row[t+1]) at position t (nats); 0 at each row's last position, which has no target. */
  nll: Float32Array;
  /** −Σ p·log p (nats) of the next-token distribution at every position. */
  entropy: Float32Array;
  /** TransformerLens `ln_final.hook_scale`: sqrt(var + eps) of the ln_f input. */
  lnScale: Float32Array;
}

// Each run holds several [tokens × vocab] fp32 tensors inside ORT (logits, log p, p, p·log p):
// measured on the tiny family (V = 50,257), 2048 tokens per run peaked at 2.8 GB RSS and 512 at
// 0.9 GB, no slower. This budget per tensor gives 667 tokens at GPT-2's vocabulary.
const SCORE_LOGITS_BYTES = 128 * 1024 * 1024;
const SCORE_MAX_TOKENS = 2048;

/**
 * Per-token next-token loss, entropy and final-LN scale, computed inside the graph so that the
 * logits never reach JS. Two sessions, built lazily: the plain forward, and (when opened with
 * `intervention`) the forward with that neuron's hook_post fixed to the value given per call —
 * one session serves a whole sweep of values.
 */
export class Scorer {
  readonly config: ArchConfig;
  private readonly sessions = new Map<boolean, Promise<ort.InferenceSession>>();
  private readonly tempDirs: string[] = [];
  private closed = false;

  private constructor(
    private readonly weights: ArchWeights,
    readonly intervention: NeuronRef | undefined,
    private readonly opts: ForwardOptions,
    private readonly closeWeights: () => void,
    /** The checkpoint, for messages. */
    private readonly source: string,
  ) {
    this.config = weights.config;
  }

  /**
   * Builds the session the scorer is for now (the intervened one when `intervention` is set), so
   * that a bad model or neuron index fails here. `closeWeights` runs once on close; `source`
   * names the model in messages.
   */
  static async create(weights: ArchWeights, opts: ScorerOptions = {}, closeWeights: () => void = () => {}, source = 'the model'): Promise<Scorer> {
    const { intervention, ...forwardOpts } = opts;
    const s = new Scorer(weights, intervention && { ...intervention }, forwardOpts, closeWeights, source);
    try {
      await s.session(intervention !== undefined);
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private session(intervened: boolean): Promise<ort.InferenceSession> {
    if (this.closed) throw new EngineError('the scorer has been closed');
    let s = this.sessions.get(intervened);
    if (!s) {
      const graph = buildGraph(this.weights, { logits: false, scores: true, intervention: intervened ? this.intervention : undefined });
      s = createSession(graph, [NLL, ENTROPY, LN_FINAL_SCALE], this.opts, this.tempDirs);
      this.sessions.set(intervened, s);
      s.catch(() => this.sessions.delete(intervened));
    }
    return s;
  }

  private get batchTokens(): number {
    return this.opts.batchTokens ?? Math.max(1, Math.min(SCORE_MAX_TOKENS, Math.floor(SCORE_LOGITS_BYTES / (4 * this.config.vocabSize))));
  }

  /**
   * Scores rows of token ids (BOS first, each 1..n_positions long); the target of position t is
   * token t+1 of its row. Cancellation is checked between ORT runs.
   */
  async score(rows: readonly (readonly number[])[], opts: ScoreOptions = {}): Promise<TokenScores> {
    const { value } = opts;
    if (value !== undefined) {
      if (!this.intervention) throw new EngineError('this scorer was opened without an intervention neuron, so it cannot fix a value');
      if (!Number.isFinite(value)) throw new EngineError(`intervention value ${value} is not a finite number`);
    }
    const offsets = rowOffsets(rows, this.config);
    const nTokens = offsets[rows.length]!;
    const out: TokenScores = {
      offsets,
      nTokens,
      nll: new Float32Array(nTokens),
      entropy: new Float32Array(nTokens),
      lnScale: new Float32Array(nTokens),
    };
    if (rows.length === 0) return out;
    throwIfCancelled(opts.signal);
    const session = await this.session(value !== undefined);
    const fetches = [NLL, ENTROPY, LN_FINAL_SCALE];
    const extraFeeds = (batch: readonly number[], S: number): Record<string, ort.Tensor> => {
      const targets = new BigInt64Array(batch.length * S).fill(-1n); // padding has no target
      batch.forEach((r, b) => rows[r]!.forEach((id, t) => t > 0 && (targets[b * S + t - 1] = BigInt(id))));
      const feeds: Record<string, ort.Tensor> = { [TARGETS]: new ort.Tensor('int64', targets, [batch.length, S]) };
      if (value !== undefined) feeds[INTERVENTION_VALUE] = new ort.Tensor('float32', Float32Array.of(value), [1]);
      return feeds;
    };
    await runInBatches(
      session,
      rows,
      planBatches(rows, this.batchTokens),
      fetches,
      opts.signal,
      (res, batch, S) => {
        for (const [name, dst] of [
          [NLL, out.nll],
          [ENTROPY, out.entropy],
          [LN_FINAL_SCALE, out.lnScale],
        ] as const) {
          scatterRows(res[name]!.data as Float32Array, dst, 1, rows, offsets, batch, S);
        }
        return false;
      },
      extraFeeds,
    );
    checkFinite(out, this.source, value !== undefined ? ` with ${this.intervention ? `L${this.intervention.layer}.N${this.intervention.neuron}` : 'the neuron'} fixed to ${value}` : '');
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await releaseSessions(this.sessions, this.tempDirs);
    this.closeWeights();
  }
}

/**
 * Refuses scores with a non-finite value, naming the row and position. Weights are finite (checked
 * at open), so such a score is fp32 overflow in the forward. `fixed` says what was fixed, if anything.
 */
export function checkFinite(s: TokenScores, source: string, fixed: string): void {
  for (const [what, a] of [['next-token loss', s.nll], ['next-token entropy', s.entropy], ['final LayerNorm scale', s.lnScale]] as const) {
    const i = firstNonFinite(a);
    if (i < 0) continue;
    let r = 0;
    while (s.offsets[r + 1]! <= i) r++;
    throw new EngineError(
      `${source}: the forward pass produced ${a[i]} as the ${what} at row ${r}, position ${i - s.offsets[r]!}${fixed}, ` +
        "although every weight is finite: the model's weights overflow fp32 on these tokens, so its scores cannot be reported",
      source,
    );
  }
}

/** A checkpoint on disk as a `Scorer` (no tokenizer work; rows are token ids). */
export async function openScorer(path: string, opts: ScorerOptions = {}): Promise<Scorer> {
  const ck = loadCheckpoint(path);
  let weights: ArchWeights;
  try {
    weights = checkpointWeights(ck);
  } catch (e) {
    ck.weights.close();
    throw e;
  }
  return Scorer.create(weights, opts, () => ck.weights.close(), ck.dir);
}
