// The runtime around the forward pass: graph variants, batching, windowing, cancellation, input
// checks, topNeurons. Numerical parity is in parity.test.ts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { onnx } from 'onnx-proto';
import { buildGpt2Graph, gpt2TensorShapes, parseGpt2Config, resolveGpt2Weights } from '../../src/engine/arch/gpt2';
import { CancelledError, EngineError } from '../../src/engine/errors';
import { irVersionForOpset } from '../../src/engine/onnx';
import { Model, openModel, planBatches, topNeurons, windows } from '../../src/engine/runtime';

const FIXTURE = join(__dirname, '..', 'fixtures', 'gpt2-tiny-crfm');

describe('ONNX graph variants', () => {
  const cfg = parseGpt2Config({ model_type: 'gpt2', n_layer: 3, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 40 }, 'c');
  const shapes = gpt2TensorShapes(cfg);
  const read: string[] = [];
  const w = resolveGpt2Weights(
    cfg,
    {
      shape: (n) => shapes.get(n),
      read: (n) => {
        read.push(n);
        return new Float32Array(shapes.get(n)!.reduce((a, b) => a * b, 1));
      },
    },
    'w',
  );

  test('the activations graph stops at the last hook_post: no last c_proj, ln_f or LM head', () => {
    const g = buildGpt2Graph(w, { logits: false });
    const inits = g.initializerNames;
    assert.ok(inits.includes('h.2.mlp.c_fc.weight'));
    assert.ok(!inits.includes('h.2.mlp.c_proj.weight'));
    assert.ok(!inits.includes('ln_f.weight'));
    assert.equal(g.opTypes().filter((o) => o === 'Gemm').length, 4 * 3 - 1, 'four Conv1D per layer but the last c_proj, and no LM head');
    assert.ok(inits.includes('h.1.mlp.c_proj.weight'), 'earlier layers keep their MLP output');
    // Only the weights the graph uses are read, and only when it is serialised.
    assert.equal(read.length, 0);
    g.toBytes();
    assert.ok(!read.includes('ln_f.weight') && !read.includes('h.2.mlp.c_proj.weight'));
  });

  test('the logits graph has the full forward', () => {
    const g = buildGpt2Graph(w, { logits: true });
    assert.ok(g.initializerNames.includes('h.2.mlp.c_proj.weight'));
    assert.ok(g.initializerNames.includes('ln_f.weight'));
    assert.equal(g.opTypes().filter((o) => o === 'Gemm').length, 4 * 3 + 1, 'four Conv1D per layer and the LM head');
  });

  test('irVersion follows the opset', () => {
    assert.equal(irVersionForOpset(17), 8);
    assert.equal(irVersionForOpset(20), 9);
    assert.equal(irVersionForOpset(21), 10);
    assert.throws(() => irVersionForOpset(11));
  });
});

describe('windows (texts longer than n_positions)', () => {
  test('window 0 keeps the text BOS; later windows get a fresh BOS and n_positions-1 tokens', () => {
    const ids = [50256, ...Array.from({ length: 10 }, (_, i) => 100 + i)]; // 11 tokens
    const w = windows(ids, 4, 50256);
    assert.deepEqual(w.rows, [
      [50256, 100, 101, 102],
      [50256, 103, 104, 105],
      [50256, 106, 107, 108],
      [50256, 109],
    ]);
    assert.deepEqual(w.firstToken, [0, 4, 7, 10]);
    assert.deepEqual(w.skip, [0, 1, 1, 1]);
  });

  test('a text that fits is one row', () => {
    assert.deepEqual(windows([50256, 1, 2], 3, 50256).rows, [[50256, 1, 2]]);
  });
});

