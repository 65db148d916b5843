/**
 * The architectures the engine runs, chosen by config.json's `model_type`. Shared code (runtime,
 * validation, the weight-based analyses) goes through this module and `common.ts`, never through
 * one architecture's module, so a new architecture is one file in `arch/` and one entry below.
 */
import { EngineError } from '../errors';
import type { OnnxGraph } from '../onnx';
import { type GraphOptions, readWeight, type ResolvedWeights, type WeightSource } from './common';
import { buildGpt2Graph, type Gpt2Config, type Gpt2Weights, parseGpt2Config, resolveGpt2Weights } from './gpt2';
import { buildNeoxGraph, type NeoxConfig, type NeoxWeights, parseNeoxConfig, resolveNeoxWeights } from './gpt_neox';

export type ArchConfig = Gpt2Config | NeoxConfig;
export type ArchWeights = Gpt2Weights | NeoxWeights;

/**
 * One layer's MLP as TransformerLens reads it, whatever the stored layout: the LayerNorm before
 * it, W_in [d_model × d_mlp] (neuron n is column n), b_in, W_out [d_mlp × d_model] (neuron n is
 * row n). GPT-2's Conv1D stores these layouts; GPT-NeoX's nn.Linear stores their transposes.
 */
export interface MlpTensors {
  lnWeight: Float32Array;
  lnBias: Float32Array;
  wIn: Float32Array;
  bIn: Float32Array;
  wOut: Float32Array;
  bOut: Float32Array;
}

/**
 * One layer's attention in TransformerLens' layout, whatever the stored one: the LayerNorm before
 * it, W_Q/W_K/W_V [d_model × d_model] with head h's d_head columns at h·d_head (TransformerLens'
 * [H, d_model, d_head] flattened), their biases [d_model] (zeros without attention biases), W_O
 * [d_model × d_model] with head h's input rows at h·d_head, b_O. GPT-2 stores Q|K|V side by side
 * in c_attn; GPT-NeoX's fused query_key_value interleaves them per head, as nn.Linear rows.
 */
export interface AttentionTensors {
  lnWeight: Float32Array;
  lnBias: Float32Array;
  wQ: Float32Array;
  wK: Float32Array;
  wV: Float32Array;
  bQ: Float32Array;
  bK: Float32Array;
  bV: Float32Array;
  wO: Float32Array;
  bO: Float32Array;
}

interface Architecture {
  /** How messages name it. */
  label: string;
  parse(json: Record<string, unknown>, file: string): ArchConfig;
  resolve(cfg: ArchConfig, source: WeightSource, file: string, configFile: string): ArchWeights;
  graph(w: ArchWeights, opts: GraphOptions): OnnxGraph;
  mlp(w: ArchWeights, layer: number): MlpTensors;
  attention(w: ArchWeights, layer: number): AttentionTensors;
  /** The residual stream entering layer 0 at position 0 for `token` (token + position-0 embedding). */
  embedAtStart(w: ArchWeights, token: number): Float64Array;
  /** Whether attention and MLP both read the layer's input (GPT-NeoX's use_parallel_residual). */
  parallel(w: ArchWeights): boolean;
  /** The unembedding [V × d_model] as the forward uses it (tied: the embedding) and the final LayerNorm's weight and bias (no architecture here has an unembedding bias). */
  unembed(w: ArchWeights): Unembed;
  /** Rotary positions on q and k (Rotary), or null when positions enter otherwise (GPT-2's wpe). */
  rotary(w: ArchWeights): Rotary | null;
}

/** The LM head as the forward applies it: logits = LayerNorm(resid; lnWeight, lnBias) · rowsᵀ. */
export interface Unembed {
  rows: Float32Array;
  lnWeight: Float32Array;
  lnBias: Float32Array;
}

/**
 * Rotary embeddings as GPT-NeoX applies them to each head's q and k: the first `dims` of its
 * d_head dimensions, dimension j < dims/2 paired with j + dims/2 and turned by position·θ_j,
 * θ_j = base^(−2j/dims) (HF rotate_half).
 */
export interface Rotary {
  dims: number;
  base: number;
}

/** [r × c] row-major → [c × r]. */
function transpose(a: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j]!;
  return out;
}

