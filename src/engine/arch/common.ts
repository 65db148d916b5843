/**
 * What every architecture in `arch/` shares: the weight source, the graph's input and output
 * names (the contract with runtime.ts and the analysis), the graph pieces that do not depend on
 * the architecture (the kept layout, the intervention, the per-token scores, the MLP
 * nonlinearity), the config checks, and the finite-weights check. Nothing here knows GPT-2 or
 * GPT-NeoX; `arch/index.ts` chooses the architecture from config.json's model_type.
 */
import { EngineError } from '../errors';
import { OnnxGraph } from '../onnx';

/**
 * What the shared code (runtime, validation, analyses) reads of any architecture's config. Each
 * architecture maps its own config.json keys onto these (GPT-2 n_embd, GPT-NeoX hidden_size, …).
 */
export interface ModelConfig {
  /** config.json's model_type: the registry key in arch/index.ts. */
  modelType: string;
  nLayer: number;
  /** d_model, the residual width. */
  nEmbd: number;
  nHead: number;
  dHead: number;
  /** Neurons per layer (the MLP's hidden width). */
  dMlp: number;
  /** The context: rows longer than this are windowed (runtime.ts `windows`). */
  nPositions: number;
  /** Rows of the embedding and the unembedding; may exceed the tokenizer's size (padding). */
  vocabSize: number;
  layerNormEpsilon: number;
  activation: Activation;
}

/** Config plus a validated map from the architecture's tensor name (no prefix) to the stored name. */
export interface ResolvedWeights<C extends ModelConfig = ModelConfig> {
  config: C;
  source: WeightSource;
  stored: Map<string, string>;
}

/** Tensors by stored name; the checkpoint's safetensors file or an in-memory map. */
export interface WeightSource {
  /** Stored shape, or undefined when the tensor is absent. */
  shape(name: string): readonly number[] | undefined;
  /** The tensor as fp32 (upcast when stored as F16/BF16). */
  read(name: string): Float32Array;
  /** Every stored tensor name, when the source can list them: extra layers and tensors are refused. */
  names?(): Iterable<string>;
  /** The stored dtype (safetensors spelling), when known: weights must be F32, F16 or BF16. */
  dtype?(name: string): string | undefined;
  /** Index of the first NaN/±Infinity element without upcasting, or -1 (else read() is scanned). */
  firstNonFinite?(name: string): number;
}


/** The MLP nonlinearity, by what it computes (several HF names share one). */
export type Activation = 'gelu_tanh' | 'gelu_erf' | 'relu';

export const ACTIVATIONS: Record<string, Activation> = {
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu: 'gelu_erf',
  relu: 'relu',
};


/**
 * The first non-finite element of `a`, or -1. One multiply-add per element (x·0 is NaN exactly
 * when x is NaN or ±Infinity), checked per block of 64k so the loop stays branch-free.
 */
export function firstNonFinite(a: Float32Array): number {
  const BLOCK = 65536;
  for (let start = 0; start < a.length; start += BLOCK) {
    const end = Math.min(a.length, start + BLOCK);
    let acc = 0;
    for (let i = start; i < end; i++) acc += a[i]! * 0;
    if (acc !== 0) {
      for (let i = start; i < end; i++) if (!Number.isFinite(a[i]!)) return i;
    }
  }
  return -1;
}

/** Element `i` of a row-major tensor of `shape`, as "[r, c]". */
export function indexStr(i: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = shape[k]!;
    idx.unshift(d > 0 ? i % d : 0);
    i = d > 0 ? Math.floor(i / d) : 0;
  }
  return `[${idx.join(', ')}]`;
}


