/**
 * Roles: the rules on hand-made statistics, the random-direction baselines, and the attention
 * score's plumbing on a fixture checkpoint.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  applyRoleRules,
  attentionScores,
  bosKeys,
  directionVocabVar,
  entropyFirstLayer,
  neuronRoles,
  randomDirections,
  trimByAbsH,
  unembedMoments,
  unembedMomentsPlain,
} from '../../src/engine/analysis/roles';
import { openModelWeights, processMlpWeights, readTensor, unitUnembedRows, weightStats } from '../../src/engine/analysis/weightstats';
import { CancelledError } from '../../src/engine/errors';
import { setKernelThreads } from '../../src/engine/kernels/pool';
import { mulberry32 } from '../../src/engine/rng';

const FIXTURE = join(__dirname, '..', 'fixtures', 'gpt2-tiny-crfm');

test('role rules on hand-made vocab moments and weight norms', () => {
  // 2 layers × 4 neurons. Layer 1 is the last, the only one the entropy query searches at 0.2.
  const stats = {
    nLayers: 2,
    dMlp: 4,
    //                 L0: pred  supp  part  none | L1: entropy  kurt 12  l2 2.9  on every bound
    vocab_kurt: Float64Array.from([12, 15, 3, 9.9, 3, 3, 3, 10]),
    vocab_skew: Float64Array.from([2, -3, 0, 5, 0, 0, 0, 0]),
    vocab_var: Float64Array.from([0.01, 0.01, 0.5, 0.01, 0.0001, 0.01, 0.0001, 0.01]),
    l2_penalty: Float64Array.from([1, 1, 1, 5, 9, 9, 2.9, 3]),
  };
  const kurt = Float64Array.from([3, 3, 3, 1, 5, 12, 5, 10]);
  const attn = { z: Float64Array.from([0, 6, 0, 4.9, NaN, NaN, NaN, NaN]), head: ['', 'L1.H0', '', 'L1.H2', '', '', '', ''] };
  const r = applyRoleRules(stats, kurt, { min: 0.001, max: 0.1 }, attn);
  assert.deepEqual(r.roles, ['prediction', 'attention-deactivation,suppression', 'partition', '', 'entropy', '', '', 'entropy']);
  assert.deepEqual(r.role, ['prediction', 'attention-deactivation', 'partition', '', 'entropy', '', '', 'entropy']);
  // The ranking covers the query's layers: those that pass first, each group by vocab_var, smallest first.
  assert.deepEqual(
    r.entropyRanking.map((e) => [e.index, e.candidate]),
    [
      [4, true],
      [7, true],
      [6, false],
      [5, false],
    ],
  );
  // Thresholds are settings: the query's layers, l2, vocab_kurt and kurt bounds too.
  const strict = applyRoleRules(stats, kurt, { min: 0.001, max: 0.1 }, attn, { vocabKurt: 13, attentionZ: 10 });
  assert.deepEqual(strict.roles.slice(0, 2), ['', 'suppression']);
  const all = applyRoleRules(stats, kurt, { min: 0.001, max: 0.1 }, attn, { entropy: { layerFraction: 1 } });
  assert.deepEqual(
    all.entropyRanking.filter((e) => e.candidate).map((e) => e.index),
    [4, 3, 7],
  );
  const tight = applyRoleRules(stats, kurt, { min: 0.001, max: 0.1 }, attn, { entropy: { l2: 2.5, kurt: 9, vocabKurt: 9 } });
  assert.deepEqual(
    tight.entropyRanking.filter((e) => e.candidate).map((e) => e.index),
    [4, 6],
  );
  // A dead neuron's NaN kurtosis is no candidate.
  const dead = applyRoleRules(stats, Float64Array.from([3, 3, 3, 1, NaN, 12, 5, 10]), { min: 0.001, max: 0.1 }, attn);
  assert.equal(dead.roles[4], '');
  assert.throws(() => applyRoleRules(stats, kurt.subarray(1), { min: 0.001, max: 0.1 }, attn), /7 activation kurtoses for 8 neurons/);
});

test("the entropy query's layers scale with depth: the paper's layer ≥ 10 of 12", () => {
  assert.equal(entropyFirstLayer(12, 0.2), 10);
  assert.equal(entropyFirstLayer(24, 0.2), 19); // GPT2-medium: its anti-entropy neuron is in layer 22
  assert.equal(entropyFirstLayer(4, 0.2), 3);
  assert.equal(entropyFirstLayer(2, 0.2), 1); // at least the last layer
  assert.equal(entropyFirstLayer(4, 1), 0);
  assert.throws(() => entropyFirstLayer(4, 0), /layer fraction must be in \(0, 1\]/);
});

test('attention pairs: the top by |h| of every neuron-head pair, trimmed as they come', () => {
  // 200 pairs with pseudo-random h of both signs; the trim keeps exactly the sort-then-slice.
  const pairs = Array.from({ length: 200 }, (_, i) => ({ layer: 0, neuron: i, head: 'L1.H0', score: i % 7, raw: Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453) - 0.5 }));
  const want = [...pairs].sort((a, b) => Math.abs(b.raw) - Math.abs(a.raw)).slice(0, 10);
  const kept: typeof pairs = [];
  let floor = -1;
  for (const p of pairs) {
    if (Math.abs(p.raw) >= floor) {
      kept.push(p);
      if (kept.length >= 40) floor = trimByAbsH(kept, 10);
    }
  }
  trimByAbsH(kept, 10);
  assert.deepEqual(kept, want);
  assert.ok(kept.some((p) => p.raw < 0) && kept.some((p) => p.raw > 0));
});

test('random directions are centred unit vectors, reproducible from the seed', () => {
  const a = randomDirections(7, 300, 64);
  const b = randomDirections(7, 300, 64);
  const c = randomDirections(8, 300, 64);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (let r = 0; r < 300; r++) {
    const u = a.subarray(r * 64, (r + 1) * 64);
    assert.ok(Math.abs(u.reduce((x, y) => x + y, 0)) < 1e-12);
    assert.ok(Math.abs(u.reduce((x, y) => x + y * y, 0) - 1) < 1e-12);
  }
});

test('the unembedding moments on the kernel pool equal the plain rank-1 loop bit for bit, on 1 and 3 threads', (t) => {
  // d = 300: bands of 13 rows, rows of odd and even length (the kernel's pairs and its last
  // single column); V = 51: four v at a time, then a remainder of 3; d = 2 and 1: fewer rows than
  // the pool has parts.
  t.after(() => setKernelThreads(0));
  for (const threads of [1, 3]) {
    setKernelThreads(threads);
    for (const [V, d] of [
      [51, 300],
      [8, 5],
      [3, 7],
      [6, 2],
      [5, 1],
    ] as const) {
      let s = 12345;
      const U = Float32Array.from({ length: V * d }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1);
      const got = unembedMoments(U, d);
      const want = unembedMomentsPlain(U, d);
      for (let e = 0; e < d * d; e++) if (!Object.is(got.M[e], want.M[e])) assert.fail(`${threads} threads, V ${V} d ${d}: M[${e}] ${got.M[e]} vs ${want.M[e]}`);
      for (let i = 0; i < d; i++) assert.ok(Object.is(got.mu[i], want.mu[i]), `mu[${i}]`);
    }
  }
});

test('the unembedding moments stop at a cancel before the kernel runs', () => {
  const U = new Float32Array(40 * 16).fill(0.25);
  assert.throws(() => unembedMoments(U, 16, { cancelled: true }), CancelledError);
});

test("a direction's vocab_var from the unembedding moments equals the weight statistics' vocab_var", async () => {
  const { weights, close } = openModelWeights(FIXTURE);
  try {
    const ws = await weightStats(weights, { gemm: 'js' });
    const d = weights.config.nEmbd;
    const { M, mu } = unembedMoments(unitUnembedRows(weights), d);
    const mlp = processMlpWeights(weights);
    for (const j of [0, 5, ws.nNeurons - 1]) {
      const l = Math.floor(j / ws.dMlp);
      const n = j % ws.dMlp;
      const u = mlp.wOut[l]!.slice(n * d, (n + 1) * d);
      const norm = Math.sqrt(u.reduce((x, y) => x + y * y, 0));
      const v = directionVocabVar(u.map((x) => x / norm), M, mu);
      assert.ok(Math.abs(v - ws.vocab_var[j]!) <= 1e-6 * ws.vocab_var[j]! + 1e-9, `neuron ${j}: ${v} vs ${ws.vocab_var[j]}`);
    }
  } finally {
    close();
  }
});

test('attention score: a neuron writing along a head’s BOS-query direction scores highest on that head', () => {
  const { weights, close } = openModelWeights(FIXTURE);
  try {
    const c = weights.config;
    const d = c.nEmbd;
    const keys = bosKeys(weights);
    assert.equal(keys.length, c.nLayer);
    assert.ok(keys.every((k) => k.length === d && k.every(Number.isFinite)));
    // g for head 1 of the last layer, built here from its definition.
    const L = c.nLayer - 1;
    const hd = 1;
    const gamma = readTensor(weights, `h.${L}.ln_1.weight`);
    const Wqkv = readTensor(weights, `h.${L}.attn.c_attn.weight`);
    const g = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let k = 0; k < c.dHead; k++) s += Wqkv[i * 3 * d + hd * c.dHead + k]! * keys[L]![hd * c.dHead + k]!;
      g[i] = gamma[i]! * s;
    }
    const mean = g.reduce((x, y) => x + y, 0) / d;
    const norm = Math.sqrt(g.reduce((x, y) => x + (y - mean) ** 2, 0));
    // Layer 0's neurons: neuron 0 along +g (centred), neuron 1 along −g, the rest random.
    const wOut = processMlpWeights(weights).wOut.map((w) => Float64Array.from(w));
    const dirs = randomDirections(3, 512, d);
    for (let i = 0; i < d; i++) {
      wOut[0]![i] = (g[i]! - mean) / norm;
      wOut[0]![d + i] = -(g[i]! - mean) / norm;
    }
    for (let n = 2; n < c.dMlp; n++) wOut[0]!.set(dirs.subarray(n * d, (n + 1) * d), n * d);
    const s = attentionScores(weights, wOut, dirs, 5);
    assert.equal(s.head[0], `L${L}.H${hd}`);
    // Fully aligned: h = |g_c|, and σ over random centred unit directions is |g_c|/√(d−1).
    assert.ok(Math.abs(s.z[0]! / Math.sqrt(d - 1) - 1) < 0.1, `aligned neuron z ${s.z[0]} vs √(d−1) = ${Math.sqrt(d - 1)}`);
    assert.ok(s.z[1]! < s.z[0]!, 'the opposite direction pulls attention off BOS');
    // Every pair, ranked by |h|: on this head the aligned neuron (h = |g_c|/√d_head) and the
    // opposite one (−|g_c|/√d_head) lead, the positive first on the tie (higher z).
    const every = attentionScores(weights, wOut, dirs, 1e9).pairs;
    const heads = c.nLayer * (c.nLayer - 1) / 2 * c.nHead;
    assert.equal(every.length, c.dMlp * heads);
    for (let i = 1; i < every.length; i++) assert.ok(Math.abs(every[i - 1]!.raw) >= Math.abs(every[i]!.raw));
    assert.deepEqual(s.pairs, every.slice(0, 5), 'the trimmed top 5 is the top 5 of every pair');
    const onHead = every.filter((p) => p.head === `L${L}.H${hd}` && p.layer === 0);
    assert.deepEqual([onHead[0]!.neuron, onHead[1]!.neuron], [0, 1]);
    assert.ok(Math.abs(onHead[0]!.raw - norm / Math.sqrt(c.dHead)) < 1e-9 * norm, `h ${onHead[0]!.raw} vs |g_c|/√d_head`);
    assert.ok(Math.abs(onHead[1]!.raw + onHead[0]!.raw) < 1e-9 * norm);
    // The last layer has no later head.
    assert.ok(Number.isNaN(s.z[L * c.dMlp]!));
  } finally {
    close();
  }
});

test('attention scores: the kernel gives the plain loop\'s raw scores and z bit for bit (1 and 3 kernel threads)', async () => {
  const { weights, close } = openModelWeights(FIXTURE);
  try {
    const c = weights.config;
    const r = mulberry32(5);
    // Random unit rows, with d not a multiple of the kernel's 8 lanes in the head count.
    const wOut = processMlpWeights(weights).wOut.map((w) => Float64Array.from(w, () => r() - 0.5));
    const dirs = randomDirections(3, 64, c.nEmbd);
    const want = attentionScores(weights, wOut, dirs, 1e9, undefined, undefined, undefined, true);
    for (const threads of [1, 3]) {
      setKernelThreads(threads);
      const got = attentionScores(weights, wOut, dirs, 1e9);
      assert.equal(got.pairs.length, want.pairs.length);
      got.pairs.forEach((p, i) => {
        const q = want.pairs[i]!;
        assert.ok(p.layer === q.layer && p.neuron === q.neuron && p.head === q.head && Object.is(p.raw, q.raw) && Object.is(p.score, q.score), `pair ${i}, ${threads} threads`);
      });
      got.z.forEach((v, j) => assert.ok(Object.is(v, want.z[j]), `z ${j}`));
      assert.deepEqual(got.head, want.head);
    }
  } finally {
    setKernelThreads(0);
    close();
  }
});

test('neuronRoles on a fixture: every neuron gets a role string, baselines recorded', async () => {
  const { weights, close } = openModelWeights(FIXTURE);
  try {
    const ws = await weightStats(weights, { gemm: 'js' });
    const kurt = new Float64Array(ws.nNeurons).fill(3);
    const r = neuronRoles(weights, ws, kurt, { seed: 1, directions: 64 });
    assert.equal(r.role.length, ws.nNeurons);
    assert.ok(r.baseline.vocabVarMin > 0 && r.baseline.vocabVarMin < r.baseline.vocabVarMax);
    // The query's layers: the last max(1, round(0.2·L)).
    assert.equal(r.entropyRanking.length, (ws.nLayers - entropyFirstLayer(ws.nLayers, 0.2)) * ws.dMlp);
    assert.throws(() => neuronRoles(weights, ws, kurt, { directions: 4 }), /at least 16 random directions/);
  } finally {
    close();
  }
});
