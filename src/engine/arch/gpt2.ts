/**
 * Everything GPT-2-specific: config.json parsing, Hugging Face weight names, shape checks, and
 * the ONNX graph of the forward pass. A sibling module per architecture (`gpt_neox.ts`) exports
 * the same steps, `index.ts` chooses one from config.json's model_type, and the shared graph
 * pieces and names are in `common.ts`, so `runtime.ts` stays architecture-free.
 *
 * Graph names (the contract with runtime.ts and the analysis engine):
 *   input   `input_ids`       int64 [batch, seq]
 *   outputs `L{l}.hook_pre`   float [batch·seq, d_mlp]   ln_2(x)·W_in + b_in  (mlp.c_fc)
 *           `L{l}.hook_post`  float [batch·seq, d_mlp]   act(hook_pre)
 *           `logits`          float [batch·seq, vocab]   only in the logits variant
 * scores variant (`scores: true`):
 *   input   `targets`         int64 [batch, seq]         next-token id per position; < 0: none
 *   outputs `nll`             float [batch·seq]          −log softmax(logits)[target]; 0 without target
 *           `entropy`         float [batch·seq]          −Σ p·log p of the next-token distribution
 *           `ln_final.hook_scale` float [batch·seq]      sqrt(var + eps) of the ln_f input
 * intervention (`intervention: { layer, neuron }`):
 *   input   `intervention_value` float [1]               that neuron's hook_post at every position
 * steer variant (`steer: true`; intervene.ts): one side of an intervention per run. With every
 * edit off (mask 0) it is the clean forward; the clean side's results are then fed back so an
 * edited run scores the clean side at its own top tokens without recomputing clean logits.
 *   inputs  `input_ids`, `targets` [batch, seq] as above (targets: the real next token; < 0: none)
 *           `steer_tokens`    float [batch, seq]         1 where the edit applies, 0 elsewhere
 *           `L{l}.hook_{pre,post}.steer_{mask,scale,add}` float [d_mlp]
 *                                                       at positions with steer_tokens 1 and neurons with
 *                                                       mask > 0, the hook becomes hook·scale + add
 *           `top_k`           int64 [1]
 *           `clean_top_ids`   int64 [batch·seq, k]       the clean side's top k ids
 *           `clean_final`     float [batch·seq, d_model] the clean side's ln_final.hook_normalized
 *           `clean_lse`       float [batch·seq]          the clean side's log-sum-exp of the logits
 *   outputs `nll`, `entropy`, `ln_final.hook_scale` float [batch·seq]
 *           `L{l}.hook_*`     float [batch·seq, d_mlp] (after the edit)
 *           `top_ids`         int64 [batch·seq, k]       this run's top k ids
 *           `top_logp`        float [batch·seq, 2k]      this run's log p at clean_top_ids, then at top_ids
 *           `top_logp_clean`  float [batch·seq, k]       the clean side's log p at top_ids (from clean_final)
 *           `ln_final.hook_normalized` float [batch·seq, d_model], `lse` float [batch·seq]: this run's,
 *                                                       fed back as clean_final / clean_lse
 *           `logits`          float [batch·seq, vocab]  only with `logits: true`
 */
import { EngineError } from '../errors';
import { OnnxGraph } from '../onnx';
import {
  type Activation,
  ACTIVATIONS,
  causalMask,
  checkGraphOptions,
  checkWeightsFinite,
  type GraphOptions,
  INPUT_IDS,
  MlpHooks,
  type ModelConfig,
  OPSET,
  type ResolvedWeights,
  RESID_IN,
  residPostName,
  type WeightSource,
  weightInitializer,
} from './common';

// Names that moved to common.ts, re-exported for the code and tests that import them from here.
export {
  type Activation,
  ENTROPY,
  firstNonFinite,
  type GraphOptions as Gpt2GraphOptions,
  type Hook,
  hookName,
  indexStr,
  INPUT_IDS,
  INTERVENTION_VALUE,
  KEPT_INDEX,
  KEPT_POST,
  KEPT_PRE,
  LN_FINAL_SCALE,
  LOGITS,
  NLL,
  type NeuronRef,
  POST_ALL,
  STEER_TOKENS,
  type SteerPart,
  steerName,
  TARGETS,
  TOP_IDS,
  TOP_K,
  TOP_LOGP,
  TOP_LOGP_CLEAN,
  type WeightSource,
} from './common';

