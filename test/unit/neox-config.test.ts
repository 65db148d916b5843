// GPT-NeoX config.json and weights: HF's defaults and key names, the architecture chosen by
// model_type, and every refusal naming the file and the field or tensor (arch/gpt_neox.ts,
// arch/index.ts).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { WeightSource } from '../../src/engine/arch/common';
import { neoxTensorShapes, parseNeoxConfig, resolveNeoxWeights, rotaryTables, type NeoxConfig } from '../../src/engine/arch/gpt_neox';
import { parseModelConfig, SUPPORTED_MODEL_TYPES } from '../../src/engine/arch/index';
import { EngineError } from '../../src/engine/errors';
import { openModel } from '../../src/engine/runtime';

const FILE = '/m/config.json';
const W = '/m/model.safetensors';
// pythia-160m's config.json, as on the hub.
const PYTHIA_160M = {
  architectures: ['GPTNeoXForCausalLM'], bos_token_id: 0, eos_token_id: 0, hidden_act: 'gelu', hidden_size: 768, initializer_range: 0.02,
  intermediate_size: 3072, layer_norm_eps: 1e-5, max_position_embeddings: 2048, model_type: 'gpt_neox', num_attention_heads: 12,
  num_hidden_layers: 12, rotary_emb_base: 10000, rotary_pct: 0.25, tie_word_embeddings: false, torch_dtype: 'float16',
  transformers_version: '4.24.0', use_cache: true, use_parallel_residual: true, vocab_size: 50304,
};
const SMALL = { model_type: 'gpt_neox', num_hidden_layers: 2, num_attention_heads: 2, hidden_size: 16, intermediate_size: 12, vocab_size: 20, max_position_embeddings: 16 };

function rejects(json: Record<string, unknown>, pattern: RegExp, field?: string): void {
  assert.throws(() => parseModelConfig(json, FILE), (e: unknown) => {
    assert.ok(e instanceof EngineError, String(e));
    assert.ok(e.message.startsWith(FILE + ': '), e.message);
    assert.match(e.message, pattern);
    if (field) assert.equal(e.tensor, field);
    return true;
  });
}

function source(cfg: NeoxConfig, edit: (m: Map<string, number[]>) => void = () => {}, prefix = 'gpt_neox.'): WeightSource {
  const m = new Map<string, number[]>();
  for (const [k, v] of neoxTensorShapes(cfg)) m.set(k === 'embed_out.weight' ? k : prefix + k, v);
  edit(m);
  return { shape: (n) => m.get(n), read: (n) => new Float32Array(m.get(n)!.reduce((a, b) => a * b, 1)), names: () => m.keys() };
}

function rejectsWeights(cfg: NeoxConfig, src: WeightSource, tensor: string, pattern: RegExp): void {
  assert.throws(() => resolveNeoxWeights(cfg, src, W, FILE), (e: unknown) => {
    assert.ok(e instanceof EngineError, String(e));
    assert.ok(e.message.includes(W) || e.message.includes(FILE), e.message);
    assert.match(e.message, pattern);
    assert.equal(e.tensor, tensor);
    return true;
  });
}