export const INPUT_IDS = 'input_ids';
export const LOGITS = 'logits';
/** The final LayerNorm's input (GraphOptions.residFinal). */
export const RESID_FINAL = 'resid_final';
/** The residual stream a suffix graph starts from (GraphOptions.startLayer). */
export const RESID_IN = 'resid_in';
/** The residual stream after layer l (GraphOptions.residPost): TransformerLens' blocks.l.hook_resid_post. */
export const residPostName = (layer: number): string => `L${layer}.hook_resid_post`;
export const TARGETS = 'targets';
export const NLL = 'nll';
export const ENTROPY = 'entropy';
export const LN_FINAL_SCALE = 'ln_final.hook_scale';
export const INTERVENTION_VALUE = 'intervention_value';
export const KEPT_INDEX = 'kept_index';
export const KEPT_PRE = 'kept_pre';
export const KEPT_POST = 'kept_post';
export const POST_ALL = 'post_all';
export const PRE_ALL = 'pre_all';
export const STEER_TOKENS = 'steer_tokens';
export const TOP_K = 'top_k';
export const TOP_IDS = 'top_ids';
export const TOP_LOGP_CLEAN = 'top_logp_clean';
export const TOP_LOGP = 'top_logp';
export const CLEAN_TOP_IDS = 'clean_top_ids';
export const CLEAN_FINAL = 'clean_final';
export const CLEAN_LSE = 'clean_lse';
export const LSE = 'lse';
export const LN_FINAL_NORMALIZED = 'ln_final.hook_normalized';
export type SteerPart = 'mask' | 'scale' | 'add';
/** The steer variant's per-layer, per-hook edit inputs, each float [d_mlp]. */
export const steerName = (layer: number, hook: Hook, part: SteerPart): string => `L${layer}.hook_${hook}.steer_${part}`;
export type Hook = 'pre' | 'post';
export const hookName = (layer: number, hook: Hook): string => `L${layer}.hook_${hook}`;

export interface NeuronRef {
  layer: number;
  neuron: number;
}


export interface GraphOptions {
  /** Build the full forward with `logits`; otherwise stop at the last layer's hook_post. */
  logits: boolean;
  /**
   * Build the full forward with per-token `nll`, `entropy` and `ln_final.hook_scale` (input
   * `targets`). The [tokens × vocab] logits stay inside ORT unless `logits` is also set.
   */
  scores?: boolean;
  /** Replace this neuron's hook_post by the input `intervention_value` before c_proj. */
  intervention?: NeuronRef;
  /**
   * The analysis' layout instead of per-layer hooks (activations only): every layer side by side
   * (neuron (l, n) at column l·d_mlp + n), as `post_all` and `pre_all` [tokens, L·d_mlp], and the rows of input
   * `kept_index` (int64 token indices) of pre and post, as `kept_pre`/`kept_post` [kept, L·d_mlp].
   * ORT does the gathering, so no activation is copied in JavaScript.
   */
  kept?: boolean;
  /**
   * With `kept`, the outputs built (default all four). ORT runs every node of a graph whatever
   * the outputs fetched: a graph of all four held 24·T·N bytes of layers, concatenations and
   * gathers at its end (1.6 GB over the run's other memory at 4,096 tokens of a 4-layer
   * GPT-2-width model, measured), where a pass reading kept_post alone needs a third of it.
   * Kept rows alone are gathered layer by layer, so each layer's full [tokens × d_mlp] array is
   * freed as soon as its gather and the next layer are done with it.
   */
  keptKinds?: readonly KeptKind[];
  /**
   * One side of a neuron intervention (gpt2.ts's header): every layer's hook_pre and hook_post
   * take an edit as inputs, so one session serves the clean side (no edit) and any set of
   * neurons, modes and token ranges. Implies the scores; `logits` adds the [tokens × vocab] logits.
   */
  steer?: boolean;
  /**
   * With `logits`: also the final LayerNorm's input, `resid_final` [tokens, d_model] (TransformerLens'
   * last hook_resid_post), which the entropy sweep (entropySweep.ts) reads.
   */
  residFinal?: boolean;
  /**
   * Start at this layer from the input `resid_in` [tokens, d_model], the residual stream entering
   * it (an earlier run's `resid_post` with an edit): no embedding and no layer before it. The
   * input ids still give the batch's shape (mask, positions). Needs `logits`.
   */
  startLayer?: number;
  /** Also output the residual stream after each of these layers, `residPostName(l)` [tokens, d_model]. */
  residPost?: readonly number[];
}


// Opset 20 is the first with Gelu(approximate="tanh"); LayerNormalization is there from 17.
export const OPSET = 20;
// What HF fills masked scores with (torch.finfo(float32).min) before the softmax.
export const MASK_MIN = -3.4028234663852886e38;


