/**
 * Neuron interventions on a prompt (issue #16): zero, mean-ablate, fix or scale any set of MLP
 * neurons at hook_pre or hook_post, at every token or a token range, and report per token the loss
 * of the actual next token, the entropy, the final-LN scale and the top next tokens, clean and
 * intervened.
 *
 * One ONNX graph serves every intervention (the `steer` variant of each architecture's graph,
 * arch/common.ts MlpHooks; GPT-2 and GPT-NeoX): each layer's hooks take the edit as inputs (a
 * mask, a scale and an offset per neuron, and a 0/1 gate per position). The clean
 * side is that graph with every edit off; its per-window results (scores, top k, the final
 * normalized residual and log-sum-exp) are kept until the text changes, so the common re-run (a
 * new neuron or mode on the same prompt) runs only the edited side, which scores the clean side
 * at its own top tokens from the kept residual (exact probability changes both ways).
 *
 * At an edited (position, neuron) the hook becomes hook·scale + add: zero is (0, 0), mean
 * (0, mean), fix=V (0, V), scale=K (K, 0). Every other value passes through a Where untouched.
 *
 * Long prompts run in windows as `Model.activations` does (runtime `windows`). The target of each
 * window's last position is the text's next token (the first of the next window), scored with the
 * context of its own window, so every text token but the last has a loss. The BOS inserted at the
 * start of later windows is edited when the range includes token 0 (the text's own BOS).
 */
// Must run before onnxruntime-node creates its environment: see ortTelemetry.ts.
import './ortTelemetry';
import * as ort from 'onnxruntime-node';
import {
  CLEAN_FINAL,
  CLEAN_LSE,
  CLEAN_TOP_IDS,
  ENTROPY,
  LN_FINAL_NORMALIZED,
  LSE,
  firstNonFinite,
  Hook,
  LN_FINAL_SCALE,
  LOGITS,
  NeuronRef,
  NLL,
  STEER_TOKENS,
  steerName,
  TARGETS,
  TOP_IDS,
  TOP_K,
  TOP_LOGP,
  TOP_LOGP_CLEAN,
} from './arch/common';
import { type ArchConfig, buildGraph } from './arch/index';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { encodeSliced } from './promptRun';
import { createSession, ForwardOptions, Model, planBatches, releaseSessions, rowOffsets, runInBatches, TokenInfo, windows } from './runtime';
import type { Encoding } from './tokenizer';
import { checkSpec, describeNeuron, InterventionMode, InterventionSpec, modeText, NeuronEdit, resolveRange, TokenRange } from './interventionSpec';

export * from './interventionSpec';

export interface TopToken {
  id: number;
  text: string;
  prob: number;
}

export interface TokenChange {
  id: number;
  text: string;
  /** Probability in the clean run. */
  before: number;
  /** Probability with the intervention. */
  after: number;
}

/** One side (clean or intervened) of the run, per token. */
export interface SideScores {
  /** loss[i] = −log p(token i+1 | tokens 0…i), nats; n−1 entries. */
  loss: number[];
  /** Entropy (nats) of the next-token distribution after token i; n entries (the last token's too). */
  entropy: number[];
  /** Final LayerNorm scale, sqrt(var + eps) of ln_f's input; n entries. */
  lnScale: number[];
  /** The top-k next tokens after token i, most probable first; n entries. */
  top: TopToken[][];
}

export interface InterventionResult {
  tokens: TokenInfo[];
  /** How many windows the prompt ran as (1 when it fits the context). */
  windows: number;
  nPositions: number;
  edits: NeuronEdit[];
  mode: InterventionMode;
  hook: Hook;
  tokenRange: TokenRange;
  /** Mode mean: where the means came from. */
  meanSource?: 'prompt' | 'given';
  clean: SideScores;
  intervened: SideScores;
  /** intervened − clean, per token (loss: n−1 entries). */
  delta: { loss: number[]; entropy: number[]; lnScale: number[] };
  /** Per token: every token in either top k, with p before and after, largest |Δp| first. */
  topChange: TokenChange[][];
  /** Full logits [n × vocab] of both sides (only with `logits: true`; tests). */
  logits?: { clean: Float32Array; intervened: Float32Array };
  /** How many windows' clean side was kept from the previous run on the same text (0 after an edit of every window). */
  cleanWindowsReused: number;
  /** Wall times, ms; `run` includes `clean` (the clean side's forwards, 0 when every window was kept). */
  ms: { tokenize: number; means: number; clean: number; run: number };
}

