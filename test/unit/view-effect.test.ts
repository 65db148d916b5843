// The neuron page's "What it does" on the host (src/extension/neuronEffect.ts): the shipped demo
// run's stored contexts of a neuron, ablated by the engine on the run's reference model, through
// the view's payload (src/view/effectPayload.ts) into a message the webview's guard accepts; the
// numbers are the engine's own (neuronEffect called directly), cached, and a cancel is not cached.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CancelledError } from '../../src/engine/errors';
import { openIntervener, type Intervener } from '../../src/engine/intervene';
import { contextPrompts, neuronEffect } from '../../src/engine/neuronEffect';
import { loadRun, type RunData } from '../../src/engine/run/data';
import { readNeuronExamples } from '../../src/engine/run/examples';
import { type Model, openModel } from '../../src/engine/runtime';
import { EffectRunner } from '../../src/extension/neuronEffect';
import { isToWebview } from '../../src/protocol';

const DEMO = join(__dirname, '..', '..', 'models', 'demo-run');

let run: RunData;
let model: Model;
let iv: Intervener;
let opened = 0;
const host = {
  use: async <T>(dir: string, _threads: number, fn: (rt: never, m: Model) => Promise<T>): Promise<T> => {
    assert.equal(dir, run.modelDir);
    opened++;
    return fn(undefined as never, model);
  },
};

before(async () => {
  run = await loadRun(DEMO);
  model = await openModel(run.modelDir!, { threads: 1 });
  iv = await openIntervener(model, { threads: 1 });
});
after(async () => {
  await iv?.close();
  await model?.close();
});

test('What it does: the payload carries the engine’s numbers, passes the guard, and is cached', async () => {
  const runner = new EffectRunner(host, () => 1);
  // The demo run's first row: a neuron with stored contexts.
  const ref = { layer: run.layer[0]!, neuron: run.neuron[0]! };
  let calls = 0;
  const d = await runner.measure(run, ref, { cancelled: false }, () => calls++);
  try {
    assert.ok(isToWebview({ type: 'effect', layer: ref.layer, neuron: ref.neuron, state: 'done', data: d }), 'the webview guard rejects the payload');
    const j = ref.layer * run.dMlp + ref.neuron;
    const ex = readNeuronExamples(run.dir, run.examples!, j);
    const mean = run.columns.get('mean_exact')![run.rowOf[j]!]!;
    assert.ok(Number.isFinite(mean), 'the demo run has mean_exact');
    const want = await neuronEffect(iv, ref, contextPrompts(ex, model.tokenizer.bosId), [{ kind: 'zero', hook: 'post' }, { kind: 'mean', hook: 'pre', mean }]);
    assert.equal(d.contexts, ex.count);
    assert.equal(calls, 2 * ex.count);
    assert.deepEqual(
      d.ablations.map((a) => [a.label, a.kind, a.hook]),
      [['zero at hook_post', 'zero', 'post'], [`run mean (${mean.toPrecision(3)}) at hook_pre`, 'mean', 'pre']],
    );
    d.ablations.forEach((a, i) => {
      const w = want.effects[i]!;
      assert.equal(a.meanDeltaLoss, w.meanDeltaLoss);
      assert.equal(a.meanDeltaLossAtMax, w.meanDeltaLossAtMax);
      assert.deepEqual(a.up.map((t) => [t.id, t.delta, t.text]), w.up.map((t) => [t.id, t.meanDelta, model.tokenizer.tokenString(t.id)]));
      assert.deepEqual(a.down.map((t) => t.id), w.down.map((t) => t.id));
    });
    // Cached: no second model use.
    const before = opened;
    assert.equal(await runner.measure(run, ref, { cancelled: false }, () => undefined), d);
    assert.equal(opened, before);
    // A cancelled run fails and leaves nothing cached for its neuron.
    const other = { layer: run.layer[1]!, neuron: run.neuron[1]! };
    await assert.rejects(runner.measure(run, other, { cancelled: true }, () => undefined), CancelledError);
    assert.equal(runner.cached(run, other), undefined);
  } finally {
    runner.dispose();
  }
});

test('What it does: a neuron outside the run and a run without examples are clear errors', async () => {
  const runner = new EffectRunner(host, () => 1);
  await assert.rejects(runner.measure(run, { layer: run.nLayers, neuron: 0 }, { cancelled: false }, () => undefined), /not a neuron of this run/);
  await assert.rejects(runner.measure({ ...run, examples: null }, { layer: 0, neuron: 0 }, { cancelled: false }, () => undefined), /no stored top contexts/);
  runner.dispose();
});