/** The kept layout's arrays by what the analysis calls them (GraphOptions.keptKinds). */
export type KeptKind = 'keptPre' | 'keptPost' | 'pre' | 'post';
export const KEPT_KINDS: readonly KeptKind[] = ['keptPre', 'keptPost', 'post', 'pre'];

/**
 * The kept layout's outputs (GraphOptions.kept): layers concatenated, kept rows gathered. `pres`
 * and `posts` are each layer's array as `MlpHooks` left it: already gathered to the kept rows
 * when only those are wanted (`gatheredEarly`).
 */
function keptOutputs(g: OnnxGraph, N: number, pres: string[], posts: string[], kinds: readonly KeptKind[]): OnnxGraph {
  const kept = KEPT_INDEX;
  const all = (xs: string[], out?: string): string => (xs.length === 1 ? g.op('Identity', xs, {}, out) : g.op('Concat', xs, { axis: { i: 1 } }, out));
  for (const [xs, allName, keptName, full, rows] of [
    [pres, PRE_ALL, KEPT_PRE, 'pre', 'keptPre'],
    [posts, POST_ALL, KEPT_POST, 'post', 'keptPost'],
  ] as const) {
    if (kinds.includes(full)) {
      all(xs, allName);
      g.output(allName, 'float', ['tokens', N]);
      if (kinds.includes(rows)) g.op('Gather', [allName, kept], { axis: { i: 0 } }, keptName);
    } else if (kinds.includes(rows)) {
      all(xs, keptName);
    }
    if (kinds.includes(rows)) g.output(keptName, 'float', ['kept', N]);
  }
  return g;
}

/** Whether a side's layers are gathered to the kept rows as they are made (its full array is not wanted). */
function gatheredEarly(kinds: readonly KeptKind[], side: 'pre' | 'post'): boolean {
  return !kinds.includes(side) && kinds.includes(side === 'pre' ? 'keptPre' : 'keptPost');
}


/**
 * The steer variant's top tokens (one side per run, see gpt2.ts's header): this run's top k, its
 * log p at the clean side's top k (an input) and at its own, and the clean side's log p at this
 * run's top k from the clean side's final normalized residual and log-sum-exp, by gathering those
 * k rows of the LM head ([tokens × k × d_model] instead of the [tokens × vocab] logits: a re-run
 * on an unchanged text computes only the edited side's logits, BENCHMARKS.md). Also outputs this
 * run's normalized residual and log-sum-exp, which a clean run's caller keeps for that.
 * head: the LM head [vocab, d_model].
 */
export function topChanges(g: OnnxGraph, cfg: ModelConfig, final: string, head: string, logits: string, logp: string): void {
  const k = g.input(TOP_K, 'int64', [1]);
  const cleanIds = g.input(CLEAN_TOP_IDS, 'int64', ['tokens', 'k']);
  const cleanFinal = g.input(CLEAN_FINAL, 'float', ['tokens', cfg.nEmbd]);
  const cleanLse = g.input(CLEAN_LSE, 'float', ['tokens']);
  const axis1 = g.constI64([1]);
  const [values, ids] = g.node('TopK', [logp, k], { axis: { i: -1 } }, { outputs: 2 }) as [string, string];
  g.op('Identity', [ids], {}, TOP_IDS);
  g.op('GatherElements', [logp, g.op('Concat', [cleanIds, ids], { axis: { i: 1 } })], { axis: { i: 1 } }, TOP_LOGP);
  // Clean logits at this run's ids: [N, k, d] · [N, d, 1]; log p = logit − log-sum-exp.
  const rows = g.op('Gather', [head, ids], { axis: { i: 0 } });
  const cleanLogits = g.op('Squeeze', [g.op('MatMul', [rows, g.op('Unsqueeze', [cleanFinal, g.constI64([2])])]), g.constI64([2])]);
  g.op('Sub', [cleanLogits, g.op('Unsqueeze', [cleanLse, axis1])], {}, TOP_LOGP_CLEAN);
  // log-sum-exp = logit − log p at the top token (no second pass over the vocabulary).
  const first = g.op('Slice', [ids, g.constI64([0]), axis1, axis1]);
  const firstLogp = g.op('Slice', [values, g.constI64([0]), axis1, axis1]);
  g.op('Reshape', [g.op('Sub', [g.op('GatherElements', [logits, first], { axis: { i: 1 } }), firstLogp]), g.constI64([-1])], {}, LSE);
  g.op('Identity', [final], {}, LN_FINAL_NORMALIZED);
  g.output(TOP_IDS, 'int64', ['tokens', 'k']);
  g.output(TOP_LOGP, 'float', ['tokens', 'top2k']);
  g.output(TOP_LOGP_CLEAN, 'float', ['tokens', 'k']);
  g.output(LSE, 'float', ['tokens']);
  g.output(LN_FINAL_NORMALIZED, 'float', ['tokens', cfg.nEmbd]);
}


