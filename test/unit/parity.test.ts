// Parity of the ONNX engine with an independent PyTorch GPT-2 (tools/torch_reference.py), on
// small random checkpoints in Hugging Face layout. Regenerate fixtures and goldens with
//   /usr/bin/python3 tools/torch_reference.py
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ForwardOptions, Model, openModel, windows } from '../../src/engine/runtime';
import { encodeWithBos } from '../../src/engine/tokenizer';
import { compare, loadGolden, maxAbsDiff, tensor } from '../helpers/golden';

const FIXTURES = join(__dirname, '..', 'fixtures');
const TOL = 1e-4;

const FIXTURE_NAMES = ['gpt2-tiny-crfm', 'gpt2-tiny-untied', 'gpt2-tiny-relu', 'gpt2-tiny-crfm-f16', 'gpt2-tiny-crfm-bf16'];
const summary: string[] = [];

for (const name of FIXTURE_NAMES) {
  describe(`parity with torch: ${name}`, () => {
    const g = loadGolden(name);
    let model: Model;
    before(async () => {
      model = await openModel(join(FIXTURES, name), { threads: 2 });
    });
    after(async () => {
      await model?.close();
    });

    test('goldens cover windowing and the stored shapes', () => {
      assert.equal(model.nLayers, g.n_layer);
      assert.equal(model.dMlp, g.d_mlp);
      assert.ok(g.texts.some((t) => t.windows > 1), 'some golden text must be longer than n_positions');
    });

    test(`tokenizer ids, hooks and logits within ${TOL}`, async () => {
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
      summary.push(`${name.padEnd(22)} ${g.dtype.padEnd(9)} hooks ${worstHooks.toExponential(2)}  logits ${worstLogits.toExponential(2)}`);
    });

    test('the activations-only graph gives the same hooks as the logits graph', async () => {
      for (const t of g.texts) {
        const a = await model.activations(t.text);
        const b = await model.activations(t.text, { logits: true });
        assert.equal(a.logits, undefined);
        for (let l = 0; l < g.n_layer; l++) {
          assert.ok(maxAbsDiff(a.hookPre[l]!, b.hookPre[l]!) <= 1e-5);
          assert.ok(maxAbsDiff(a.hookPost[l]!, b.hookPost[l]!) <= 1e-5);
        }
      }
    });
  });
}

describe('long texts', () => {
  let model: Model;
  before(async () => {
    model = await openModel(join(FIXTURES, 'gpt2-tiny-crfm'), { threads: 2 });
  });
  after(async () => {
    await model?.close();
  });

  test('activations of a long text equal those of each window run alone', async () => {
    const g = loadGolden('gpt2-tiny-crfm');
    const long = g.texts.find((t) => t.windows > 2)!;
    const acts = await model.activations(long.text, { logits: true });
    const P = model.config.nPositions;
    const w = windows(long.ids, P, 50256);
    assert.equal(w.rows.length, long.windows);
    assert.ok(w.rows.every((r) => r.length <= P));
    assert.ok(w.rows.slice(1).every((r) => r[0] === 50256), 'later windows start with BOS');
    const M = model.dMlp;
    const V = model.config.vocabSize;
    let covered = 0;
    for (let r = 0; r < w.rows.length; r++) {
      const alone = await model.runTokens([w.rows[r]!], { logits: true }); // one row: a batch of its own
      const n = w.rows[r]!.length - w.skip[r]!;
      const first = w.firstToken[r]!;
      for (let l = 0; l < model.nLayers; l++) {
        const got = acts.hookPost[l]!.subarray(first * M, (first + n) * M);
        assert.deepEqual(got, alone.hookPost[l]!.subarray(w.skip[r]! * M));
        const gotPre = acts.hookPre[l]!.subarray(first * M, (first + n) * M);
        assert.deepEqual(gotPre, alone.hookPre[l]!.subarray(w.skip[r]! * M));
      }
      assert.deepEqual(acts.logits!.subarray(first * V, (first + n) * V), alone.logits!.subarray(w.skip[r]! * V));
      covered += n;
    }
    assert.equal(covered, long.ids.length, 'every token appears in exactly one window');
  });
});