describe('planBatches', () => {
  test('longest first, no batch over budget, every row once', () => {
    const rows = [[1, 1], [1, 1, 1, 1], [1], [1, 1, 1, 1], [1, 1, 1]];
    const b = planBatches(rows, 8);
    assert.deepEqual(b, [[1, 3], [4, 0], [2]]);
    for (const batch of b) assert.ok(batch.length * rows[batch[0]!]!.length <= 8);
    assert.deepEqual(b.flat().sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(planBatches([[1, 2, 3]], 1), [[0]], 'a row longer than the budget still runs');
  });
});

describe('Model', () => {
  let model: Model;
  before(async () => {
    model = await openModel(FIXTURE, { threads: 1, batchTokens: 8 }); // small batches: several ORT runs per call
  });
  after(async () => {
    await model?.close();
  });

  test('activations: per-token ids, spans and per-layer arrays', async () => {
    const text = 'Hello world';
    const a = await model.activations(text);
    assert.deepEqual(
      a.tokens.map((t) => [t.id, t.start, t.end, t.text]),
      [
        [50256, 0, 0, '<|endoftext|>'],
        [15496, 0, 5, 'Hello'],
        [995, 5, 11, ' world'],
      ],
    );
    assert.equal(a.hookPre.length, model.nLayers);
    assert.equal(a.hookPost[0]!.length, 3 * model.dMlp);
    assert.equal(a.logits, undefined);
  });

  test('runTokens: hooks can be limited, empty input is fine', async () => {
    const r = await model.runTokens([[50256, 1, 2]], { hooks: ['post'] });
    assert.equal(r.hookPre.length, 0);
    assert.equal(r.hookPost.length, model.nLayers);
    const e = await model.runTokens([]);
    assert.equal(e.nTokens, 0);
    assert.equal(e.hookPost.length, model.nLayers);
  });

  test('runTokens refuses rows it cannot run', async () => {
    const P = model.config.nPositions;
    await assert.rejects(model.runTokens([new Array(P + 1).fill(1)]), (e: unknown) => e instanceof EngineError && /context is 32/.test(e.message));
    await assert.rejects(model.runTokens([[1, 50257]]), (e: unknown) => e instanceof EngineError && /token id 50257/.test(e.message));
    await assert.rejects(model.runTokens([[1], []]), (e: unknown) => e instanceof EngineError && /row 1 is empty/.test(e.message));
  });

  test('cancellation between batches', async () => {
    const rows = Array.from({ length: 6 }, () => [50256, 1, 2, 3]);
    let runs = 0;
    const signal = {
      get cancelled() {
        return ++runs > 2; // passes the first checks, then fires
      },
    };
    await assert.rejects(model.forward.runTokens(rows, { signal }), CancelledError);
    await assert.rejects(model.activations('x', { signal: { cancelled: true } }), CancelledError);
  });

  test('topNeurons ranks post-activations at one token across layers', async () => {
    const a = await model.activations('Hello world');
    const top = topNeurons(a, 2, 5);
    assert.equal(top.length, 5);
    for (let i = 1; i < top.length; i++) assert.ok(top[i - 1]!.value >= top[i]!.value);
    let best = -Infinity;
    a.hookPost.forEach((layer) => {
      for (let n = 0; n < model.dMlp; n++) best = Math.max(best, layer[2 * model.dMlp + n]!);
    });
    assert.equal(top[0]!.value, best);
    assert.equal(top[0]!.value, a.hookPost[top[0]!.layer]![2 * model.dMlp + top[0]!.neuron]);
    assert.throws(() => topNeurons(a, 3, 5), EngineError);
  });
});

describe('the analysis layout straight from ORT (runKept)', () => {
  let m: Model;
  before(async () => {
    m = await openModel(join(__dirname, '..', '..', 'models', 'tiny-gpt2-a'), { memArena: false });
  });
  after(async () => {
    await m.close();
  });

  test('equals the per-layer hooks interleaved in JS, bit for bit; refuses what it cannot do', async () => {
    const { interleave } = await import('../../src/engine/analysis/pipeline');
    const rows = Array.from({ length: 3 }, (_, r) => Array.from({ length: 40 }, (_, t) => (t === 0 ? 50256 : (r * 977 + t * 131) % 50000)));
    const keptIndex = Int32Array.from([...Array(120).keys()].filter((t) => t % 40 !== 0 && t % 7 !== 3));
    const k = (await m.runKept(rows, keptIndex, ['keptPre', 'keptPost', 'post']))!;
    const run = await m.runTokens(rows, { hooks: ['pre', 'post'] });
    const same = (a: Float32Array, b: Float32Array, what: string): void => {
      assert.equal(a.length, b.length, what);
      for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
    };
    same(k.keptPre!, interleave(run.hookPre, 120, m.dMlp, keptIndex), 'keptPre');
    same(k.keptPost!, interleave(run.hookPost, 120, m.dMlp, keptIndex), 'keptPost');
    same(k.post!, interleave(run.hookPost, 120, m.dMlp), 'post');
    // Only what is asked for; no kept token is fine.
    const only = (await m.runKept(rows, new Int32Array(0), ['keptPost']))!;
    assert.deepEqual(Object.keys(only), ['keptPost']);
    assert.equal(only.keptPost!.length, 0);
    // Rows of different lengths go through runTokens (the caller interleaves).
    assert.equal(await m.runKept([rows[0]!, rows[1]!.slice(0, 30)], keptIndex, ['post']), undefined);
  });

  test('each set of kinds gets a graph of those outputs alone, with the same bits as the graph of all four', async () => {
    const { buildGraph } = await import('../../src/engine/arch/index');
    const { KEPT_OUTPUTS } = await import('../../src/engine/runtime');
    const rows = Array.from({ length: 2 }, (_, r) => Array.from({ length: 33 }, (_, t) => (t === 0 ? 50256 : (r * 613 + t * 211) % 50000)));
    const keptIndex = Int32Array.from([...Array(66).keys()].filter((t) => t % 33 !== 0 && t % 5 !== 2));
    const all = ['keptPre', 'keptPost', 'post', 'pre'] as const;
    const ref = (await m.runKept(rows, keptIndex, all))!;
    const weights = (m.forward as unknown as { weights: Parameters<typeof buildGraph>[0] }).weights;
    const sets: (typeof all)[number][][] = [['keptPre'], ['keptPost'], ['pre'], ['post'], ['keptPre', 'pre'], ['post', 'keptPost'], ['keptPost', 'keptPre'], ['keptPre', 'post']];
    for (const kinds of sets) {
      const got = (await m.runKept(rows, keptIndex, kinds))!;
      assert.deepEqual(Object.keys(got).sort(), [...kinds].sort());
      for (const k of kinds) assert.ok(Buffer.from(got[k]!.buffer, got[k]!.byteOffset, got[k]!.byteLength).equals(Buffer.from(ref[k]!.buffer, ref[k]!.byteOffset, ref[k]!.byteLength)), `${kinds.join(',')}: ${k} bit-identical`);
      // One kept session at a time, of exactly this set.
      assert.deepEqual(m.forward.loadedVariants(), [`kept:${all.filter((k) => kinds.includes(k)).join(',')}`]);
      // Its graph outputs what was asked and computes no full array that was not: kept rows
      // alone are gathered per layer, never from a [tokens × N] concatenation.
      const g = buildGraph(weights, { logits: false, kept: true, keptKinds: kinds });
      const proto = onnx.ModelProto.decode(g.toBytes());
      assert.deepEqual(proto.graph!.output!.map((o) => o.name).sort(), kinds.map((k) => KEPT_OUTPUTS[k]).sort());
      const made = new Set(proto.graph!.node!.flatMap((n) => n.output!));
      for (const side of ['pre', 'post'] as const) assert.equal(made.has(KEPT_OUTPUTS[side]), kinds.includes(side), `${kinds.join(',')}: ${KEPT_OUTPUTS[side]} made`);
      const gathersOfFull = proto.graph!.node!.filter((n) => n.opType === 'Gather' && (n.input![0] === KEPT_OUTPUTS.pre || n.input![0] === KEPT_OUTPUTS.post));
      assert.equal(gathersOfFull.length, kinds.filter((k) => (k === 'keptPre' && kinds.includes('pre')) || (k === 'keptPost' && kinds.includes('post'))).length, `${kinds.join(',')}: gathers of a concatenation`);
    }
    assert.throws(() => buildGraph(weights, { logits: false, kept: true, keptKinds: [] }), /keptKinds/);
    await assert.rejects(m.runKept(rows, keptIndex, []), /at least one of/);
  });

  test("holds one of the two activation sessions at a time (each holds every weight), with the same numbers after a switch", async () => {
    const rows = [Array.from({ length: 24 }, (_, t) => (t * 389 + 7) % 50000)];
    const keptIndex = Int32Array.from([...Array(24).keys()].filter((t) => t % 3 !== 0));
    const first = (await m.runTokens(rows, { hooks: ['post'] })).hookPost.map((a) => a.slice());
    assert.deepEqual(m.forward.loadedVariants(), ['acts']);
    const k1 = (await m.runKept(rows, keptIndex, ['keptPost']))!.keptPost!.slice();
    assert.deepEqual(m.forward.loadedVariants(), ['kept:keptPost'], 'loading kept released acts');
    const again = (await m.runTokens(rows, { hooks: ['post'] })).hookPost;
    assert.deepEqual(m.forward.loadedVariants(), ['acts'], 'and acts released kept');
    assert.deepEqual(again, first);
    assert.deepEqual((await m.runKept(rows, keptIndex, ['keptPost']))!.keptPost, k1);
  });
});