/** Refuses option combinations no architecture builds (GraphOptions). */
export function checkGraphOptions(arch: string, cfg: ModelConfig, opts: GraphOptions): void {
  if (opts.intervention) checkNeuron(cfg, opts.intervention);
  if (opts.kept && (opts.logits || opts.scores || opts.intervention || opts.steer)) throw new Error(`${arch} graph: the kept layout is for activations only`);
  if (opts.keptKinds && (!opts.kept || opts.keptKinds.length === 0 || opts.keptKinds.some((k) => !KEPT_KINDS.includes(k)))) {
    throw new Error(`${arch} graph: keptKinds ${JSON.stringify(opts.keptKinds)} needs the kept layout and some of ${KEPT_KINDS.join(', ')}`);
  }
  if (opts.residFinal && !opts.logits) throw new Error(`${arch} graph: resid_final comes with the logits`);
  if (opts.startLayer !== undefined && (!opts.logits || !Number.isInteger(opts.startLayer) || opts.startLayer < 0 || opts.startLayer >= cfg.nLayer)) {
    throw new Error(`${arch} graph: startLayer ${opts.startLayer} needs the logits and a layer in 0..${cfg.nLayer - 1}`);
  }
  if (opts.residPost?.some((l) => !Number.isInteger(l) || l < (opts.startLayer ?? 0) || l >= cfg.nLayer)) {
    throw new Error(`${arch} graph: residPost ${JSON.stringify(opts.residPost)} must be layers the graph runs`);
  }
  if (opts.steer && opts.intervention) throw new Error(`${arch} graph: the steer variant replaces the single-neuron intervention`);
}

/**
 * Every layer's MLP hooks as the variant wants them, for any architecture: the architecture
 * gives each layer's input projection and its residual stream, this names the hooks, applies the
 * steer edit or the single-neuron intervention, gathers the kept layout, and ends the graph after
 * the last hook_post (activations) or with the LM head's outputs (logits, scores, steer).
 */
export class MlpHooks {
  /** steer: 1 at the positions that the edit covers ([B·S, 1]). */
  private readonly gate: string;
  private readonly pres: string[] = [];
  private readonly posts: string[] = [];

  constructor(
    private readonly g: OnnxGraph,
    private readonly cfg: ModelConfig,
    private readonly opts: GraphOptions,
  ) {
    this.gate = opts.steer ? g.op('Reshape', [g.input(STEER_TOKENS, 'float', ['batch', 'seq']), g.constI64([-1, 1])]) : '';
  }

  /** At the gated positions and the masked neurons, v·scale + add; elsewhere v untouched. */
  private edit(l: number, hook: Hook, v: string, out: string): string {
    const g = this.g;
    const input = (part: SteerPart): string => g.input(steerName(l, hook, part), 'float', [this.cfg.dMlp]);
    const [mask, scale, add] = [input('mask'), input('scale'), input('add')];
    const on = g.op('Greater', [g.op('Mul', [this.gate, mask]), g.constF32([0], [])]); // [N, d_mlp]
    return g.op('Where', [on, g.op('Add', [g.op('Mul', [v, scale]), add]), v], {}, out);
  }

