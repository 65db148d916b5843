// GPT-2 config.json and weight validation: every bad input gets an EngineError that says what is
// wrong and where (file, tensor, both shapes).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gpt2TensorShapes, Gpt2Config, parseGpt2Config, resolveGpt2Weights, WeightSource } from '../../src/engine/arch/gpt2';
import { EngineError } from '../../src/engine/errors';
import { openModel } from '../../src/engine/runtime';
import { writeSafetensors } from '../helpers/safetensors-writer';

const FILE = '/models/x/config.json';
const BASE = { model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 50 };

function rejects(json: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(
    () => parseGpt2Config(json, FILE),
    (e: unknown) => {
      assert.ok(e instanceof EngineError, `expected EngineError, got ${String(e)}`);
      assert.match(e.message, pattern);
      assert.match(e.message, /config\.json/);
      assert.equal(e.file, FILE);
      return true;
    },
  );
}

/** A WeightSource holding zeros of exactly the shapes a config implies, with edits. */
function source(cfg: Gpt2Config, edit: (m: Map<string, number[]>) => void = () => {}): WeightSource {
  const m = new Map<string, number[]>(gpt2TensorShapes(cfg));
  edit(m);
  return { shape: (n) => m.get(n), read: (n) => new Float32Array(m.get(n)!.reduce((a, b) => a * b, 1)) };
}

describe('parseGpt2Config', () => {
  test('applies Hugging Face defaults', () => {
    const c = parseGpt2Config(BASE, FILE);
    assert.equal(c.dMlp, 32); // n_inner absent: 4 * n_embd
    assert.equal(c.dHead, 4);
    assert.equal(c.layerNormEpsilon, 1e-5);
    assert.equal(c.activationFunction, 'gelu_new');
    assert.equal(c.activation, 'gelu_tanh');
    assert.equal(c.scaleAttnWeights, true);
    assert.equal(c.scaleAttnByInverseLayerIdx, false);
    assert.equal(c.reorderAndUpcastAttn, false);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(parseGpt2Config({ ...BASE, n_inner: null }, FILE).dMlp, 32);
  });

  test('honours every field it reads', () => {
    const c = parseGpt2Config(
      {
        ...BASE,
        n_inner: 20,
        layer_norm_epsilon: 1e-3,
        activation_function: 'gelu',
        scale_attn_weights: false,
        scale_attn_by_inverse_layer_idx: true,
        reorder_and_upcast_attn: true,
        tie_word_embeddings: false,
      },
      FILE,
    );
    assert.deepEqual(
      [c.dMlp, c.layerNormEpsilon, c.activation, c.scaleAttnWeights, c.scaleAttnByInverseLayerIdx, c.reorderAndUpcastAttn, c.tieWordEmbeddings],
      [20, 1e-3, 'gelu_erf', false, true, true, false],
    );
    assert.equal(parseGpt2Config({ ...BASE, activation_function: 'relu' }, FILE).activation, 'relu');
    const { n_positions: _drop, ...old } = BASE;
    assert.equal(parseGpt2Config({ ...old, n_ctx: 24 }, FILE).nPositions, 24); // pre-2020 configs
  });

  test('refuses other architectures', () => {
    rejects({ ...BASE, model_type: 'gpt_neox' }, /model_type is "gpt_neox"; only GPT-2/);
    const { model_type: _m, ...noType } = BASE;
    rejects(noType, /"model_type" is missing/);
  });

  test('refuses n_embd not divisible by n_head', () => {
    rejects({ ...BASE, n_embd: 10, n_head: 4 }, /n_embd \(10\) is not divisible by n_head \(4\)/);
  });

  test('refuses an unknown activation_function and lists the supported ones', () => {
    rejects({ ...BASE, activation_function: 'swiglu' }, /activation_function "swiglu" is not supported \(supported: gelu_new, .*relu\)/);
  });

  test('refuses missing or malformed numbers and flags', () => {
    const { n_layer: _l, ...noLayers } = BASE;
    rejects(noLayers, /"n_layer" is missing/);
    rejects({ ...BASE, n_head: 0 }, /"n_head" must be a positive integer, got 0/);
    rejects({ ...BASE, n_embd: '8' }, /"n_embd" must be a positive integer, got "8"/);
    rejects({ ...BASE, n_inner: 2.5 }, /"n_inner" must be a positive integer/);
    rejects({ ...BASE, layer_norm_epsilon: -1 }, /"layer_norm_epsilon" must be a positive number/);
    rejects({ ...BASE, scale_attn_by_inverse_layer_idx: 'yes' }, /"scale_attn_by_inverse_layer_idx" must be true or false/);
  });
});

