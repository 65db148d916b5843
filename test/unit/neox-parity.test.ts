// Parity of the ONNX engine's GPT-NeoX (src/engine/arch/gpt_neox.ts) with an independent PyTorch
// GPT-NeoX written from the maths of transformers' modeling_gpt_neox.py (tools/torch_reference_neox.py),
// on random Pythia-shaped checkpoints: pythia-14m's widths with the parallel residual, and a tiny
// sequential-residual variant (gelu_new, no attention biases, half-head rotary, unprefixed names
// next to HF's buffers), each stored in fp32 and fp16. Regenerate fixtures and goldens with
//   /usr/bin/python3 tools/torch_reference_neox.py
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { entropyIntervention } from '../../src/engine/analysis/intervention';
import { after, before, describe, test } from 'node:test';
import { Model, openModel } from '../../src/engine/runtime';
import { openScorer } from '../../src/engine/scorer';
import { encodeWithBos } from '../../src/engine/tokenizer';
import { compare, loadGolden, maxAbsDiff, tensor } from '../helpers/golden';

const FIXTURES = join(__dirname, '..', 'fixtures');
const TOL = 1e-4;
const NAMES = ['neox-14m', 'neox-14m-f16', 'neox-tiny-seq', 'neox-tiny-seq-f16'];
const summary: string[] = [];

for (const name of NAMES) {
  describe(`GPT-NeoX parity with torch: ${name}`, () => {
    const g = loadGolden(name);
    let model: Model;
    before(async () => {
      model = await openModel(join(FIXTURES, name), { threads: 1 });
    });
    after(async () => {
      await model?.close();
    });

    test('the config is read as GPT-NeoX, BOS is <|endoftext|> id 0, the vocabulary is padded past the tokenizer', () => {
      assert.equal(model.config.modelType, 'gpt_neox');
      assert.equal(model.nLayers, g.n_layer);
      assert.equal(model.dMlp, g.d_mlp);
      assert.equal(model.tokenizer.bosId, 0);
      assert.equal(model.tokenizer.tokenRaw(0), '<|endoftext|>');
      assert.ok(model.config.vocabSize > model.tokenizer.vocabSize);
      assert.ok(g.texts.some((t) => t.windows > 1), 'some golden text must be longer than the context');
    });

    test(`token ids, every hook and the logits within ${TOL}`, async () => {
      let worstHooks = 0;
      let worstLogits = 0;
      for (const t of g.texts) {
        assert.deepEqual(encodeWithBos(model.tokenizer, t.text).ids, t.ids, `token ids of ${JSON.stringify(t.text.slice(0, 30))}`);
        const acts = await model.activations(t.text, { logits: true });
        const d = compare(g, t, acts, model.config.vocabSize);
        assert.ok(d.hooks <= TOL, `hooks differ by ${d.hooks} on ${JSON.stringify(t.text.slice(0, 30))}`);
        assert.ok(d.logits <= TOL, `logits differ by ${d.logits} on ${JSON.stringify(t.text.slice(0, 30))}`);
        worstHooks = Math.max(worstHooks, d.hooks);
        worstLogits = Math.max(worstLogits, d.logits);
      }
      summary.push(`${name.padEnd(18)} ${g.dtype.padEnd(8)} hooks ${worstHooks.toExponential(2)}  logits ${worstLogits.toExponential(2)}`);
    });

    test('the activations-only and the analysis (kept) graphs give the logits graph\'s hooks', async () => {
      const t = g.texts[0]!;
      const a = await model.activations(t.text);
      const b = await model.activations(t.text, { logits: true });
      for (let l = 0; l < g.n_layer; l++) {
        assert.ok(maxAbsDiff(a.hookPre[l]!, b.hookPre[l]!) <= 1e-5);
        assert.ok(maxAbsDiff(a.hookPost[l]!, b.hookPost[l]!) <= 1e-5);
      }
      const T = t.ids.length;
      const kept = await model.runKept([t.ids], Int32Array.from({ length: T }, (_, i) => i), ['keptPre', 'post']);
      const N = g.n_layer * g.d_mlp;
      for (let l = 0; l < g.n_layer; l++) {
        for (let i = 0; i < T; i++) {
          const row = (x: Float32Array) => x.subarray(i * N + l * g.d_mlp, i * N + (l + 1) * g.d_mlp);
          assert.ok(maxAbsDiff(row(kept!.keptPre!), tensor(g, t, `L${l}.hook_pre`).subarray(i * g.d_mlp, (i + 1) * g.d_mlp)) <= TOL);
          assert.ok(maxAbsDiff(row(kept!.post!), tensor(g, t, `L${l}.hook_post`).subarray(i * g.d_mlp, (i + 1) * g.d_mlp)) <= TOL);
        }
      }
    });
  });
}