  /**
   * Layer l's hook_pre and hook_post; `project(out)` builds the MLP's input projection (named
   * `out` when given). `graph` is the finished graph when the variant needs nothing after this
   * layer (activations only: everything after the last hook_post is dead code).
   */
  layer(l: number, project: (out?: string) => string): { pre: string; post: string; graph?: OnnxGraph } {
    const { g, cfg, opts } = this;
    const iv = opts.intervention;
    const pre = opts.steer ? this.edit(l, 'pre', project(), hookName(l, 'pre')) : project(hookName(l, 'pre'));
    const post = opts.steer
      ? this.edit(l, 'post', activation(g, cfg.activation, pre), hookName(l, 'post'))
      : iv?.layer === l
        ? intervene(g, cfg.dMlp, iv.neuron, activation(g, cfg.activation, pre), hookName(l, 'post'))
        : activation(g, cfg.activation, pre, hookName(l, 'post'));
    if (opts.kept) {
      const kinds = opts.keptKinds ?? KEPT_KINDS;
      if (l === 0) g.input(KEPT_INDEX, 'int64', ['kept']);
      const rows = (v: string): string => g.op('Gather', [v, KEPT_INDEX], { axis: { i: 0 } });
      this.pres.push(gatheredEarly(kinds, 'pre') ? rows(pre) : pre);
      this.posts.push(gatheredEarly(kinds, 'post') ? rows(post) : post);
    } else {
      g.output(pre, 'float', ['tokens', cfg.dMlp]);
      g.output(post, 'float', ['tokens', cfg.dMlp]);
    }
    const last = l === cfg.nLayer - 1;
    if (last && opts.kept) return { pre, post, graph: keptOutputs(g, cfg.nLayer * cfg.dMlp, this.pres, this.posts, opts.keptKinds ?? KEPT_KINDS) };
    if (last && !opts.logits && !opts.scores && !opts.steer) return { pre, post, graph: g };
    return { pre, post };
  }

  /**
   * The LM head and the variant's outputs: `resid` the final LayerNorm's input, `final` its
   * output, `head` the unembedding [V, d_model] (Gemm's transB reads it as stored, so a tied
   * head shares the embedding's buffer).
   */
  head(resid: string, final: string, head: string): OnnxGraph {
    const { g, cfg, opts } = this;
    const logits = g.op('Gemm', [final, head], { transB: { i: 1 } }, LOGITS);
    if (opts.logits) g.output(LOGITS, 'float', ['tokens', cfg.vocabSize]);
    if (opts.residFinal) g.output(g.op('Identity', [resid], {}, RESID_FINAL), 'float', ['tokens', cfg.nEmbd]);
    if (opts.steer || opts.scores) {
      const logp = scores(g, cfg, resid, logits, g.op('Reshape', [g.input(TARGETS, 'int64', ['batch', 'seq']), g.constI64([-1])]));
      if (opts.steer) topChanges(g, cfg, final, head, logits, logp);
    }
    return g;
  }
}

export function checkNeuron(cfg: ModelConfig, n: NeuronRef): void {
  if (!Number.isInteger(n.layer) || n.layer < 0 || n.layer >= cfg.nLayer) {
    throw new EngineError(`intervention layer ${n.layer} is outside this model's layers 0..${cfg.nLayer - 1}`);
  }
  if (!Number.isInteger(n.neuron) || n.neuron < 0 || n.neuron >= cfg.dMlp) {
    throw new EngineError(`intervention neuron L${n.layer}.N${n.neuron} is outside this model's neurons 0..${cfg.dMlp - 1} (d_mlp)`);
  }
}


/**
 * post·mask + value·onehot with constant mask and onehot: the neuron's column becomes exactly
 * the value (post·0 + value·1) and every other column stays bit-identical (post·1 + value·0).
 */
export function intervene(g: OnnxGraph, dMlp: number, neuron: number, post: string, out: string): string {
  const value = g.input(INTERVENTION_VALUE, 'float', [1]);
  const mask = new Float32Array(dMlp).fill(1);
  mask[neuron] = 0;
  const onehot = new Float32Array(dMlp);
  onehot[neuron] = 1;
  const fixed = g.op('Mul', [g.constF32(onehot, [dMlp]), value]);
  return g.op('Add', [g.op('Mul', [post, g.constF32(mask, [dMlp])]), fixed], {}, out);
}


