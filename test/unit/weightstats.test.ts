import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModelWeights, processMlpWeights, WeightStats, weightStats, weightStatsFromCheckpoint } from '../../src/engine/analysis/weightstats';
import { hashFile } from '../../src/engine/checkpoint';
import { EngineError } from '../../src/engine/errors';
import { setKernelThreads } from '../../src/engine/kernels/pool';

const ROOT = path.resolve(__dirname, '../..');
const GOLDEN = path.join(ROOT, 'test/fixtures/weightstats');

interface Golden {
  checkpoint: string;
  sha256: string;
  n_layer: number;
  n_neurons: number;
  stats: Record<string, number[]>;
  top: { neurons: number[]; top_tokens: number[][]; top_values: number[][]; bottom_tokens: number[][]; bottom_values: number[][] };
}

const STATS = ['w_in_norm', 'input_bias', 'w_out_norm', 'in_out_sim', 'l2_penalty', 'vocab_mean', 'vocab_var', 'vocab_skew', 'vocab_kurt'] as const;

/**
 * |ours − golden| ≤ 1e-5·|golden| + atol. The golden is float64 (rounded to 7 digits); ours does
 * the product in float32, whose error is absolute (~1e-8 on c ≈ 0.1), so quantities that sit
 * near 0 by construction — vocab_mean, vocab_skew, in_out_sim of an orthogonal pair — get an
 * absolute floor of 1e-6 of that statistic's typical size across the model.
 */
function compare(ours: WeightStats, g: Golden, name: string): void {
  assert.equal(ours.nNeurons, g.n_neurons);
  for (const k of STATS) {
    const want = g.stats[k]!;
    const typical = Math.max(...want.map(Math.abs));
    let atol = 1e-6 * Math.max(typical, k === 'vocab_skew' || k === 'in_out_sim' ? 1 : 0);
    // The mean of c over the vocabulary is float32 products' rounding (~1e-7·σ_c per entry) averaged
    // over V entries: with GPT-2's 50,257 tokens that is far below 1e-6·typical, with a 512-token
    // vocabulary (neox-tiny-seq) it is not, so it gets a floor of 1e-7·σ_c.
    if (k === 'vocab_mean') atol = Math.max(atol, 1e-7 * Math.sqrt(Math.max(...g.stats['vocab_var']!)));
    let worst = 0;
    for (let j = 0; j < want.length; j++) {
      const err = Math.abs(ours[k][j]! - want[j]!);
      const tol = 1e-5 * Math.abs(want[j]!) + atol;
      worst = Math.max(worst, err / tol);
      assert.ok(err <= tol, `${name} ${k}[${j}]: ${ours[k][j]} vs golden ${want[j]} (tol ${tol})`);
    }
    assert.ok(worst <= 1, `${name} ${k}`);
  }
  const K = ours.topK;
  g.top.neurons.forEach((j, i) => {
    for (const [ids, vals, gIds, gVals] of [
      [ours.topTokens, ours.topValues, g.top.top_tokens[i]!, g.top.top_values[i]!],
      [ours.bottomTokens, ours.bottomValues, g.top.bottom_tokens[i]!, g.top.bottom_values[i]!],
    ] as const) {
      for (let q = 0; q < K; q++) {
        const v = vals[j * K + q]!;
        const tol = 1e-5 * Math.abs(gVals[q]!) + 1e-7;
        assert.ok(Math.abs(v - gVals[q]!) <= tol, `${name} neuron ${j} rank ${q}: value ${v} vs golden ${gVals[q]}`);
        // Ids must agree unless the golden itself has a near-tie at this rank.
        const nearTie = (q > 0 && Math.abs(gVals[q]! - gVals[q - 1]!) <= 2 * tol) || (q + 1 < K && Math.abs(gVals[q]! - gVals[q + 1]!) <= 2 * tol);
        if (!nearTie) assert.equal(ids[j * K + q], gIds[q], `${name} neuron ${j} rank ${q} token`);
      }
    }
  });
}

async function golden(name: string): Promise<Golden> {
  const g = JSON.parse(fs.readFileSync(path.join(GOLDEN, name + '.json'), 'utf8')) as Golden;
  const file = path.join(ROOT, g.checkpoint, 'model.safetensors');
  const sha = await hashFile(file);
  assert.equal(sha, g.sha256, `${file} changed since the golden was written: rerun /usr/bin/python3 tools/torch_weight_stats.py`);
  return g;
}

// neox-tiny-seq, neox-14m: GPT-NeoX's [out, in] Linear weights, post_attention_layernorm and untied embed_out (arch/index.ts mlpTensors).
for (const name of ['gpt2-tiny-crfm', 'gpt2-tiny-untied', 'neox-tiny-seq', 'neox-14m']) {
  test(`${name}: matches the independent PyTorch float64 statistics`, async () => {
    const g = await golden(name);
    compare(await weightStatsFromCheckpoint(path.join(ROOT, g.checkpoint)), g, name);
  });
}