describe('resolveGpt2Weights', () => {
  const cfg = parseGpt2Config(BASE, FILE);
  const W = '/models/x/model.safetensors';

  function rejectsWeights(c: Gpt2Config, src: WeightSource, tensor: string, pattern: RegExp): void {
    assert.throws(
      () => resolveGpt2Weights(c, src, W),
      (e: unknown) => {
        assert.ok(e instanceof EngineError);
        assert.match(e.message, pattern);
        assert.equal(e.tensor, tensor);
        assert.equal(e.file, W);
        return true;
      },
    );
  }

  test('accepts names with or without the transformer. prefix, and ignores mask buffers', () => {
    assert.equal(resolveGpt2Weights(cfg, source(cfg), W).stored.get('h.1.mlp.c_fc.weight'), 'h.1.mlp.c_fc.weight');
    const prefixed = source(cfg, (m) => {
      for (const [k, v] of [...m]) {
        m.delete(k);
        m.set('transformer.' + k, v);
      }
      m.set('transformer.h.0.attn.bias', [1, 1, 16, 16]);
      m.set('transformer.h.0.attn.masked_bias', []);
    });
    const w = resolveGpt2Weights(cfg, prefixed, W);
    assert.equal(w.stored.get('wte.weight'), 'transformer.wte.weight');
    const used = [...w.stored.values()];
    assert.ok(!used.includes('transformer.h.0.attn.bias') && !used.includes('transformer.h.0.attn.masked_bias'));
  });

  test('a missing tensor is named', () => {
    rejectsWeights(cfg, source(cfg, (m) => m.delete('h.1.ln_2.bias')), 'h.1.ln_2.bias', /tensor h\.1\.ln_2\.bias is missing/);
  });

  test('a shape that contradicts config.json names the tensor and both shapes', () => {
    rejectsWeights(
      cfg,
      source(cfg, (m) => m.set('h.0.mlp.c_fc.weight', [8, 24])),
      'h.0.mlp.c_fc.weight',
      /h\.0\.mlp\.c_fc\.weight has shape \[8, 24\], but config\.json implies \[8, 32\]/,
    );
    rejectsWeights(cfg, source(cfg, (m) => m.set('wte.weight', [50257, 8])), 'wte.weight', /\[50257, 8\].*\[50, 8\]/);
    // Conv1D layout is [in, out]; a Linear-style [out, in] weight is caught.
    rejectsWeights(cfg, source(cfg, (m) => m.set('h.0.attn.c_attn.weight', [24, 8])), 'h.0.attn.c_attn.weight', /\[24, 8\].*\[8, 24\]/);
  });

  test('untied: lm_head.weight is required and checked; tied: it is not needed', () => {
    const untied = parseGpt2Config({ ...BASE, tie_word_embeddings: false }, FILE);
    rejectsWeights(untied, source(cfg), 'lm_head.weight', /lm_head\.weight is missing \(config\.json sets tie_word_embeddings: false/);
    rejectsWeights(untied, source(untied, (m) => m.set('lm_head.weight', [8, 50])), 'lm_head.weight', /\[8, 50\].*\[50, 8\]/);
    assert.equal(resolveGpt2Weights(untied, source(untied), W).stored.get('lm_head.weight'), 'lm_head.weight');
    assert.equal(resolveGpt2Weights(cfg, source(cfg), W).stored.has('lm_head.weight'), false);
  });
});

describe('openModel on broken checkpoints', () => {
  const FIXTURE = join(__dirname, '..', 'fixtures', 'gpt2-tiny-relu');

  async function withCopy(edit: (dir: string) => void, pattern: RegExp, tensor?: string): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'un-gpt2-bad-'));
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

  test('config inconsistent with the stored tensors', async () => {
    await withCopy((d) => editConfig(d, { n_inner: 48 }), /h\.0\.mlp\.c_fc\.weight has shape \[8, 32\], but config\.json implies \[8, 48\]/, 'h.0.mlp.c_fc.weight');
    // n_layer beyond the stored layers is named as a layer count, before any tensor is looked up.
    await withCopy((d) => editConfig(d, { n_layer: 3 }), /config\.json: "n_layer" is 3, but .*model\.safetensors holds 2 layers \(h\.0\.\.h\.1\)/, 'h.2');
  });

  test('config errors surface through openModel', async () => {
    await withCopy((d) => editConfig(d, { n_head: 3 }), /n_embd \(8\) is not divisible by n_head \(3\)/);
    await withCopy((d) => editConfig(d, { activation_function: 'mish' }), /activation_function "mish" is not supported/);
    // The architecture is chosen by model_type (arch/index.ts); an unknown one names the file and lists those supported.
    await withCopy((d) => editConfig(d, { model_type: 'llama' }), /config\.json: model_type is "llama", which is not supported; the supported architectures are "gpt2" \(GPT-2\), "gpt_neox" \(GPT-NeoX \(Pythia\)\)/);
  });

  test('a vocabulary smaller than the tokenizer is refused', async () => {
    await withCopy(
      (d) => {
        editConfig(d, { vocab_size: 1000 });
        writeSafetensors(join(d, 'model.safetensors'), { 'wte.weight': { shape: [1000, 8] } });
      },
      /tokenizer\.json: the tokenizer has token id 50256 \("<\|endoftext\|>"\), but .*config\.json says vocab_size is 1000/,
    );
  });
});