export interface InterventionRunOptions {
  /** Top next tokens listed per side (default 5, at most 100). */
  topK?: number;
  signal?: CancellationSignal;
  /** Also return the full logits of both sides (a second graph; for tests). */
  logits?: boolean;
  /** Stop (EngineError) past this many tokens, BOS included, before any model work. */
  maxTokens?: number;
  /** false: recompute the clean side even where the last run's is kept (tests, benchmarks). */
  reuseClean?: boolean;
}

export type IntervenerOptions = ForwardOptions;

/** One window's clean side, per row position (topIds/topLogp: k per position, final: d_model). */
interface CleanWindow {
  nll: Float32Array;
  entropy: Float32Array;
  lnScale: Float32Array;
  topIds: Int32Array;
  topLogp: Float32Array;
  final: Float32Array;
  lse: Float32Array;
}

export const DEFAULT_TOP_K = 5;
const MAX_TOP_K = 100;
// The graph holds several [tokens × vocab] fp32 tensors (logits, log p, p, p·log p) per run:
// this budget per tensor gives 667 text tokens per ORT run at GPT-2's vocabulary.
const LOGITS_BYTES = 128 * 1024 * 1024;

/**
 * The clean and intervened forwards of one model (one graph). Opening builds and loads the graph (once per
 * model); each `run` is one pass of ORT runs over the prompt's windows.
 */
export class Intervener {
  private readonly sessions = new Map<boolean, Promise<ort.InferenceSession>>();
  private readonly tempDirs: string[] = [];
  private closed = false;
  /** The last run's clean windows, by top k, last target and token ids (see runEncoded). */
  private cleanCache = new Map<string, CleanWindow>();

  private constructor(
    readonly model: Model,
    private readonly opts: IntervenerOptions,
  ) {}

  static async open(model: Model, opts: IntervenerOptions = {}): Promise<Intervener> {
    const iv = new Intervener(model, opts);
    try {
      await iv.session(false);
    } catch (e) {
      await iv.close();
      throw e;
    }
    return iv;
  }

  get config(): ArchConfig {
    return this.model.config;
  }

  private session(logits: boolean): Promise<ort.InferenceSession> {
    if (this.closed) throw new EngineError('the intervention session has been closed');
    let s = this.sessions.get(logits);
    if (!s) {
      const graph = buildGraph(this.model.weights, { logits, steer: true });
      s = createSession(graph, [NLL, ENTROPY, LN_FINAL_SCALE, TOP_IDS, TOP_LOGP, TOP_LOGP_CLEAN, LSE, LN_FINAL_NORMALIZED, ...(logits ? [LOGITS] : [])], this.opts, this.tempDirs);
      this.sessions.set(logits, s);
      s.catch(() => this.sessions.delete(logits));
    }
    return s;
  }

  /** Tokenises `text` (BOS first, as `activations`) and runs the intervention on it. */
  async run(text: string, spec: InterventionSpec, opts: InterventionRunOptions = {}): Promise<InterventionResult> {
    checkSpec(this.config, spec);
    const t0 = performance.now();
    const enc = await encodeSliced(this.model.tokenizer, text, { maxTokens: opts.maxTokens, signal: opts.signal });
    return this.runEncoded(enc, spec, opts, performance.now() - t0);
  }