export interface Gpt2Config extends ModelConfig {
  modelType: 'gpt2';
  nLayer: number;
  nHead: number;
  nEmbd: number;
  dHead: number;
  /** n_inner, or 4·n_embd when null/absent. */
  dMlp: number;
  nPositions: number;
  vocabSize: number;
  layerNormEpsilon: number;
  /** As written in config.json, e.g. `gelu_new`. */
  activationFunction: string;
  activation: Activation;
  scaleAttnWeights: boolean;
  scaleAttnByInverseLayerIdx: boolean;
  reorderAndUpcastAttn: boolean;
  /** HF default true: the LM head is `wte` even if an `lm_head.weight` is stored. */
  tieWordEmbeddings: boolean;
}

function bad(message: string, file: string): never {
  throw new EngineError(`${file}: ${message}`, file);
}

/**
 * Upper bounds on config sizes, far above any GPT-2 (48 layers, 1600 wide, 1024 positions, 50,257
 * tokens) yet small enough that nothing sized by them can run away before the weights are
 * checked: `n_layer: 1e9` once built a 12-billion-entry map for 117 s before failing.
 */
const LIMITS: Record<string, number> = {
  n_layer: 1024,
  n_head: 1024,
  n_embd: 65536,
  n_inner: 1 << 20,
  n_positions: 1 << 17,
  n_ctx: 1 << 17,
  vocab_size: 1 << 22,
};

/** The layer_norm_epsilon values accepted: GPT-2 uses 1e-5, BERT-style models 1e-12, some small models 1e-3. */
const EPS_RANGE = [1e-12, 0.1] as const;