test('tiny-gpt2-a (fp16, 2,048 neurons): matches PyTorch, in a few seconds', async () => {
  const g = await golden('tiny-gpt2-a');
  const t0 = performance.now();
  const s = await weightStatsFromCheckpoint(path.join(ROOT, g.checkpoint), { threads: 2 });
  const ms = performance.now() - t0;
  compare(s, g, 'tiny-gpt2-a');
  assert.ok(ms < 20_000, `took ${ms.toFixed(0)} ms`);
});

test('the JS and ORT products agree', async () => {
  const { weights, close } = openModelWeights(path.join(ROOT, 'test/fixtures/gpt2-tiny-untied'));
  try {
    const a = await weightStats(weights, { gemm: 'ort', blockNeurons: 7 });
    const b = await weightStats(weights, { gemm: 'js' });
    for (const k of STATS) {
      const floor = k === 'vocab_skew' || k === 'in_out_sim' ? 1e-6 : 1e-9;
      for (let j = 0; j < a.nNeurons; j++) assert.ok(Math.abs(a[k][j]! - b[k][j]!) <= 1e-5 * Math.abs(b[k][j]!) + floor, `${k}[${j}]: ${a[k][j]} vs ${b[k][j]}`);
    }
    assert.deepEqual(a.topTokens, b.topTokens);
    assert.deepEqual(a.bottomTokens, b.bottomTokens);
  } finally {
    close();
  }
});

test('the vocab kernel (every core) equals the JS loop bit for bit: moments, top and bottom tokens', async () => {
  const { weights, close } = openModelWeights(path.join(ROOT, 'models/tiny-gpt2-a'));
  try {
    // Blocks of 333 rows: the last block is partial; 1 and 3 threads split rows differently.
    for (const threads of [1, 3]) {
      setKernelThreads(threads);
      const k = await weightStats(weights, { blockNeurons: 333 });
      const js = await weightStats(weights, { blockNeurons: 333, kernel: false });
      for (const key of ['vocab_mean', 'vocab_var', 'vocab_skew', 'vocab_kurt', 'topValues', 'topTokens', 'bottomValues', 'bottomTokens'] as const) {
        const a = k[key];
        const b = js[key];
        assert.equal(a.length, b.length);
        for (let j = 0; j < a.length; j++) if (!Object.is(a[j], b[j])) assert.fail(`${threads} threads: ${key}[${j}] ${a[j]} vs ${b[j]}`);
      }
    }
  } finally {
    setKernelThreads(0);
    close();
  }
});

test('processed weights reproduce the real pre-activation: ln_2(x)·W_in + b = norm(x)·W_in\' + b\'', () => {
  const { weights, close } = openModelWeights(path.join(ROOT, 'test/fixtures/gpt2-tiny-crfm'));
  try {
    const cfg = weights.config;
    const d = cfg.nEmbd;
    const m = cfg.dMlp;
    const p = processMlpWeights(weights);
    const read = (n: string): Float32Array => weights.source.read(weights.stored.get(n)!);
    for (let l = 0; l < cfg.nLayer; l++) {
      const g = read(`h.${l}.ln_2.weight`);
      const b = read(`h.${l}.ln_2.bias`);
      const W = read(`h.${l}.mlp.c_fc.weight`);
      const bias = read(`h.${l}.mlp.c_fc.bias`);
      for (let trial = 0; trial < 5; trial++) {
        const x = Array.from({ length: d }, (_, i) => Math.sin(7 * i + 3 * trial + l) * 2 + trial);
        const mu = x.reduce((s, v) => s + v, 0) / d;
        const sd = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / d + cfg.layerNormEpsilon);
        const z = x.map((v) => (v - mu) / sd);
        for (let n = 0; n < m; n++) {
          let want = bias[n]!;
          let got = p.bIn[l]![n]!;
          for (let i = 0; i < d; i++) {
            want += (z[i]! * g[i]! + b[i]!) * W[i * m + n]!;
            got += z[i]! * p.wIn[l]![i * m + n]!; // centring is free: z sums to 0
          }
          assert.ok(Math.abs(got - want) < 1e-9 * (1 + Math.abs(want)), `L${l}.N${n}: ${got} vs ${want}`);
        }
      }
      // Centred over d_model: every W_in' column and W_out row sums to 0.
      for (let n = 0; n < m; n++) {
        let s = 0;
        let t = 0;
        for (let i = 0; i < d; i++) {
          s += p.wIn[l]![i * m + n]!;
          t += p.wOut[l]![n * d + i]!;
        }
        assert.ok(Math.abs(s) < 1e-12 && Math.abs(t) < 1e-12);
      }
    }
  } finally {
    close();
  }
});

test('refuses a bad topK', async () => {
  const { weights, close } = openModelWeights(path.join(ROOT, 'test/fixtures/gpt2-tiny-untied'));
  try {
    await assert.rejects(weightStats(weights, { topK: 0 }), EngineError);
  } finally {
    close();
  }
});