describe('engine variants against the same goldens', () => {
  const variants: [string, string, ForwardOptions][] = [
    ['spin-waiting threads', 'gpt2-tiny-relu', { spinWait: true }],
    ['weights as ONNX external data', 'gpt2-tiny-untied', { externalDataBytes: 0 }],
    ['one thread, tiny batches (padding)', 'gpt2-tiny-crfm', { threads: 1, batchTokens: 40 }],
  ];
  for (const [label, name, opts] of variants) {
    test(`${label}: ${name}`, async () => {
      const g = loadGolden(name);
      const model = await openModel(join(FIXTURES, name), { threads: 2, ...opts });
      try {
        for (const t of g.texts) {
          const d = compare(g, t, await model.activations(t.text, { logits: true }), model.config.vocabSize);
          assert.ok(d.hooks <= TOL && d.logits <= TOL, `${label}: ${d.hooks} / ${d.logits}`);
        }
      } finally {
        await model.close();
      }
    });
  }

  test('batched rows of mixed length equal the same rows run one at a time', async () => {
    const model = await openModel(join(FIXTURES, 'gpt2-tiny-untied'), { threads: 2 });
    try {
      const rows = [[50256, 15496, 995], [50256, 1, 2, 3, 4, 5, 6], [7], [50256, 15496, 995, 11, 10112]];
      const batched = await model.runTokens(rows, { logits: true });
      assert.deepEqual(batched.offsets, [0, 3, 10, 11, 16]);
      const M = model.dMlp;
      for (let r = 0; r < rows.length; r++) {
        const alone = await model.runTokens([rows[r]!], { logits: true });
        const [a, b] = [batched.offsets[r]!, batched.offsets[r + 1]!];
        for (let l = 0; l < model.nLayers; l++) {
          assert.ok(maxAbsDiff(batched.hookPre[l]!.subarray(a * M, b * M), alone.hookPre[l]!) <= 1e-6);
          assert.ok(maxAbsDiff(batched.hookPost[l]!.subarray(a * M, b * M), alone.hookPost[l]!) <= 1e-6);
        }
        const V = model.config.vocabSize;
        assert.ok(maxAbsDiff(batched.logits!.subarray(a * V, b * V), alone.logits!) <= 1e-5);
      }
    } finally {
      await model.close();
    }
  });
});

describe('reduced-precision checkpoints against the fp32 original', () => {
  // Not a tolerance of the engine (that is the ≤1e-4 above, against torch on the same rounded
  // weights): how far F16/BF16 storage moves activations from the fp32 checkpoint they came from.
  for (const [name, bound] of [
    ['gpt2-tiny-crfm-f16', 0.05],
    ['gpt2-tiny-crfm-bf16', 0.5],
  ] as const) {
    test(`${name} stays near gpt2-tiny-crfm`, () => {
      const g32 = loadGolden('gpt2-tiny-crfm');
      const g = loadGolden(name);
      let hooks = 0;
      let logits = 0;
      g.texts.forEach((t, i) => {
        const t32 = g32.texts[i]!;
        assert.deepEqual(t.ids, t32.ids);
        for (let l = 0; l < g.n_layer; l++) {
          for (const h of ['hook_pre', 'hook_post']) hooks = Math.max(hooks, maxAbsDiff(tensor(g, t, `L${l}.${h}`), tensor(g32, t32, `L${l}.${h}`)));
        }
        logits = Math.max(logits, maxAbsDiff(tensor(g, t, 'logits_slice'), tensor(g32, t32, 'logits_slice')));
      });
      summary.push(`${name.padEnd(22)} vs fp32 original: hooks ${hooks.toExponential(2)}  logits ${logits.toExponential(2)}`);
      assert.ok(hooks > 0, 'the rounded checkpoint must differ from the original');
      assert.ok(hooks < bound && logits < bound, `${hooks} / ${logits}`);
    });
  }
});

after(() => {
  if (summary.length) console.log(`\nmax |engine − torch| per fixture:\n  ${summary.join('\n  ')}`);
});