  /** Runs token ids (BOS first); character ranges are reported as 0. */
  runIds(ids: readonly number[], spec: InterventionSpec, opts: InterventionRunOptions = {}): Promise<InterventionResult> {
    return this.runEncoded({ ids: [...ids], starts: ids.map(() => 0), ends: ids.map(() => 0) }, spec, opts, 0);
  }

  private async runEncoded(enc: Encoding, spec: InterventionSpec, opts: InterventionRunOptions, tokenizeMs: number): Promise<InterventionResult> {
    const cfg = this.config;
    checkSpec(cfg, spec);
    const topK = opts.topK ?? DEFAULT_TOP_K;
    if (!Number.isInteger(topK) || topK < 1 || topK > Math.min(MAX_TOP_K, cfg.vocabSize)) {
      throw new EngineError(`top-k ${topK} must be an integer from 1 to ${Math.min(MAX_TOP_K, cfg.vocabSize)}`);
    }
    const ids = enc.ids;
    const n = ids.length;
    if (n === 0) throw new EngineError('the prompt has no tokens (not even BOS)');
    const hook = spec.hook ?? 'post';
    const range = resolveRange(spec.tokens, n);
    const w = windows(ids, cfg.nPositions, this.model.tokenizer.bosId);
    rowOffsets(w.rows, cfg); // checks ids
    // Text index of each row position; -1 for the BOS inserted at later windows' start.
    const textIndex = w.rows.map((row, r) => row.map((_, p) => (p < w.skip[r]! ? -1 : w.firstToken[r]! + p - w.skip[r]!)));
    throwIfCancelled(opts.signal);

    const t1 = performance.now();
    let means: number[] | undefined;
    let meanSource: 'prompt' | 'given' | undefined;
    if (spec.mode.kind === 'mean') {
      meanSource = spec.means === 'prompt' ? 'prompt' : 'given';
      means = spec.means === 'prompt' ? await this.promptMeans(w.rows, textIndex, spec.neurons, hook, opts.signal) : [...spec.means!];
    }
    const meansMs = performance.now() - t1;

    const edits: NeuronEdit[] = spec.neurons.map((nr, i) => {
      const m = spec.mode;
      const [scale, add] = m.kind === 'zero' ? [0, 0] : m.kind === 'mean' ? [0, means![i]!] : m.kind === 'fix' ? [0, m.value] : [m.factor, 0];
      return { layer: nr.layer, neuron: nr.neuron, hook, scale, add };
    });
    const feeds = this.editFeeds(edits);

    const t2 = performance.now();
    const session = await this.session(!!opts.logits);
    const V = cfg.vocabSize;
    const d = cfg.nEmbd;
    const K2 = 2 * topK;
    // Next-token target per row position (the last position of a window: the next window's first).
    const targetOf = w.rows.map((row, r) => row.map((_, p) => (textIndex[r]![p]! >= 0 && textIndex[r]![p]! + 1 < n ? ids[textIndex[r]![p]! + 1]! : -1)));
    const budget = this.opts.batchTokens ?? Math.max(1, Math.min(2048, Math.floor(LOGITS_BYTES / (4 * V))));

    // The clean side: per window, kept from the last run when the window's tokens, targets and k
    // are unchanged (a new neuron or mode on the same text); otherwise one run with every edit off.
    const keys = w.rows.map((row, r) => `${topK}|${targetOf[r]![row.length - 1]}|${row.join(',')}`);
    const cleanWin: (CleanWindow | undefined)[] = opts.logits || opts.reuseClean === false ? [] : keys.map((k) => this.cleanCache.get(k));
    const missing = w.rows.flatMap((_, r) => (cleanWin[r] ? [] : [r]));
    const reused = w.rows.length - missing.length;
    const logits = opts.logits ? [new Float32Array(n * V), new Float32Array(n * V)] : undefined;
    const { Tensor } = ort;
    const sideFeeds = (rows: readonly number[], S: number, gate: (r: number, p: number) => boolean, from?: (r: number) => CleanWindow): Record<string, ort.Tensor> => {
      const B = rows.length;
      const targets = new BigInt64Array(B * S).fill(-1n);
      const gates = new Float32Array(B * S);
      const cIds = new BigInt64Array(B * S * topK);
      const cFinal = new Float32Array(B * S * d);
      const cLse = new Float32Array(B * S);
      rows.forEach((r, b) =>
        w.rows[r]!.forEach((_, p) => {
          const at = b * S + p;
          targets[at] = BigInt(targetOf[r]![p]!);
          if (gate(r, p)) gates[at] = 1;
          if (!from) return;
          const c = from(r);
          for (let j = 0; j < topK; j++) cIds[at * topK + j] = BigInt(c.topIds[p * topK + j]!);
          cFinal.set(c.final.subarray(p * d, (p + 1) * d), at * d);
          cLse[at] = c.lse[p]!;
        }),
      );
      return {
        [TARGETS]: new Tensor('int64', targets, [B, S]),
        [STEER_TOKENS]: new Tensor('float32', gates, [B, S]),
        [TOP_K]: new Tensor('int64', BigInt64Array.of(BigInt(topK)), [1]),
        [CLEAN_TOP_IDS]: new Tensor('int64', cIds, [B * S, topK]),
        [CLEAN_FINAL]: new Tensor('float32', cFinal, [B * S, d]),
        [CLEAN_LSE]: new Tensor('float32', cLse, [B * S]),
      };
    };
    const f = (res: ort.InferenceSession.ReturnType, name: string): Float32Array => res[name]!.data as Float32Array;
    if (missing.length) {
      const missRows = missing.map((r) => w.rows[r]!);
      const noEdit = this.editFeeds([]);
      await runInBatches(
        session,
        missRows,
        planBatches(missRows, budget),
        [NLL, ENTROPY, LN_FINAL_SCALE, TOP_IDS, TOP_LOGP, LSE, LN_FINAL_NORMALIZED, ...(logits ? [LOGITS] : [])],
        opts.signal,
        (res, batch, S) => {
          const ti = res[TOP_IDS]!.data as BigInt64Array;
          batch.forEach((m, b) => {
            const r = missing[m]!;
            const L = w.rows[r]!.length;
            const c: CleanWindow = {
              nll: f(res, NLL).slice(b * S, b * S + L),
              entropy: f(res, ENTROPY).slice(b * S, b * S + L),
              lnScale: f(res, LN_FINAL_SCALE).slice(b * S, b * S + L),
              topIds: Int32Array.from({ length: L * topK }, (_, j) => Number(ti[b * S * topK + j]!)),
              // This run's log p at its own ids: the second half of each row's 2k.
              topLogp: Float32Array.from({ length: L * topK }, (_, j) => f(res, TOP_LOGP)[(b * S + Math.floor(j / topK)) * K2 + topK + (j % topK)]!),
              final: f(res, LN_FINAL_NORMALIZED).slice(b * S * d, (b * S + L) * d),
              lse: f(res, LSE).slice(b * S, b * S + L),
            };
            cleanWin[r] = c;
            if (logits) {
              textIndex[r]!.forEach((i, p) => {
                if (i >= 0) logits[0]!.set(f(res, LOGITS).subarray((b * S + p) * V, (b * S + p + 1) * V), i * V);
              });
            }
          });
          return false;
        },
        (batch, S) => ({ ...noEdit, ...sideFeeds(batch.map((m) => missing[m]!), S, () => false) }),
      );
    }
    // Only the windows of this text stay: an edit drops the windows it changed.
    this.cleanCache = new Map(keys.map((k, r) => [k, cleanWin[r]!]));
    const cleanMs = performance.now() - t2;

    const nll = [new Float32Array(n), new Float32Array(n)];
    const entropy = [new Float32Array(n), new Float32Array(n)];
    const lnScale = [new Float32Array(n), new Float32Array(n)];
    const topIds = new Int32Array(n * K2);
    const topLogp = [new Float32Array(n * K2), new Float32Array(n * K2)];
    w.rows.forEach((_, r) =>
      textIndex[r]!.forEach((i, p) => {
        if (i < 0) return;
        const c = cleanWin[r]!;
        nll[0]![i] = c.nll[p]!;
        entropy[0]![i] = c.entropy[p]!;
        lnScale[0]![i] = c.lnScale[p]!;
        for (let j = 0; j < topK; j++) {
          topIds[i * K2 + j] = c.topIds[p * topK + j]!;
          topLogp[0]![i * K2 + j] = c.topLogp[p * topK + j]!;
        }
      }),
    );
    await runInBatches(
      session,
      w.rows,
      planBatches(w.rows, budget),
      [NLL, ENTROPY, LN_FINAL_SCALE, TOP_IDS, TOP_LOGP, TOP_LOGP_CLEAN, ...(logits ? [LOGITS] : [])],
      opts.signal,
      (res, batch, S) => {
        const ti = res[TOP_IDS]!.data as BigInt64Array;
        batch.forEach((r, b) => {
          textIndex[r]!.forEach((i, p) => {
            if (i < 0) return;
            const at = b * S + p;
            nll[1]![i] = f(res, NLL)[at]!;
            entropy[1]![i] = f(res, ENTROPY)[at]!;
            lnScale[1]![i] = f(res, LN_FINAL_SCALE)[at]!;
            if (logits) logits[1]!.set(f(res, LOGITS).subarray(at * V, (at + 1) * V), i * V);
            for (let j = 0; j < topK; j++) {
              topIds[i * K2 + topK + j] = Number(ti[at * topK + j]!);
              topLogp[0]![i * K2 + topK + j] = f(res, TOP_LOGP_CLEAN)[at * topK + j]!;
            }
            for (let j = 0; j < K2; j++) topLogp[1]![i * K2 + j] = f(res, TOP_LOGP)[at * K2 + j]!;
          });
        });
        return false;
      },
      (batch, S) => ({
        ...feeds,
        ...sideFeeds(batch, S, (r, p) => {
          const i = textIndex[r]![p]!;
          return i < 0 ? range.start === 0 : i >= range.start && i < range.end;
        }, (r) => cleanWin[r]!),
      }),
    );
    const runMs = performance.now() - t2;

    // Weights are finite (checked at open): a non-finite score is an fp32 overflow in the forward,
    // which a large fix or scale value can cause.
    for (const [what, pair] of [['next-token loss', nll], ['entropy', entropy], ['final LayerNorm scale', lnScale]] as const) {
      for (let side = 0; side < 2; side++) {
        const i = firstNonFinite(pair[side]!);
        if (i >= 0) {
          throw new EngineError(
            `the ${side ? 'intervened' : 'clean'} forward produced ${pair[side]![i]} as the ${what} at token ${i}` +
              (side ? ` (${modeText(spec.mode)} on ${spec.neurons.map(describeNeuron).join(', ')}): the edit overflows fp32; use a smaller value` : ''),
          );
        }
      }
    }

    const tok = this.model.tokenizer;
    // tokenLabel: a padded vocabulary's rows past the tokenizer (NeoX) can be top tokens.
    const text = (id: number): string => tok.tokenLabel(id);
    const side = (s: 0 | 1): SideScores => ({
      loss: Array.from(nll[s]!.subarray(0, n - 1)),
      entropy: Array.from(entropy[s]!),
      lnScale: Array.from(lnScale[s]!),
      top: Array.from({ length: n }, (_, i) =>
        Array.from({ length: topK }, (_, j) => {
          const id = topIds[i * K2 + s * topK + j]!;
          return { id, text: text(id), prob: Math.exp(topLogp[s]![i * K2 + s * topK + j]!) };
        }),
      ),
    });
    const clean = side(0);
    const intervened = side(1);
    const topChange = Array.from({ length: n }, (_, i) => {
      const seen = new Map<number, TokenChange>();
      for (let j = 0; j < K2; j++) {
        const id = topIds[i * K2 + j]!;
        if (!seen.has(id)) seen.set(id, { id, text: text(id), before: Math.exp(topLogp[0]![i * K2 + j]!), after: Math.exp(topLogp[1]![i * K2 + j]!) });
      }
      return [...seen.values()].sort((a, b) => Math.abs(b.after - b.before) - Math.abs(a.after - a.before) || a.id - b.id);
    });
    const diff = (a: number[], b: number[]): number[] => a.map((x, i) => x - b[i]!);
    return {
      tokens: ids.map((id, i) => ({ id, text: text(id), start: enc.starts[i]!, end: enc.ends[i]! })),
      windows: w.rows.length,
      nPositions: cfg.nPositions,
      edits,
      mode: spec.mode,
      hook,
      tokenRange: range,
      ...(meanSource ? { meanSource } : {}),
      clean,
      intervened,
      delta: { loss: diff(intervened.loss, clean.loss), entropy: diff(intervened.entropy, clean.entropy), lnScale: diff(intervened.lnScale, clean.lnScale) },
      topChange,
      ...(logits ? { logits: { clean: logits[0]!, intervened: logits[1]! } } : {}),
      cleanWindowsReused: reused,
      ms: { tokenize: tokenizeMs, means: meansMs, clean: cleanMs, run: runMs },
    };
  }

