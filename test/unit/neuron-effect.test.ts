// "What it does" (#16, src/engine/neuronEffect.ts) against a direct computation: every context
// run on its own with the full logits of both sides, losses and probabilities taken from them in
// float64 here (log-softmax of the logits), averaged by hand. The full logits are themselves
// checked against PyTorch by intervene.test.ts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Intervener, openIntervener } from '../../src/engine/intervene';
import { Ablation, ContextPrompt, contextPrompts, neuronEffect } from '../../src/engine/neuronEffect';
import type { NeuronExamples } from '../../src/engine/run/examples';
import { Model, openModel } from '../../src/engine/runtime';
import { CancelledError, EngineError } from '../../src/engine/errors';

const FIXTURES = join(__dirname, '..', 'fixtures');
// GPT-2 and GPT-NeoX (#15: the steer graph on NeoX, parallel residual; BOS is Pythia's id 0).
const CASES = [
  { name: 'gpt2-tiny-crfm', bos: 50256, first: [464, 3797, 3332, 319, 262, 2603, 13], mid: [1110, 373, 257, 922, 1110] },
  { name: 'neox-14m', bos: 0, first: [300, 45, 270, 81, 260, 400, 14], mid: [120, 77, 33, 290, 120] },
];

/** Two stored contexts the way examples.bin holds them: one starting its row (BOS), one mid-row, −1 padded. */
function plantedFor(bos: number, first: number[], mid: number[]): NeuronExamples {
  const W = 8;
  const K = 3;
  const ids = new Float64Array(K * W).fill(-1);
  ids.set([bos, ...first], 0);
  ids.set(mid, W);
  const f = (xs: number[]) => Float64Array.from(xs);
  return {
    count: 2,
    k: K,
    window: W,
    value: f([3, 2, 0]),
    row: f([0, 5, 0]),
    pos: f([3, 14, 0]),
    start: f([0, 12, 0]),
    len: f([8, 5, 0]),
    ids,
    acts: new Float64Array(K * W),
    hist: null,
  };
}