test('GPT-NeoX scores graph: per-token loss from the logits, and a fixed neuron changes later layers', async () => {
  const dir = join(FIXTURES, 'neox-tiny-seq');
  const model = await openModel(dir, { threads: 1 });
  const row = encodeWithBos(model.tokenizer, 'The neurons of a language model are not all alike.').ids;
  const run = await model.runTokens([row], { logits: true });
  await model.close();
  const V = 512;
  const scorer = await openScorer(dir, { threads: 1, intervention: { layer: 0, neuron: 5 } });
  try {
    const s = await scorer.score([row]);
    for (let t = 0; t + 1 < row.length; t++) {
      const logits = run.logits!.subarray(t * V, (t + 1) * V);
      let m = -Infinity;
      for (const x of logits) m = Math.max(m, x);
      let z = 0;
      for (const x of logits) z += Math.exp(x - m);
      const nll = m + Math.log(z) - logits[row[t + 1]!]!;
      assert.ok(Math.abs(nll - s.nll[t]!) < 1e-4, `nll at ${t}: ${nll} vs ${s.nll[t]}`);
    }
    const fixed = await scorer.score([row], { value: 3 });
    assert.ok(maxAbsDiff(fixed.nll, s.nll) > 1e-3, 'fixing an L0 neuron must move the loss');
  } finally {
    await scorer.close();
  }
});

test('GPT-NeoX entropy intervention against torch (neox-14m.scores.json): per-token nll, entropy, final-LN scale, plain and fixed, and their means', async () => {
  type Rows = { nll: number[]; entropy: number[]; ln_scale: number[] }[];
  const dir = join(FIXTURES, 'neox-14m');
  const gold = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'neox-14m.scores.json'), 'utf8')) as {
    rows: number[][];
    plain: Rows;
    intervention: { layer: number; neuron: number; values: { value: number; rows: Rows }[] };
  };
  const target = { layer: gold.intervention.layer, neuron: gold.intervention.neuron };
  const scorer = await openScorer(dir, { threads: 1, intervention: target });
  try {
    for (const [label, value, want] of [['plain', undefined, gold.plain] as const, ...gold.intervention.values.map((v) => [`= ${v.value}`, v.value, v.rows] as const)]) {
      const s = await scorer.score(gold.rows, value === undefined ? {} : { value });
      let worst = 0;
      want.forEach((w, r) => {
        for (const [got, exp] of [[s.nll, w.nll], [s.entropy, w.entropy], [s.lnScale, w.ln_scale]] as const) {
          exp.forEach((e, t) => (worst = Math.max(worst, Math.abs(got[s.offsets[r]! + t]! - e))));
        }
      });
      summary.push(`neox-14m scores ${label}: ${worst.toExponential(2)}`);
      assert.ok(worst <= TOL, `${label}: max |engine − torch| ${worst}`);
      if (value !== undefined) assert.ok(want.some((w, r) => w.entropy.some((e, t) => Math.abs(e - gold.plain[r]!.entropy[t]!) > 1e-3)), 'the fix moves the entropy');
    }
  } finally {
    await scorer.close();
  }
  // entropyIntervention's means over positions with a target.
  const mean = (rows: Rows, k: 'nll' | 'entropy'): number => {
    const xs = rows.flatMap((r) => r[k].slice(0, -1));
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const res = await entropyIntervention(dir, gold.rows, target, gold.intervention.values.map((v) => v.value), { threads: 1 });
  assert.ok(Math.abs(res.baseline.loss - mean(gold.plain, 'nll')) <= TOL && Math.abs(res.baseline.entropy - mean(gold.plain, 'entropy')) <= TOL);
  res.points.forEach((p, i) => {
    const rows = gold.intervention.values[i]!.rows;
    assert.ok(Math.abs(p.loss - mean(rows, 'nll')) <= TOL && Math.abs(p.entropy - mean(rows, 'entropy')) <= TOL, `value ${p.value}`);
  });
});

after(() => {
  if (summary.length) console.log(`\nmax |engine − torch| per GPT-NeoX fixture:\n  ${summary.join('\n  ')}`);
});