  /** Each neuron's mean hook value over the prompt's text tokens but BOS (BOS alone: its value), float64. */
  private async promptMeans(
    rows: readonly (readonly number[])[],
    textIndex: readonly (readonly number[])[],
    neurons: readonly NeuronRef[],
    hook: Hook,
    signal?: CancellationSignal,
  ): Promise<number[]> {
    const run = await this.model.runTokens(rows, { hooks: [hook], signal });
    const layers = hook === 'pre' ? run.hookPre : run.hookPost;
    const M = this.config.dMlp;
    const onlyBos = textIndex.every((r) => r.every((i) => i <= 0));
    return neurons.map(({ layer, neuron }) => {
      let sum = 0;
      let count = 0;
      textIndex.forEach((r, row) =>
        r.forEach((i, p) => {
          if (i < 0 || (i === 0 && !onlyBos)) return;
          sum += layers[layer]![(run.offsets[row]! + p) * M + neuron]!;
          count++;
        }),
      );
      return sum / count;
    });
  }

  /** The per-layer edit inputs: a neuron's mask 1 with its scale and add; everything else passes. */
  private editFeeds(edits: readonly NeuronEdit[]): Record<string, ort.Tensor> {
    const { Tensor } = ort;
    const { nLayer, dMlp: M } = this.config;
    const zeros = new Float32Array(M);
    const ones = new Float32Array(M).fill(1);
    const feeds: Record<string, ort.Tensor> = {};
    for (let l = 0; l < nLayer; l++) {
      for (const hook of ['pre', 'post'] as const) {
        const mine = edits.filter((e) => e.layer === l && e.hook === hook);
        const mask = mine.length ? new Float32Array(M) : zeros;
        const scale = mine.length ? new Float32Array(ones) : ones;
        const add = mine.length ? new Float32Array(M) : zeros;
        for (const e of mine) {
          mask[e.neuron] = 1;
          scale[e.neuron] = e.scale;
          add[e.neuron] = e.add;
        }
        feeds[steerName(l, hook, 'mask')] = new Tensor('float32', mask, [M]);
        feeds[steerName(l, hook, 'scale')] = new Tensor('float32', scale, [M]);
        feeds[steerName(l, hook, 'add')] = new Tensor('float32', add, [M]);
      }
    }
    return feeds;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await releaseSessions(this.sessions, this.tempDirs);
  }
}

/** Opens the intervention graph of an open model (the model stays the caller's to close). */
export function openIntervener(model: Model, opts: IntervenerOptions = {}): Promise<Intervener> {
  return Intervener.open(model, opts);
}

