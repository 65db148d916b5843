/**
 * Everything GPT-NeoX-specific (Pythia, PolyPythias, GPT-NeoX-20B): config.json parsing, the
 * Hugging Face weight names, shape checks, and the ONNX graph of the forward pass, written from
 * the maths of transformers' `modeling_gpt_neox.py` (GPTNeoXForCausalLM):
 *
 *   embed_in (no position embedding; positions enter through rotary q and k)
 *   per layer, a = attention(input_layernorm(x)):
 *     use_parallel_residual (default): x ← x + a + mlp(post_attention_layernorm(x))
 *     otherwise:                       x ← (x + a) + mlp(post_attention_layernorm(x + a))
 *   final_layer_norm, then embed_out (untied by default: tie_word_embeddings false)
 *
 *   attention: query_key_value is one Linear [3·d, d] whose output is per head [q | k | v]
 *   (heads interleaved: head h's q is columns h·3·dh .. h·3·dh+dh, then its k, then its v), unlike
 *   GPT-2's [all q | all k | all v]. The first rotary_ndims = ⌊dh·rotary_pct⌋ dimensions of each
 *   head's q and k are rotated (rotate_half: the first half against the second, inv_freq =
 *   base^(−2i/rotary_ndims), base = rotary_emb_base); scores are q·kᵀ/√dh; query_key_value and
 *   dense carry biases unless attention_bias is false.
 *   mlp: dense_h_to_4h → hidden_act (gelu: exact erf; gelu_new: tanh) → dense_4h_to_h.
 *   Linear weights are stored [out, in], so every projection is a Gemm with transB.
 *
 * The graph has the names and variants of common.ts (`L{l}.hook_pre` = dense_h_to_4h's output,
 * TransformerLens' blocks.l.mlp.hook_pre; `L{l}.hook_post` = hidden_act of it, blocks.l.mlp.hook_post).
 */
import { EngineError } from '../errors';
import { OnnxGraph } from '../onnx';
import {
  ACTIVATIONS,
  bad,
  bool,
  causalMask,
  checkGraphOptions,
  checkFloatDtype,
  type GraphOptions,
  INPUT_IDS,
  layerNormEps,
  MlpHooks,
  type ModelConfig,
  OPSET,
  positiveInt,
  type ResolvedWeights,
  RESID_IN,
  residPostName,
  shapeStr,
  type WeightSource,
  weightInitializer,
} from './common';

export interface NeoxConfig extends ModelConfig {
  modelType: 'gpt_neox';
  /** As written in config.json (hidden_act), e.g. `gelu`. */
  hiddenAct: string;
  /** Rotated dimensions of each head: ⌊d_head · rotary_pct⌋ (even). */
  rotaryDims: number;
  rotaryPct: number;
  rotaryBase: number;
  parallelResidual: boolean;
  attentionBias: boolean;
  /** HF default false: Pythia's embed_out is its own matrix. */
  tieWordEmbeddings: boolean;
}

export type NeoxWeights = ResolvedWeights<NeoxConfig>;

const ARCH = 'GPT-NeoX';

/** Upper bounds far above any GPT-NeoX (20B: 44 layers, 6144 wide, 50,432 tokens; Pythia: 2048 positions). */
const LIMITS = {
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  hidden_size: 65536,
  intermediate_size: 1 << 20,
  max_position_embeddings: 1 << 17,
  vocab_size: 1 << 22,
};

function fraction(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) bad(`"${key}" must be a number from 0 to 1, got ${JSON.stringify(v)}`, file, key);
  return v;
}

/**
 * The rotary settings, under the names transformers has used: rotary_pct / rotary_emb_base
 * (Pythia's configs), partial_rotary_factor / rope_theta (newer), or inside rope_parameters.
 * Scaled rotary (rope_scaling, a rope_type other than "default") is refused: no Pythia uses it.
 */