const ARCHITECTURES: Record<string, Architecture> = {
  gpt2: {
    label: 'GPT-2',
    parse: (json, file) => parseGpt2Config(json, file),
    resolve: (cfg, source, file, configFile) => resolveGpt2Weights(cfg as Gpt2Config, source, file, configFile),
    graph: (w, opts) => buildGpt2Graph(w as Gpt2Weights, opts),
    mlp: (w, l) => ({
      lnWeight: readWeight(w, `h.${l}.ln_2.weight`),
      lnBias: readWeight(w, `h.${l}.ln_2.bias`),
      wIn: readWeight(w, `h.${l}.mlp.c_fc.weight`),
      bIn: readWeight(w, `h.${l}.mlp.c_fc.bias`),
      wOut: readWeight(w, `h.${l}.mlp.c_proj.weight`),
      bOut: readWeight(w, `h.${l}.mlp.c_proj.bias`),
    }),
    attention: (w, l) => {
      const d = w.config.nEmbd;
      const W = readWeight(w, `h.${l}.attn.c_attn.weight`); // Conv1D [d, 3d]: Q | K | V columns
      const b = readWeight(w, `h.${l}.attn.c_attn.bias`);
      const part = (p: number): Float32Array => {
        const out = new Float32Array(d * d);
        for (let i = 0; i < d; i++) out.set(W.subarray(i * 3 * d + p * d, i * 3 * d + (p + 1) * d), i * d);
        return out;
      };
      return {
        lnWeight: readWeight(w, `h.${l}.ln_1.weight`),
        lnBias: readWeight(w, `h.${l}.ln_1.bias`),
        wQ: part(0),
        wK: part(1),
        wV: part(2),
        bQ: b.slice(0, d),
        bK: b.slice(d, 2 * d),
        bV: b.slice(2 * d),
        wO: readWeight(w, `h.${l}.attn.c_proj.weight`),
        bO: readWeight(w, `h.${l}.attn.c_proj.bias`),
      };
    },
    embedAtStart: (w, token) => {
      const d = w.config.nEmbd;
      const wte = readWeight(w, 'wte.weight');
      const wpe = readWeight(w, 'wpe.weight');
      return Float64Array.from({ length: d }, (_, i) => wte[token * d + i]! + wpe[i]!);
    },
    parallel: () => false,
    unembed: (w) => ({
      rows: readWeight(w, (w.config as Gpt2Config).tieWordEmbeddings ? 'wte.weight' : 'lm_head.weight'),
      lnWeight: readWeight(w, 'ln_f.weight'),
      lnBias: readWeight(w, 'ln_f.bias'),
    }),
    rotary: () => null,
  },
  gpt_neox: {
    label: 'GPT-NeoX (Pythia)',
    parse: (json, file) => parseNeoxConfig(json, file),
    resolve: (cfg, source, file, configFile) => resolveNeoxWeights(cfg as NeoxConfig, source, file, configFile),
    graph: (w, opts) => buildNeoxGraph(w as NeoxWeights, opts),
    mlp: (w, l) => {
      const { nEmbd: d, dMlp: m } = w.config;
      const p = `layers.${l}.`;
      return {
        lnWeight: readWeight(w, p + 'post_attention_layernorm.weight'),
        lnBias: readWeight(w, p + 'post_attention_layernorm.bias'),
        wIn: transpose(readWeight(w, p + 'mlp.dense_h_to_4h.weight'), m, d), // [m, d] → [d, m]
        bIn: readWeight(w, p + 'mlp.dense_h_to_4h.bias'),
        wOut: transpose(readWeight(w, p + 'mlp.dense_4h_to_h.weight'), d, m), // [d, m] → [m, d]
        bOut: readWeight(w, p + 'mlp.dense_4h_to_h.bias'),
      };
    },
    attention: (w, l) => {
      const cfg = w.config as NeoxConfig;
      const { nEmbd: d, nHead: H, dHead: dh } = cfg;
      const p = `layers.${l}.attention.`;
      // nn.Linear [3d, d]; output row h·3·d_head + {0, d_head, 2·d_head} + k is head h's q, k, v column k.
      const W = readWeight(w, p + 'query_key_value.weight');
      const b = cfg.attentionBias ? readWeight(w, p + 'query_key_value.bias') : new Float32Array(3 * d);
      const part = (which: number): { W: Float32Array; b: Float32Array } => {
        const out = new Float32Array(d * d);
        const bias = new Float32Array(d);
        for (let h = 0; h < H; h++) {
          for (let k = 0; k < dh; k++) {
            const row = h * 3 * dh + which * dh + k;
            const col = h * dh + k;
            for (let i = 0; i < d; i++) out[i * d + col] = W[row * d + i]!;
            bias[col] = b[row]!;
          }
        }
        return { W: out, b: bias };
      };
      const q = part(0);
      const k = part(1);
      const v = part(2);
      return {
        lnWeight: readWeight(w, `layers.${l}.input_layernorm.weight`),
        lnBias: readWeight(w, `layers.${l}.input_layernorm.bias`),
        wQ: q.W,
        wK: k.W,
        wV: v.W,
        bQ: q.b,
        bK: k.b,
        bV: v.b,
        wO: transpose(readWeight(w, p + 'dense.weight'), d, d), // [out, in] → [in, out]
        bO: cfg.attentionBias ? readWeight(w, p + 'dense.bias') : new Float32Array(d),
      };
    },
    // Rotary positions: no position embedding is added.
    embedAtStart: (w, token) => {
      const d = w.config.nEmbd;
      return Float64Array.from(readWeight(w, 'embed_in.weight').subarray(token * d, (token + 1) * d));
    },
    parallel: (w) => (w.config as NeoxConfig).parallelResidual,
    unembed: (w) => ({
      rows: readWeight(w, (w.config as NeoxConfig).tieWordEmbeddings ? 'embed_in.weight' : 'embed_out.weight'),
      lnWeight: readWeight(w, 'final_layer_norm.weight'),
      lnBias: readWeight(w, 'final_layer_norm.bias'),
    }),
    rotary: (w) => {
      const c = w.config as NeoxConfig;
      return c.rotaryDims > 0 ? { dims: c.rotaryDims, base: c.rotaryBase } : null;
    },
  },
};