/** Per-token loss, entropy and final-LN scale (targets: [N] int64), computed where the logits already are; returns log p. */
export function scores(g: OnnxGraph, cfg: ModelConfig, resid: string, logits: string, targets: string): string {
  const axis1 = g.constI64([1]);
  const logp = g.op('LogSoftmax', [logits], { axis: { i: -1 } });
  // Positions without a target gather column 0 and are zeroed after.
  const col = g.op('Unsqueeze', [g.op('Max', [targets, g.constI64([0], [])]), axis1]); // [N,1]
  const picked = g.op('Reshape', [g.op('GatherElements', [logp, col], { axis: { i: 1 } }), g.constI64([-1])]);
  const has = g.op('GreaterOrEqual', [targets, g.constI64([0], [])]);
  g.op('Where', [has, g.op('Neg', [picked]), g.constF32([0], [])], {}, NLL);
  // Σ p·log p over log-probabilities: no cancellation against a large log-sum-exp.
  const plogp = g.op('Mul', [g.op('Exp', [logp]), logp]);
  g.op('Neg', [g.op('ReduceSum', [plogp, axis1], { keepdims: { i: 0 } })], {}, ENTROPY);
  // Two-pass variance, as TransformerLens's hook_scale (not LayerNormalization's E[x²]−E[x]²).
  const centred = g.op('Sub', [resid, g.op('ReduceMean', [resid, axis1], { keepdims: { i: 1 } })]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred]), axis1], { keepdims: { i: 0 } });
  g.op('Sqrt', [g.op('Add', [variance, g.constF32([cfg.layerNormEpsilon], [])])], {}, LN_FINAL_SCALE);
  for (const name of [NLL, ENTROPY, LN_FINAL_SCALE]) g.output(name, 'float', ['tokens']);
  return logp;
}


export function activation(g: OnnxGraph, act: Activation, pre: string, out?: string): string {
  switch (act) {
    case 'gelu_tanh':
      return g.op('Gelu', [pre], { approximate: { s: 'tanh' } }, out);
    case 'gelu_erf':
      return g.op('Gelu', [pre], {}, out);
    case 'relu':
      return g.op('Relu', [pre], {}, out);
  }
}

export function bad(message: string, file: string, field?: string): never {
  throw new EngineError(`${file}: ${message}`, file, field);
}

/**
 * A positive integer config key. `max` bounds what anything sized by it may allocate before the
 * weights are checked (`n_layer: 1e9` once built a 12-billion-entry map for 117 s before failing).
 */