function positiveInt(json: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (v === undefined) bad(`"${key}" is missing`, file);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`, file);
  const max = LIMITS[key];
  if (max !== undefined && v > max) {
    bad(`"${key}" is ${v}, which is absurd for a GPT-2 (at most ${max} is accepted); the config is corrupt or belongs to another model`, file);
  }
  return v;
}

function bool(json: Record<string, unknown>, key: string, fallback: boolean, file: string): boolean {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') bad(`"${key}" must be true or false, got ${JSON.stringify(v)}`, file);
  return v;
}

/** Reads a Hugging Face GPT-2 config.json (already parsed) with HF's defaults. */
export function parseGpt2Config(json: Record<string, unknown>, file: string): Gpt2Config {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) bad('not a JSON object', file);
  const modelType = json['model_type'];
  if (modelType !== 'gpt2') {
    bad(
      modelType === undefined
        ? '"model_type" is missing; only GPT-2 ("gpt2") checkpoints are supported'
        : `model_type is ${JSON.stringify(modelType)}; only GPT-2 ("gpt2") checkpoints are supported`,
      file,
    );
  }
  const nLayer = positiveInt(json, 'n_layer', file);
  const nHead = positiveInt(json, 'n_head', file);
  const nEmbd = positiveInt(json, 'n_embd', file);
  if (nEmbd % nHead !== 0) bad(`n_embd (${nEmbd}) is not divisible by n_head (${nHead})`, file);
  const nInner = json['n_inner'];
  const dMlp = nInner === null || nInner === undefined ? 4 * nEmbd : positiveInt(json, 'n_inner', file);
  // Very old configs call the context n_ctx.
  const nPositions = positiveInt(json, 'n_positions', file, json['n_ctx'] as number | undefined);
  const vocabSize = positiveInt(json, 'vocab_size', file, 50257);
  const eps = json['layer_norm_epsilon'] ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) bad(`"layer_norm_epsilon" must be a positive number, got ${JSON.stringify(eps)}`, file);
  // Outside this range the value is not a guard against division by zero: far above 0.1 it swamps
  // the variance and flattens every activation (a corrupt digit, e.g. 1e5 for 1e-5); below 1e-12 it
  // is lost in fp32 next to any variance, and 1e-300 is 0 in fp32.
  if (eps < EPS_RANGE[0] || eps > EPS_RANGE[1]) {
    bad(
      `"layer_norm_epsilon" is ${eps}, which is absurd for a LayerNorm epsilon (GPT-2: 1e-5; ${EPS_RANGE[0]} to ${EPS_RANGE[1]} is accepted); ` +
        'the config is corrupt or belongs to another model',
      file,
    );
  }
  const act = json['activation_function'] ?? 'gelu_new';
  if (typeof act !== 'string' || !(act in ACTIVATIONS)) {
    bad(`activation_function ${JSON.stringify(act)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`, file);
  }
  return {
    modelType: 'gpt2',
    nLayer,
    nHead,
    nEmbd,
    dHead: nEmbd / nHead,
    dMlp,
    nPositions,
    vocabSize,
    layerNormEpsilon: eps,
    activationFunction: act,
    activation: ACTIVATIONS[act]!,
    scaleAttnWeights: bool(json, 'scale_attn_weights', true, file),
    scaleAttnByInverseLayerIdx: bool(json, 'scale_attn_by_inverse_layer_idx', false, file),
    reorderAndUpcastAttn: bool(json, 'reorder_and_upcast_attn', false, file),
    tieWordEmbeddings: bool(json, 'tie_word_embeddings', true, file),
  };
}

/** The tensors a GPT-2 forward needs, by HF name without prefix, with the shape config implies. */
export function gpt2TensorShapes(cfg: Gpt2Config): Map<string, number[]> {
  const { nEmbd: d, dMlp: m, vocabSize: v, nPositions: p } = cfg;
  const s = new Map<string, number[]>([
    ['wte.weight', [v, d]],
    ['wpe.weight', [p, d]],
  ]);
  for (let l = 0; l < cfg.nLayer; l++) {
    const h = `h.${l}.`;
    s.set(h + 'ln_1.weight', [d]);
    s.set(h + 'ln_1.bias', [d]);
    // Conv1D stores [in, out], so x·W needs no transpose.
    s.set(h + 'attn.c_attn.weight', [d, 3 * d]);
    s.set(h + 'attn.c_attn.bias', [3 * d]);
    s.set(h + 'attn.c_proj.weight', [d, d]);
    s.set(h + 'attn.c_proj.bias', [d]);
    s.set(h + 'ln_2.weight', [d]);
    s.set(h + 'ln_2.bias', [d]);
    s.set(h + 'mlp.c_fc.weight', [d, m]);
    s.set(h + 'mlp.c_fc.bias', [m]);
    s.set(h + 'mlp.c_proj.weight', [m, d]);
    s.set(h + 'mlp.c_proj.bias', [d]);
  }
  s.set('ln_f.weight', [d]);
  s.set('ln_f.bias', [d]);
  if (!cfg.tieWordEmbeddings) s.set('lm_head.weight', [v, d]);
  return s;
}

/** Config plus a validated map from HF name (no prefix) to the name stored in the file. */
export type Gpt2Weights = ResolvedWeights<Gpt2Config>;

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Causal-mask buffers some transformers versions store per layer; not weights, ignored. */
const MASK_BUFFERS = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;
const LAYER_OF = /^(?:transformer\.)?h\.(\d+)\./;

/**
 * Finds every tensor the forward needs — stored with or without the `transformer.` prefix that
 * GPT2LMHeadModel adds — and checks each shape and dtype against the config. When the source lists
 * its names, the check runs both ways: a layer beyond n_layer, or any tensor the architecture does
 * not use, is refused (it means config.json and the weights disagree), except the causal-mask
 * buffers `attn.bias`/`attn.masked_bias` and a stored `lm_head.weight` that tie_word_embeddings
 * replaces by `wte`, as Hugging Face does.
 */
export function resolveGpt2Weights(cfg: Gpt2Config, source: WeightSource, file: string, configFile = 'config.json'): Gpt2Weights {
  const names = source.names ? [...source.names()] : undefined;
  if (names) checkLayerCount(cfg, names, file, configFile);
  const stored = new Map<string, string>();
  for (const [name, want] of gpt2TensorShapes(cfg)) {
    const candidates = name === 'lm_head.weight' ? [name] : [name, 'transformer.' + name];
    const found = candidates.find((c) => source.shape(c) !== undefined);
    if (found === undefined) {
      const why = name === 'lm_head.weight' ? ' (config.json sets tie_word_embeddings: false, so the LM head must be stored)' : '';
      throw new EngineError(`${file}: tensor ${name} is missing${why}`, file, name);
    }
    const got = source.shape(found)!;
    if (got.length !== want.length || got.some((g, i) => g !== want[i])) {
      throw new EngineError(
        `${file}: tensor ${found} has shape ${shapeStr(got)}, but config.json implies ${shapeStr(want)} ` +
          `(n_embd=${cfg.nEmbd}, n_inner (d_mlp)=${cfg.dMlp}, vocab_size=${cfg.vocabSize}, n_positions=${cfg.nPositions})`,
        file,
        found,
      );
    }
    const dtype = source.dtype?.(found);
    if (dtype !== undefined && dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      throw new EngineError(
        `${file}: tensor ${found} is stored as ${dtype}; weights must be F32, F16 or BF16 (re-save the checkpoint with a float dtype)`,
        file,
        found,
      );
    }
    stored.set(name, found);
  }
  if (names) {
    const used = new Set(stored.values());
    const extra = names.filter((n) => !used.has(n) && !MASK_BUFFERS.test(n) && !(n === 'lm_head.weight' && cfg.tieWordEmbeddings));
    if (extra.length > 0) {
      const shown = extra.slice(0, 5).map((n) => `"${n}"`).join(', ') + (extra.length > 5 ? `, ... (${extra.length} in all)` : '');
      throw new EngineError(
        `${file}: holds tensors a GPT-2 with this config.json does not use: ${shown}. ` +
          `The weights and ${configFile} disagree (or the file holds two copies of a tensor, with and without "transformer."); use the config the weights were saved with`,
        file,
        extra[0],
      );
    }
  }
  return { config: cfg, source, stored };
}

/** Refuses layers beyond n_layer, and names the layer count when n_layer asks for more. */
function checkLayerCount(cfg: Gpt2Config, names: readonly string[], file: string, configFile: string): void {
  let top = -1;
  let topName = '';
  for (const n of names) {
    const m = LAYER_OF.exec(n);
    if (m && Number(m[1]) > top) {
      top = Number(m[1]);
      topName = n;
    }
  }
  const held = top + 1;
  if (held > cfg.nLayer) {
    throw new EngineError(
      `${configFile}: "n_layer" is ${cfg.nLayer}, but ${file} holds ${held} layers (e.g. tensor "${topName}"); ` +
        `layers past n_layer would be silently ignored. Set n_layer to ${held} or use the config the weights were saved with`,
      configFile,
      topName,
    );
  }
  if (held < cfg.nLayer) {
    throw new EngineError(
      `${configFile}: "n_layer" is ${cfg.nLayer}, but ${file} holds ${held} layer${held === 1 ? '' : 's'} (h.0${held > 1 ? `..h.${held - 1}` : ''}); ` +
        `set n_layer to ${held} or use the weights this config belongs to`,
      configFile,
      `h.${held}`,
    );
  }
}

/** Every weight the forward uses is finite (common.ts checkWeightsFinite). */
export function checkGpt2WeightsFinite(w: Gpt2Weights, file: string): void {
  checkWeightsFinite(w, file);
}

/**
 * The GPT-2 forward as an ONNX graph. Weights are lazy initializers: only those the variant
 * uses are read (the activations variant never touches ln_f, lm_head or the last c_proj).
 *
 * The residual stream is kept 2-D, [batch·seq, d], so every Conv1D is one Gemm with its bias
 * (the kernel ORT would fuse MatMul+Add into anyway) and only attention reshapes to heads. Hook
 * outputs are therefore [batch·seq, d_mlp] (row b·seq + t), logits [batch·seq, V].
 *
 * Attention is built from standard ops. ORT's fused com.microsoft Attention kernel was measured
 * too: no faster at GPT-2-small size, slower on the tiny config, so it is not used.
 */
export function buildGpt2Graph(w: Gpt2Weights, opts: GraphOptions): OnnxGraph {
  const cfg = w.config;
  checkGraphOptions('gpt2', cfg, opts);
  const g = new OnnxGraph('gpt2', OPSET);
  const d = cfg.nEmbd;
  const shapes = gpt2TensorShapes(cfg);
  const W = (name: string): string => weightInitializer(g, w, shapes, name);

  const ids = g.input(INPUT_IDS, 'int64', ['batch', 'seq']);
  const idsShape = g.op('Shape', [ids]); // [batch, seq]
  // Position ids 0..seq-1 for every row: rows are never left-padded (see runtime.ts).
  const seq1 = g.op('Slice', [idsShape, g.constI64([1]), g.constI64([2])]); // [seq]
  const flat = g.constI64([-1, d]);
  const start = opts.startLayer ?? 0;
  const embed = (): string => {
    const seq = g.op('Squeeze', [seq1, g.constI64([0])]);
    const positions = g.op('Range', [g.constI64([0], []), seq, g.constI64([1], [])]);
    return g.op('Reshape', [g.op('Add', [g.op('Gather', [W('wte.weight'), ids]), g.op('Gather', [W('wpe.weight'), positions])]), flat]); // [B·S, d]
  };
  // A suffix graph (startLayer) begins from the residual stream it is given.
  let x = start > 0 ? g.input(RESID_IN, 'float', ['tokens', d]) : embed();

  const layerNorm = (input: string, prefix: string): string =>
    g.op('LayerNormalization', [input, W(prefix + '.weight'), W(prefix + '.bias')], {
      axis: { i: -1 },
      epsilon: { f: cfg.layerNormEpsilon },
    });
  // Conv1D: x·W + b with W stored [in, out].
  const linear = (input: string, prefix: string, out?: string): string =>
    g.op('Gemm', [input, W(prefix + '.weight'), W(prefix + '.bias')], {}, out);

  // Causal mask: a [n_positions]² additive constant sliced to [seq]².
  const mask = causalMask(g, cfg.nPositions, seq1);
  const heads = g.op('Concat', [idsShape, g.constI64([cfg.nHead, cfg.dHead])], { axis: { i: 0 } }); // [B,S,H,Dh]

  const hooks = new MlpHooks(g, cfg, opts);
  for (let l = start; l < cfg.nLayer; l++) {
    const h = `h.${l}`;
    // HF: scores / sqrt(d_head) (if scale_attn_weights), then / (l+1) (if inverse-layer-idx).
    // The reorder_and_upcast path instead multiplies q·kᵀ by one combined factor (baddbmm alpha)
    // in fp32; everything here is fp32, so both orders agree to an ulp.
    let scale = 1;
    if (cfg.scaleAttnWeights) scale /= Math.sqrt(cfg.dHead);
    if (cfg.scaleAttnByInverseLayerIdx) scale /= l + 1;
    const qkv = linear(layerNorm(x, `${h}.ln_1`), `${h}.attn.c_attn`);
    const ctx = attention(g, cfg, qkv, heads, flat, mask, scale, l);
    x = g.op('Add', [x, linear(ctx, `${h}.attn.c_proj`)]);
    const resid = x;
    const { post, graph } = hooks.layer(l, (out) => linear(layerNorm(resid, `${h}.ln_2`), `${h}.mlp.c_fc`, out));
    if (graph) return graph;
    x = g.op('Add', [x, linear(post, `${h}.mlp.c_proj`)]);
    if (opts.residPost?.includes(l)) g.output(g.op('Identity', [x], {}, residPostName(l)), 'float', ['tokens', d]);
  }
  const head = W(cfg.tieWordEmbeddings ? 'wte.weight' : 'lm_head.weight');
  return hooks.head(x, layerNorm(x, 'ln_f'), head);
}

function attention(
  g: OnnxGraph,
  cfg: Gpt2Config,
  qkv: string,
  heads: string,
  flat: string,
  mask: string,
  scale: number,
  layer: number,
): string {
  const d = cfg.nEmbd;
  const [q, k, v] = g.node('Split', [qkv, g.constI64([d, d, d])], { axis: { i: 1 } }, { outputs: 3 }) as [string, string, string];
  const split = (t: string, perm: number[]): string => g.op('Transpose', [g.op('Reshape', [t, heads])], { perm: { ints: perm } });
  let scores = g.op('MatMul', [split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1])]); // [B,H,S,S]
  if (cfg.reorderAndUpcastAttn) {
    scores = g.op('Mul', [scores, g.constF32([scale], [])]);
  } else {
    if (cfg.scaleAttnWeights) scores = g.op('Div', [scores, g.constF32([Math.sqrt(cfg.dHead)], [])]);
    if (cfg.scaleAttnByInverseLayerIdx) scores = g.op('Div', [scores, g.constF32([layer + 1], [])]);
  }
  const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: { i: -1 } });
  const ctx = g.op('MatMul', [probs, split(v, [0, 2, 1, 3])]); // [B,H,S,Dh]
  return g.op('Reshape', [g.op('Transpose', [ctx], { perm: { ints: [0, 2, 1, 3] } }), flat]);
}