function rotary(json: Record<string, unknown>, file: string): { pct: number; base: number } {
  const params = json['rope_parameters'];
  const p = params !== null && typeof params === 'object' && !Array.isArray(params) ? (params as Record<string, unknown>) : {};
  if (params !== undefined && params !== null && (typeof params !== 'object' || Array.isArray(params))) {
    bad(`"rope_parameters" must be an object or null, got ${JSON.stringify(params)}`, file, 'rope_parameters');
  }
  const scaling = json['rope_scaling'];
  const ropeType = p['rope_type'] ?? p['type'];
  if ((scaling !== undefined && scaling !== null) || (ropeType !== undefined && ropeType !== 'default')) {
    bad(
      `scaled rotary embeddings (${scaling !== undefined && scaling !== null ? `rope_scaling ${JSON.stringify(scaling)}` : `rope_type ${JSON.stringify(ropeType)}`}) are not supported; ` +
        'only the default rotary of Pythia / GPT-NeoX is',
      file,
      scaling !== undefined && scaling !== null ? 'rope_scaling' : 'rope_parameters',
    );
  }
  const pctKey = json['rotary_pct'] !== undefined ? 'rotary_pct' : json['partial_rotary_factor'] !== undefined ? 'partial_rotary_factor' : undefined;
  const pct = pctKey ? fraction(json[pctKey], pctKey, file) : p['partial_rotary_factor'] !== undefined ? fraction(p['partial_rotary_factor'], 'rope_parameters.partial_rotary_factor', file) : 0.25;
  const baseKey = json['rotary_emb_base'] !== undefined ? 'rotary_emb_base' : json['rope_theta'] !== undefined ? 'rope_theta' : undefined;
  const base = baseKey ? json[baseKey] : (p['rope_theta'] ?? 10000);
  if (typeof base !== 'number' || !(base > 1) || !Number.isFinite(base)) {
    bad(`"${baseKey ?? 'rope_parameters.rope_theta'}" (the rotary base) must be a number above 1, got ${JSON.stringify(base)}`, file, baseKey ?? 'rope_parameters');
  }
  return { pct, base };
}

/** Reads a Hugging Face GPT-NeoX config.json (already parsed) with HF's defaults. */
export function parseNeoxConfig(json: Record<string, unknown>, file: string): NeoxConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) bad('not a JSON object', file);
  if (json['model_type'] !== 'gpt_neox') bad(`model_type is ${JSON.stringify(json['model_type'])}, not "gpt_neox"`, file, 'model_type');
  for (const key of ['num_hidden_layers', 'num_attention_heads', 'hidden_size', 'intermediate_size']) {
    if (json[key] === undefined) {
      const gpt2 = ['n_layer', 'n_embd', 'n_head'].filter((k) => json[k] !== undefined);
      bad(
        `"${key}" is missing, which a model_type "gpt_neox" config needs` +
          (gpt2.length ? ` (the file has GPT-2's ${gpt2.join(', ')}: model_type and the rest of config.json disagree)` : ''),
        file,
        key,
      );
    }
  }
  const int = (key: keyof typeof LIMITS, fallback?: number): number => positiveInt(json, key, file, { fallback, max: LIMITS[key], arch: ARCH });
  const nLayer = int('num_hidden_layers');
  const nHead = int('num_attention_heads');
  const nEmbd = int('hidden_size');
  if (nEmbd % nHead !== 0) bad(`hidden_size (${nEmbd}) is not divisible by num_attention_heads (${nHead})`, file, 'hidden_size');
  const dHead = nEmbd / nHead;
  const dMlp = int('intermediate_size');
  const nPositions = int('max_position_embeddings', 2048);
  const vocabSize = int('vocab_size', 50432);
  const eps = layerNormEps(json, 'layer_norm_eps', file, 'Pythia');
  const act = json['hidden_act'] ?? 'gelu';
  if (typeof act !== 'string' || !(act in ACTIVATIONS)) {
    bad(`hidden_act ${JSON.stringify(act)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`, file, 'hidden_act');
  }
  const { pct, base } = rotary(json, file);
  // HF: int(head_size * rotary_pct); rotate_half pairs the two halves, so the count must be even.
  const rotaryDims = Math.floor(dHead * pct + 1e-9);
  if (rotaryDims % 2 !== 0) {
    bad(`rotary_pct ${pct} of a ${dHead}-wide head rotates ${rotaryDims} dimensions, an odd number; rotary embeddings rotate pairs`, file, 'rotary_pct');
  }
  return {
    modelType: 'gpt_neox',
    nLayer,
    nHead,
    nEmbd,
    dHead,
    dMlp,
    nPositions,
    vocabSize,
    layerNormEpsilon: eps,
    hiddenAct: act,
    activation: ACTIVATIONS[act]!,
    rotaryDims,
    rotaryPct: pct,
    rotaryBase: base as number,
    parallelResidual: bool(json, 'use_parallel_residual', true, file),
    attentionBias: bool(json, 'attention_bias', true, file),
    tieWordEmbeddings: bool(json, 'tie_word_embeddings', false, file),
  };
}