describe('GPT-NeoX config.json', () => {
  test("pythia-160m's config: HF's names and defaults", () => {
    const c = parseModelConfig(PYTHIA_160M, FILE) as NeoxConfig;
    assert.equal(c.modelType, 'gpt_neox');
    assert.deepEqual(
      [c.nLayer, c.nHead, c.nEmbd, c.dHead, c.dMlp, c.nPositions, c.vocabSize, c.rotaryDims, c.rotaryBase],
      [12, 12, 768, 64, 3072, 2048, 50304, 16, 10000],
    );
    assert.equal(c.activation, 'gelu_erf');
    assert.equal(c.parallelResidual, true);
    assert.equal(c.attentionBias, true);
    assert.equal(c.tieWordEmbeddings, false);
    // Defaults: rotary_pct 0.25, base 10000, parallel residual, attention biases, untied, gelu.
    const d = parseNeoxConfig(SMALL, FILE);
    assert.deepEqual([d.rotaryPct, d.rotaryBase, d.rotaryDims, d.parallelResidual, d.attentionBias, d.tieWordEmbeddings, d.hiddenAct], [0.25, 10000, 2, true, true, false, 'gelu']);
  });

  test("newer transformers' rotary names: partial_rotary_factor / rope_theta, and rope_parameters", () => {
    const a = parseNeoxConfig({ ...PYTHIA_160M, rotary_pct: undefined, rotary_emb_base: undefined, partial_rotary_factor: 0.5, rope_theta: 500 }, FILE);
    assert.deepEqual([a.rotaryDims, a.rotaryBase], [32, 500]);
    const b = parseNeoxConfig({ ...PYTHIA_160M, rotary_pct: undefined, rotary_emb_base: undefined, rope_parameters: { rope_type: 'default', rope_theta: 20, partial_rotary_factor: 1 } }, FILE);
    assert.deepEqual([b.rotaryDims, b.rotaryBase], [64, 20]);
    assert.equal(parseNeoxConfig({ ...PYTHIA_160M, hidden_act: 'gelu_new' }, FILE).activation, 'gelu_tanh');
  });

  test('rotary tables: cos/sin of position·base^(−2i/r), the two halves equal', () => {
    const t = rotaryTables({ nPositions: 3, rotaryDims: 4, rotaryBase: 100 });
    const at = (a: Float32Array, p: number, i: number) => a[p * 4 + i]!;
    assert.ok(Math.abs(at(t.cos, 2, 1) - Math.cos(2 / 10)) < 1e-7);
    assert.ok(Math.abs(at(t.sin, 2, 3) - Math.sin(2 / 10)) < 1e-7);
    assert.equal(at(t.cos, 0, 0), 1);
  });

  test('an unsupported or missing model_type names config.json and lists the supported ones', () => {
    assert.deepEqual(SUPPORTED_MODEL_TYPES, ['gpt2', 'gpt_neox']);
    rejects({ ...SMALL, model_type: 'llama' }, /model_type is "llama", which is not supported; the supported architectures are "gpt2" \(GPT-2\), "gpt_neox" \(GPT-NeoX \(Pythia\)\)/, 'model_type');
    rejects({ ...SMALL, model_type: 'constructor' }, /model_type is "constructor", which is not supported/);
    const { model_type: _t, ...none } = SMALL;
    rejects(none, /"model_type" is missing; the supported architectures are "gpt2" .*"gpt_neox"/);
  });

  test('bad values are refused, naming the field', () => {
    rejects({ ...SMALL, hidden_size: 9 }, /hidden_size \(9\) is not divisible by num_attention_heads \(2\)/, 'hidden_size');
    rejects({ ...SMALL, intermediate_size: undefined }, /"intermediate_size" is missing, which a model_type "gpt_neox" config needs/, 'intermediate_size');
    // A GPT-2 config whose model_type says gpt_neox: the message names model_type and the keys that disagree.
    rejects({ model_type: 'gpt_neox', n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16 }, /"num_hidden_layers" is missing, which a model_type "gpt_neox" config needs \(the file has GPT-2's n_layer, n_embd, n_head: model_type and the rest of config\.json disagree\)/, 'num_hidden_layers');
    rejects({ ...SMALL, num_hidden_layers: 1e9 }, /"num_hidden_layers" is 1000000000, which is absurd for a GPT-NeoX/, 'num_hidden_layers');
    rejects({ ...SMALL, hidden_act: 'swish' }, /hidden_act "swish" is not supported \(supported: gelu_new, .*gelu, relu\)/, 'hidden_act');
    rejects({ ...SMALL, rotary_pct: 1.5 }, /"rotary_pct" must be a number from 0 to 1, got 1\.5/, 'rotary_pct');
    rejects({ ...SMALL, rotary_pct: 0.375 }, /rotary_pct 0\.375 of a 8-wide head rotates 3 dimensions, an odd number/, 'rotary_pct');
    rejects({ ...SMALL, rotary_emb_base: 0 }, /"rotary_emb_base" \(the rotary base\) must be a number above 1/, 'rotary_emb_base');
    rejects({ ...SMALL, rope_scaling: { type: 'linear', factor: 2 } }, /scaled rotary embeddings \(rope_scaling .*linear.*\) are not supported/, 'rope_scaling');
    rejects({ ...SMALL, use_parallel_residual: 'yes' }, /"use_parallel_residual" must be true or false/, 'use_parallel_residual');
    rejects({ ...SMALL, layer_norm_eps: 1e5 }, /"layer_norm_eps" is 100000, which is absurd/, 'layer_norm_eps');
  });
});

describe('GPT-NeoX weights against config.json', () => {
  const cfg = parseNeoxConfig(SMALL, FILE);

  test('found with or without the gpt_neox. prefix; HF buffers ignored; every shape implied by the config', () => {
    const w = resolveNeoxWeights(cfg, source(cfg), W, FILE);
    assert.equal(w.stored.get('layers.1.attention.query_key_value.weight'), 'gpt_neox.layers.1.attention.query_key_value.weight');
    assert.equal(w.stored.get('embed_out.weight'), 'embed_out.weight');
    const bare = resolveNeoxWeights(cfg, source(cfg, (m) => m.set('layers.0.attention.rotary_emb.inv_freq', [1]).set('layers.0.attention.bias', [1, 1, 16, 16]), ''), W, FILE);
    assert.equal(bare.stored.get('final_layer_norm.weight'), 'final_layer_norm.weight');
    assert.deepEqual(neoxTensorShapes(cfg).get('layers.0.attention.query_key_value.weight'), [48, 16]);
    assert.deepEqual(neoxTensorShapes(cfg).get('layers.0.mlp.dense_h_to_4h.weight'), [12, 16]);
  });

  test('shape disagreements name the file, the tensor and the config values', () => {
    rejectsWeights(cfg, source(cfg, (m) => m.set('gpt_neox.layers.1.mlp.dense_h_to_4h.weight', [16, 16])), 'gpt_neox.layers.1.mlp.dense_h_to_4h.weight',
      /model\.safetensors: tensor gpt_neox\.layers\.1\.mlp\.dense_h_to_4h\.weight has shape \[16, 16\], but \/m\/config\.json implies \[12, 16\] \(hidden_size=16, intermediate_size=12, vocab_size=20/);
    // Pythia pads the vocabulary: embed_in's rows must equal vocab_size.
    rejectsWeights(cfg, source(cfg, (m) => m.set('gpt_neox.embed_in.weight', [24, 16])), 'gpt_neox.embed_in.weight', /\[24, 16\].*implies \[20, 16\]/);
    // A GPT-2-style [in, out] layout is caught.
    rejectsWeights(cfg, source(cfg, (m) => m.set('gpt_neox.layers.0.attention.query_key_value.weight', [16, 48])), 'gpt_neox.layers.0.attention.query_key_value.weight', /\[16, 48\].*\[48, 16\]/);
  });

  test('attention_bias, embed_out and the layer count are checked both ways', () => {
    rejectsWeights(cfg, source(cfg, (m) => m.delete('gpt_neox.layers.0.attention.dense.bias')), 'layers.0.attention.dense.bias', /attention_bias is true, the default; set it false/);
    const noBias = parseNeoxConfig({ ...SMALL, attention_bias: false }, FILE);
    rejectsWeights(noBias, source(cfg), 'gpt_neox.layers.0.attention.query_key_value.bias', /does not use: .*attention\.query_key_value\.bias.*sets attention_bias false, but the file holds attention biases/);
    rejectsWeights(cfg, source(cfg, (m) => m.delete('embed_out.weight')), 'embed_out.weight', /embed_out\.weight is missing \(.*tie_word_embeddings false/);
    const tied = parseNeoxConfig({ ...SMALL, tie_word_embeddings: true }, FILE);
    assert.equal(resolveNeoxWeights(tied, source(tied), W, FILE).stored.has('embed_out.weight'), false);
    const three = parseNeoxConfig({ ...SMALL, num_hidden_layers: 3 }, FILE);
    assert.throws(() => resolveNeoxWeights(three, source(cfg), W, FILE), /config\.json: "num_hidden_layers" is 3, but \/m\/model\.safetensors holds 2 layers/);
    const one = parseNeoxConfig({ ...SMALL, num_hidden_layers: 1 }, FILE);
    assert.throws(() => resolveNeoxWeights(one, source(cfg), W, FILE), /"num_hidden_layers" is 1, but .* holds 2 layers \(e\.g\. tensor "gpt_neox\.layers\.1\./);
  });
});

describe('openModel on edited copies of a GPT-NeoX fixture', () => {
  const FIXTURE = join(__dirname, '..', 'fixtures', 'neox-tiny-seq');
  async function withCopy(edit: (dir: string) => void, pattern: RegExp, tensor?: string): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'un-neox-bad-'));
    try {
      cpSync(FIXTURE, dir, { recursive: true });
      edit(dir);
      await assert.rejects(openModel(dir, { threads: 1 }), (e: unknown) => {
        assert.ok(e instanceof EngineError, String(e));
        assert.match(e.message, pattern);
        if (tensor) assert.equal(e.tensor, tensor);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const editConfig = (dir: string, patch: Record<string, unknown>): void => {
    const p = join(dir, 'config.json');
    writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), ...patch }));
  };

  test('config.json and the weights disagree', async () => {
    await withCopy((d) => editConfig(d, { intermediate_size: 256 }), /model\.safetensors: tensor layers\.0\.mlp\.dense_h_to_4h\.weight has shape \[192, 64\], but .*config\.json implies \[256, 64\]/, 'layers.0.mlp.dense_h_to_4h.weight');
    await withCopy((d) => editConfig(d, { attention_bias: true }), /tensor gpt_neox\.layers\.0\.attention\.query_key_value\.bias is missing \(.*attention_bias is true/);
    await withCopy((d) => editConfig(d, { vocab_size: 400 }), /tokenizer has token id 480 .* vocab_size is 400/);
    await withCopy((d) => editConfig(d, { model_type: 'gpt_neo' }), /config\.json: model_type is "gpt_neo", which is not supported; the supported architectures are "gpt2" \(GPT-2\), "gpt_neox"/);
  });
});