export function positiveInt(json: Record<string, unknown>, key: string, file: string, opts: { fallback?: number; max?: number; arch: string }): number {
  const v = json[key] ?? opts.fallback;
  if (v === undefined) bad(`"${key}" is missing`, file, key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`, file, key);
  if (opts.max !== undefined && v > opts.max) {
    bad(`"${key}" is ${v}, which is absurd for a ${opts.arch} (at most ${opts.max} is accepted); the config is corrupt or belongs to another model`, file, key);
  }
  return v;
}

export function bool(json: Record<string, unknown>, key: string, fallback: boolean, file: string): boolean {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') bad(`"${key}" must be true or false, got ${JSON.stringify(v)}`, file, key);
  return v;
}

/** The LayerNorm epsilons accepted: GPT-2 and Pythia use 1e-5, BERT-style models 1e-12, some small models 1e-3. */
export const EPS_RANGE = [1e-12, 0.1] as const;

/**
 * A LayerNorm epsilon. Outside EPS_RANGE the value is not a guard against division by zero: far
 * above 0.1 it swamps the variance and flattens every activation (a corrupt digit, e.g. 1e5 for
 * 1e-5); below 1e-12 it is lost in fp32 next to any variance, and 1e-300 is 0 in fp32.
 */
export function layerNormEps(json: Record<string, unknown>, key: string, file: string, arch: string): number {
  const eps = json[key] ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) bad(`"${key}" must be a positive number, got ${JSON.stringify(eps)}`, file, key);
  if (eps < EPS_RANGE[0] || eps > EPS_RANGE[1]) {
    bad(
      `"${key}" is ${eps}, which is absurd for a LayerNorm epsilon (${arch}: 1e-5; ${EPS_RANGE[0]} to ${EPS_RANGE[1]} is accepted); ` +
        'the config is corrupt or belongs to another model',
      file,
      key,
    );
  }
  return eps;
}

export const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Refuses a weight stored in a dtype the engine does not read. */
export function checkFloatDtype(source: WeightSource, stored: string, file: string): void {
  const dtype = source.dtype?.(stored);
  if (dtype !== undefined && dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new EngineError(
      `${file}: tensor ${stored} is stored as ${dtype}; weights must be F32, F16 or BF16 (re-save the checkpoint with a float dtype)`,
      file,
      stored,
    );
  }
}

/**
 * Reads every weight the forward uses once and refuses a NaN or ±Infinity, naming the tensor and
 * element, so that a corrupt weight fails when the model is opened rather than as a NaN
 * activation mid-analysis (or, for the final LayerNorm and the LM head, at the very end).
 *
 * The safetensors source scans the stored bits (an all-ones exponent) in 16 MiB chunks, without
 * upcasting. Measured on a 2-core box shared with other jobs (load average ~10, so upper bounds),
 * file in the page cache: the shipped tiny model (7.2M parameters, F16) 50–100 ms warm, against
 * ~3 s for its whole openModel; a GPT-2-small-size checkpoint (124M parameters, tools/random_gpt2.ts)
 * 0.7–0.8 s in F16 (250 MB) and 0.8–1.3 s in F32 (498 MB), against ~21 s for its openModel. Reading
 * and upcasting every tensor to scan the floats instead took 3.4–3.6 s (F16).
 */
export function checkWeightsFinite(w: ResolvedWeights, file: string): void {
  for (const stored of new Set(w.stored.values())) {
    let i: number;
    let value: number;
    if (w.source.firstNonFinite) {
      i = w.source.firstNonFinite(stored);
      value = i >= 0 ? w.source.read(stored)[i]! : 0;
    } else {
      const a = w.source.read(stored);
      i = firstNonFinite(a);
      value = a[i]!;
    }
    if (i >= 0) {
      const shape = w.source.shape(stored) ?? [i + 1];
      throw new EngineError(
        `${file}: tensor ${stored} holds ${value} at element ${indexStr(i, shape)} (flat index ${i}); ` +
          `weights must be finite, so the checkpoint is corrupt or its training diverged. Re-download or re-save it`,
        file,
        stored,
      );
    }
  }
}

/** Reads a resolved weight (fp32) by its architecture name without prefix. */
export function readWeight(w: ResolvedWeights, name: string): Float32Array {
  const stored = w.stored.get(name);
  if (stored === undefined) throw new EngineError(`weight ${name} was not resolved`, undefined, name);
  return w.source.read(stored);
}

/** A lazy initializer of `g` for the resolved weight `name` with the shape `shapes` gives it. */
export function weightInitializer(g: OnnxGraph, w: ResolvedWeights, shapes: Map<string, number[]>, name: string): string {
  // Once per graph: a tied head reads the embedding's initializer.
  if (g.has(name)) return name;
  const storedName = w.stored.get(name);
  if (storedName === undefined) throw new Error(`${g.name} graph: ${name} was not resolved`);
  return g.initializer(name, 'float', shapes.get(name)!, () => w.source.read(storedName));
}

/**
 * The causal mask: an additive [n_positions]² constant (0 on and below the diagonal, fp32's
 * lowest above it, as HF fills masked scores before the softmax) sliced to [seq]².
 */
export function causalMask(g: OnnxGraph, p: number, seq1: string): string {
  const m = new Float32Array(p * p);
  for (let i = 0; i < p; i++) for (let j = i + 1; j < p; j++) m[i * p + j] = MASK_MIN;
  return g.op('Slice', [g.constF32(m, [p, p]), g.constI64([0, 0]), g.op('Concat', [seq1, seq1], { axis: { i: 0 } })]);
}