/** The tensors a GPT-NeoX forward needs, by HF name without the `gpt_neox.` prefix, with the shape config.json implies. */
export function neoxTensorShapes(cfg: NeoxConfig): Map<string, number[]> {
  const { nEmbd: d, dMlp: m, vocabSize: v } = cfg;
  const s = new Map<string, number[]>([['embed_in.weight', [v, d]]]);
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `layers.${l}.`;
    s.set(p + 'input_layernorm.weight', [d]);
    s.set(p + 'input_layernorm.bias', [d]);
    s.set(p + 'post_attention_layernorm.weight', [d]);
    s.set(p + 'post_attention_layernorm.bias', [d]);
    s.set(p + 'attention.query_key_value.weight', [3 * d, d]);
    if (cfg.attentionBias) s.set(p + 'attention.query_key_value.bias', [3 * d]);
    s.set(p + 'attention.dense.weight', [d, d]);
    if (cfg.attentionBias) s.set(p + 'attention.dense.bias', [d]);
    s.set(p + 'mlp.dense_h_to_4h.weight', [m, d]);
    s.set(p + 'mlp.dense_h_to_4h.bias', [m]);
    s.set(p + 'mlp.dense_4h_to_h.weight', [d, m]);
    s.set(p + 'mlp.dense_4h_to_h.bias', [d]);
  }
  s.set('final_layer_norm.weight', [d]);
  s.set('final_layer_norm.bias', [d]);
  if (!cfg.tieWordEmbeddings) s.set('embed_out.weight', [v, d]);
  return s;
}

/**
 * Buffers some transformers versions store per layer (the causal mask, its fill value, the rotary
 * inverse frequencies, which the graph recomputes from the config); not weights, ignored.
 */
const BUFFERS = /^(gpt_neox\.)?layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/;
const LAYER_OF = /^(?:gpt_neox\.)?layers\.(\d+)\./;
const ATTN_BIAS = /attention\.(query_key_value|dense)\.bias$/;

/**
 * Finds every tensor the forward needs — stored with the `gpt_neox.` prefix of GPTNeoXForCausalLM
 * or without it — and checks each shape and dtype against config.json. When the source lists its
 * names the check runs both ways: a layer beyond num_hidden_layers, or a tensor the architecture
 * does not use (e.g. attention biases under attention_bias: false), is refused.
 */
export function resolveNeoxWeights(cfg: NeoxConfig, source: WeightSource, file: string, configFile = 'config.json'): NeoxWeights {
  const names = source.names ? [...source.names()] : undefined;
  if (names) checkLayerCount(cfg, names, file, configFile);
  const stored = new Map<string, string>();
  for (const [name, want] of neoxTensorShapes(cfg)) {
    const candidates = name === 'embed_out.weight' ? [name] : ['gpt_neox.' + name, name];
    const found = candidates.find((c) => source.shape(c) !== undefined);
    if (found === undefined) {
      const why =
        name === 'embed_out.weight'
          ? ` (${configFile} sets tie_word_embeddings false, Pythia's default, so the unembedding must be stored)`
          : ATTN_BIAS.test(name)
            ? ` (${configFile}'s attention_bias is true, the default; set it false if the model has no attention biases)`
            : '';
      throw new EngineError(`${file}: tensor gpt_neox.${name} is missing${why}`, file, name);
    }
    const got = source.shape(found)!;
    if (got.length !== want.length || got.some((g, i) => g !== want[i])) {
      throw new EngineError(
        `${file}: tensor ${found} has shape ${shapeStr(got)}, but ${configFile} implies ${shapeStr(want)} ` +
          `(hidden_size=${cfg.nEmbd}, intermediate_size=${cfg.dMlp}, vocab_size=${cfg.vocabSize}, num_attention_heads=${cfg.nHead}); ` +
          `the weights and ${configFile} disagree: use the config the weights were saved with`,
        file,
        found,
      );
    }
    checkFloatDtype(source, found, file);
    stored.set(name, found);
  }
  if (names) {
    const used = new Set(stored.values());
    const extra = names.filter((n) => !used.has(n) && !BUFFERS.test(n) && !(n === 'embed_out.weight' && cfg.tieWordEmbeddings));
    if (extra.length > 0) {
      const shown = extra.slice(0, 5).map((n) => `"${n}"`).join(', ') + (extra.length > 5 ? `, ... (${extra.length} in all)` : '');
      const hint = !cfg.attentionBias && extra.some((n) => ATTN_BIAS.test(n)) ? ` (${configFile} sets attention_bias false, but the file holds attention biases)` : '';
      throw new EngineError(
        `${file}: holds tensors a GPT-NeoX with this ${configFile} does not use: ${shown}${hint}. ` +
          `The weights and ${configFile} disagree (or the file holds two copies of a tensor, with and without "gpt_neox."); use the config the weights were saved with`,
        file,
        extra[0],
      );
    }
  }
  return { config: cfg, source, stored };
}