function logSoftmax(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const x of row) if (x > mx) mx = x;
  let s = 0;
  for (const x of row) s += Math.exp(x - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

/** The k largest entries' indices of `p`. */
function topIds(p: Float64Array, k: number): number[] {
  return [...p.keys()].sort((a, b) => p[b]! - p[a]!).slice(0, k);
}

for (const { name, bos: BOS, first, mid } of CASES) describe(`neuron effect on the top contexts: ${name}`, () => {
  const planted = (): NeuronExamples => plantedFor(BOS, first, mid);
  let model: Model;
  let iv: Intervener;
  before(async () => {
    model = await openModel(join(FIXTURES, name), { threads: 1 });
    iv = await openIntervener(model, { threads: 1 });
  });
  after(async () => {
    await iv?.close();
    await model?.close();
  });

  test('contextPrompts: BOS kept or added, the max index follows, padding dropped', () => {
    const c = contextPrompts(planted(), BOS);
    assert.deepEqual(c, [
      { ids: [BOS, ...first], maxIndex: 3 },
      { ids: [BOS, ...mid], maxIndex: 3 },
    ]);
  });

  for (const ab of [{ kind: 'zero', hook: 'post' }, { kind: 'mean', hook: 'pre', mean: -0.37 }] as Ablation[]) {
    test(`${ab.kind} at hook_${ab.hook}: mean Δ loss, Δ at the max and the movers match the logits`, async () => {
      const neuron = { layer: 1, neuron: 17 };
      const contexts: ContextPrompt[] = contextPrompts(planted(), BOS);
      const topK = 5;
      const got = await neuronEffect(iv, neuron, contexts, [ab], { topK, movers: 4 });
      const e = got.effects[0]!;

      // Direct: full distributions of both sides.
      const spec = ab.kind === 'zero' ? { neurons: [neuron], mode: { kind: 'zero' as const }, hook: ab.hook } : { neurons: [neuron], mode: { kind: 'mean' as const }, hook: ab.hook, means: [ab.mean!] };
      const V = model.config.vocabSize;
      let sumD = 0;
      let sumC = 0;
      let nPred = 0;
      let nPos = 0;
      let atMax = 0;
      const perContext: number[] = [];
      const inUnion = new Map<number, number>();
      const full = new Float64Array(V);
      for (const c of contexts) {
        const r = await iv.runIds(c.ids, spec, { logits: true });
        const n = c.ids.length;
        let s = 0;
        for (let i = 0; i < n; i++) {
          const lc = logSoftmax(r.logits!.clean.subarray(i * V, (i + 1) * V));
          const li = logSoftmax(r.logits!.intervened.subarray(i * V, (i + 1) * V));
          if (i + 1 < n) {
            const t = c.ids[i + 1]!;
            const d = -li[t]! + lc[t]!;
            s += d;
            sumC += -lc[t]!;
            if (i === c.maxIndex) atMax += d;
          }
          const pc = lc.map(Math.exp);
          const pi = li.map(Math.exp);
          for (let v = 0; v < V; v++) full[v] += pi[v]! - pc[v]!;
          for (const id of new Set([...topIds(pc, topK), ...topIds(pi, topK)])) inUnion.set(id, (inUnion.get(id) ?? 0) + pi[id]! - pc[id]!);
          nPos++;
        }
        sumD += s;
        nPred += n - 1;
        perContext.push(s / (n - 1));
      }
      assert.equal(got.predictions, nPred);
      assert.equal(got.positions, nPos);
      assert.ok(Math.abs(e.meanDeltaLoss - sumD / nPred) < 1e-5, `mean Δ loss ${e.meanDeltaLoss} vs ${sumD / nPred}`);
      assert.ok(Math.abs(e.meanCleanLoss - sumC / nPred) < 1e-5);
      assert.ok(Math.abs(e.meanDeltaLossAtMax! - atMax / contexts.length) < 1e-5);
      e.perContext.forEach((x, i) => assert.ok(Math.abs(x - perContext[i]!) < 1e-5));
      assert.ok(Math.abs(e.meanDeltaLoss) > 1e-4, 'the ablation changed nothing: the test would not see a wrong sum');
      // Movers: the union-restricted mean Δp exactly; the full-vocabulary mean within the bound.
      for (const t of [...e.up, ...e.down]) {
        assert.ok(Math.abs(t.meanDelta - inUnion.get(t.id)! / nPos) < 1e-6, `token ${t.id}: ${t.meanDelta} vs ${inUnion.get(t.id)! / nPos}`);
        assert.ok(Math.abs(t.meanDelta - full[t.id]! / nPos) <= e.bound + 1e-7);
      }
      const want = [...inUnion.entries()].map(([id, s]) => ({ id, d: s / nPos }));
      assert.deepEqual(
        e.up.map((t) => t.id),
        want.filter((t) => t.d > 0).sort((a, b) => b.d - a.d).slice(0, 4).map((t) => t.id),
      );
      assert.deepEqual(
        e.down.map((t) => t.id),
        want.filter((t) => t.d < 0).sort((a, b) => a.d - b.d).slice(0, 4).map((t) => t.id),
      );
      assert.ok(e.up.length > 0 && e.down.length > 0);
    });
  }

  test('no contexts, a mean with no value, and cancel: errors', async () => {
    const n = { layer: 0, neuron: 1 };
    await assert.rejects(neuronEffect(iv, n, [], [{ kind: 'zero', hook: 'post' }]), EngineError);
    const c = contextPrompts(planted(), BOS);
    await assert.rejects(neuronEffect(iv, n, c, [{ kind: 'mean', hook: 'pre' }]), /not a finite number/);
    await assert.rejects(neuronEffect(iv, n, c, [{ kind: 'zero', hook: 'post' }], { signal: { cancelled: true } }), CancelledError);
  });
});