/** The model_type values the engine runs, for messages. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

const supportedList = (): string => Object.entries(ARCHITECTURES).map(([k, a]) => `"${k}" (${a.label})`).join(', ');

function archOf(modelType: string): Architecture {
  const a = ARCHITECTURES[modelType];
  if (!a) throw new Error(`no architecture ${modelType}`);
  return a;
}

/** Parses config.json (already read as JSON) with the architecture its model_type names. */
export function parseModelConfig(json: Record<string, unknown>, file: string): ArchConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new EngineError(`${file}: not a JSON object`, file);
  const t = json['model_type'];
  if (t === undefined) {
    throw new EngineError(`${file}: "model_type" is missing; the supported architectures are ${supportedList()}`, file, 'model_type');
  }
  const arch = typeof t === 'string' && Object.hasOwn(ARCHITECTURES, t) ? ARCHITECTURES[t] : undefined;
  if (!arch) {
    throw new EngineError(
      `${file}: model_type is ${JSON.stringify(t)}, which is not supported; the supported architectures are ${supportedList()}`,
      file,
      'model_type',
    );
  }
  return arch.parse(json, file);
}

/** Finds and checks the tensors of `cfg`'s architecture in `source` (see resolveGpt2Weights, resolveNeoxWeights). */
export function resolveWeights(cfg: ArchConfig, source: WeightSource, file: string, configFile = 'config.json'): ArchWeights {
  return archOf(cfg.modelType).resolve(cfg, source, file, configFile);
}

/** The forward of `w`'s architecture as an ONNX graph (names and variants: common.ts). */
export function buildGraph(w: ArchWeights, opts: GraphOptions): OnnxGraph {
  return archOf(w.config.modelType).graph(w, opts);
}

/** Layer `layer`'s MLP and the LayerNorm before it, in TransformerLens' layout (MlpTensors). */
export function mlpTensors(w: ResolvedWeights, layer: number): MlpTensors {
  return archOf(w.config.modelType).mlp(w as ArchWeights, layer);
}

/** Layer `layer`'s attention and the LayerNorm before it, in TransformerLens' layout (AttentionTensors). */
export function attentionTensors(w: ResolvedWeights, layer: number): AttentionTensors {
  return archOf(w.config.modelType).attention(w as ArchWeights, layer);
}

/** The residual stream entering layer 0 at position 0 for `token`. */
export function embedAtStart(w: ResolvedWeights, token: number): Float64Array {
  return archOf(w.config.modelType).embedAtStart(w as ArchWeights, token);
}

/** Whether attention and MLP read the same layer input (parallel residual). */
export function parallelResidual(w: ResolvedWeights): boolean {
  return archOf(w.config.modelType).parallel(w as ArchWeights);
}

/** The unembedding rows [V × d_model] and the final LayerNorm's weight and bias. */
export function unembedTensors(w: ResolvedWeights): Unembed {
  return archOf(w.config.modelType).unembed(w as ArchWeights);
}

/** The rotary embedding of q and k, or null for an architecture without one. */
export function rotaryOf(w: ResolvedWeights): Rotary | null {
  return archOf(w.config.modelType).rotary(w as ArchWeights);
}

/** The label of an architecture (messages): "GPT-2", "GPT-NeoX (Pythia)". */
export function architectureLabel(modelType: string): string {
  return ARCHITECTURES[modelType]?.label ?? modelType;
}