function checkLayerCount(cfg: NeoxConfig, names: readonly string[], file: string, configFile: string): void {
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
  if (held !== cfg.nLayer) {
    throw new EngineError(
      `${configFile}: "num_hidden_layers" is ${cfg.nLayer}, but ${file} holds ${held} layer${held === 1 ? '' : 's'}` +
        `${held > 0 ? ` (e.g. tensor "${topName}")` : ''}; set num_hidden_layers to ${held} or use the config the weights were saved with`,
      configFile,
      held > cfg.nLayer ? topName : `layers.${held}`,
    );
  }
}

/** cos and sin of position·inv_freq for every position, as HF's rotary (cat(freqs, freqs)): [P, r] each. */
export function rotaryTables(cfg: Pick<NeoxConfig, 'nPositions' | 'rotaryDims' | 'rotaryBase'>): { cos: Float32Array; sin: Float32Array } {
  const { nPositions: P, rotaryDims: r, rotaryBase: base } = cfg;
  const half = r / 2;
  const cos = new Float32Array(P * r);
  const sin = new Float32Array(P * r);
  for (let i = 0; i < half; i++) {
    const invFreq = 1 / base ** ((2 * i) / r);
    for (let t = 0; t < P; t++) {
      const a = t * invFreq;
      cos[t * r + i] = cos[t * r + i + half] = Math.cos(a);
      sin[t * r + i] = sin[t * r + i + half] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** The GPT-NeoX forward as an ONNX graph; the options and outputs are those of common.ts. */
export function buildNeoxGraph(w: NeoxWeights, opts: GraphOptions): OnnxGraph {
  const cfg = w.config;
  checkGraphOptions('gpt_neox', cfg, opts);
  const g = new OnnxGraph('gpt_neox', OPSET);
  const { nEmbd: d, nHead: H, dHead: dh, rotaryDims: r } = cfg;
  const shapes = neoxTensorShapes(cfg);
  const W = (name: string): string => weightInitializer(g, w, shapes, name);

  const ids = g.input(INPUT_IDS, 'int64', ['batch', 'seq']);
  const idsShape = g.op('Shape', [ids]); // [batch, seq]
  const seq1 = g.op('Slice', [idsShape, g.constI64([1]), g.constI64([2])]); // [seq]
  const flat = g.constI64([-1, d]);
  const start = opts.startLayer ?? 0;
  // A suffix graph (startLayer) begins from the residual stream it is given.
  let x = start > 0 ? g.input(RESID_IN, 'float', ['tokens', d]) : g.op('Reshape', [g.op('Gather', [W('embed_in.weight'), ids]), flat]); // [B·S, d]

  const layerNorm = (input: string, prefix: string): string =>
    g.op('LayerNormalization', [input, W(prefix + '.weight'), W(prefix + '.bias')], { axis: { i: -1 }, epsilon: { f: cfg.layerNormEpsilon } });
  // nn.Linear: x·Wᵀ + b with W stored [out, in].
  const linear = (input: string, prefix: string, withBias: boolean, out?: string): string =>
    g.op('Gemm', withBias ? [input, W(prefix + '.weight'), W(prefix + '.bias')] : [input, W(prefix + '.weight')], { transB: { i: 1 } }, out);

  const mask = causalMask(g, cfg.nPositions, seq1);
  const heads = g.op('Concat', [idsShape, g.constI64([H, 3 * dh])], { axis: { i: 0 } }); // [B,S,H,3·dh]
  // Rotary tables sliced to [S, r]; broadcast over [B,H,S,r].
  let cosS = '';
  let sinS = '';
  if (r > 0) {
    const t = rotaryTables(cfg);
    const slice = (a: Float32Array): string => g.op('Slice', [g.constF32(a, [cfg.nPositions, r]), g.constI64([0]), seq1, g.constI64([0])]);
    cosS = slice(t.cos);
    sinS = slice(t.sin);
  }
  const rope = (t: string): string => {
    if (r === 0) return t;
    const [rot, pass] = r < dh ? (g.node('Split', [t, g.constI64([r, dh - r])], { axis: { i: -1 } }, { outputs: 2 }) as [string, string]) : [t, ''];
    const [x1, x2] = g.node('Split', [rot, g.constI64([r / 2, r / 2])], { axis: { i: -1 } }, { outputs: 2 }) as [string, string];
    const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: { i: -1 } });
    const out = g.op('Add', [g.op('Mul', [rot, cosS]), g.op('Mul', [rotated, sinS])]);
    return pass ? g.op('Concat', [out, pass], { axis: { i: -1 } }) : out;
  };
  const attention = (input: string, l: number): string => {
    const qkv = g.op('Reshape', [linear(input, `layers.${l}.attention.query_key_value`, cfg.attentionBias), heads]); // [B,S,H,3·dh]
    const [q, k, v] = g.node('Split', [qkv, g.constI64([dh, dh, dh])], { axis: { i: 3 } }, { outputs: 3 }) as [string, string, string];
    const bhsd = (t: string): string => g.op('Transpose', [t], { perm: { ints: [0, 2, 1, 3] } });
    const qr = rope(bhsd(q));
    const kr = rope(bhsd(k));
    const qk = g.op('MatMul', [qr, g.op('Transpose', [kr], { perm: { ints: [0, 1, 3, 2] } })]); // [B,H,S,S]
    const scaled = g.op('Mul', [qk, g.constF32([1 / Math.sqrt(dh)], [])]);
    const probs = g.op('Softmax', [g.op('Add', [scaled, mask])], { axis: { i: -1 } });
    const ctx = g.op('MatMul', [probs, bhsd(v)]); // [B,H,S,dh]
    const merged = g.op('Reshape', [g.op('Transpose', [ctx], { perm: { ints: [0, 2, 1, 3] } }), flat]);
    return linear(merged, `layers.${l}.attention.dense`, cfg.attentionBias);
  };

  const hooks = new MlpHooks(g, cfg, opts);
  for (let l = start; l < cfg.nLayer; l++) {
    const p = `layers.${l}`;
    const attn = attention(layerNorm(x, `${p}.input_layernorm`), l);
    const mlpIn = cfg.parallelResidual ? x : g.op('Add', [x, attn]);
    const { post, graph } = hooks.layer(l, (out) => linear(layerNorm(mlpIn, `${p}.post_attention_layernorm`), `${p}.mlp.dense_h_to_4h`, true, out));
    if (graph) return graph;
    const mlpOut = linear(post, `${p}.mlp.dense_4h_to_h`, true);
    x = cfg.parallelResidual ? g.op('Add', [g.op('Add', [x, attn]), mlpOut]) : g.op('Add', [mlpIn, mlpOut]);
    if (opts.residPost?.includes(l)) g.output(g.op('Identity', [x], {}, residPostName(l)), 'float', ['tokens', d]);
  }

  // The unembedding [V, d], read as stored by Gemm's transB (tied: embed_in's buffer).
  const head = W(cfg.tieWordEmbeddings ? 'embed_in.weight' : 'embed_out.weight');
  return hooks.head(x, layerNorm(x, 'final_layer_norm'), head);
}
