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
  neuronRoles,
  randomDirections,
  unembedMoments,
  unembedMomentsPlain,
} from '../../src/engine/analysis/roles';
import { openModelWeights, processMlpWeights, readTensor, unitUnembedRows, weightStats } from '../../src/engine/analysis/weightstats';

const FIXTURE = join(__dirname, '..', 'fixtures', 'gpt2-tiny-crfm');

test('role rules on hand-made vocab moments and weight norms', () => {
  // 2 layers × 4 neurons. Layer 1 is the last.
  const stats = {
    nLayers: 2,
    dMlp: 4,
    //                 L0: pred  supp  part  none | L1: entropy  big-not-tiny  tiny-small-l2  none
    vocab_kurt: Float64Array.from([12, 15, 3, 9.9, 3, 3, 3, 3]),
    vocab_skew: Float64Array.from([2, -3, 0, 5, 0, 0, 0, 0]),
    vocab_var: Float64Array.from([0.01, 0.01, 0.5, 0.01, 0.0001, 0.01, 0.0001, 0.01]),
    l2_penalty: Float64Array.from([1, 1, 1, 1, 9, 9, 1, 1]),
  };
  const attn = { z: Float64Array.from([0, 6, 0, 4.9, NaN, NaN, NaN, NaN]), head: ['', 'L1.H0', '', 'L1.H2', '', '', '', ''] };
  const r = applyRoleRules(stats, { min: 0.001, max: 0.1 }, attn, { entropyL2Quantile: 0.5 });
  assert.deepEqual(r.roles, ['prediction', 'attention-deactivation,suppression', 'partition', '', 'entropy', '', '', '']);
  assert.deepEqual(r.role, ['prediction', 'attention-deactivation', 'partition', '', 'entropy', '', '', '']);
  // The ranking covers the last layer by l2/vocab_var; the rule marks only the one that passes it.
  assert.deepEqual(
    r.entropyRanking.map((e) => [e.index, e.candidate]),
    [
      [4, true],
      [6, false],
      [5, false],
      [7, false],
    ],
  );
  // Thresholds are settings.
  const strict = applyRoleRules(stats, { min: 0.001, max: 0.1 }, attn, { vocabKurt: 13, attentionZ: 10, entropyL2Quantile: 0.5 });
  assert.deepEqual(strict.roles.slice(0, 2), ['', 'suppression']);
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

test('the unembedding moments in cache-sized bands equal the plain rank-1 loop bit for bit', () => {
  // d = 300: bands of 109 rows (three of them); V = 51: four v at a time, then a remainder of 3.
  for (const [V, d] of [
    [51, 300],
    [8, 5],
    [3, 7],
  ] as const) {
    let s = 12345;
    const U = Float32Array.from({ length: V * d }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1);
    const got = unembedMoments(U, d);
    const want = unembedMomentsPlain(U, d);
    for (let e = 0; e < d * d; e++) if (!Object.is(got.M[e], want.M[e])) assert.fail(`V ${V} d ${d}: M[${e}] ${got.M[e]} vs ${want.M[e]}`);
    for (let i = 0; i < d; i++) assert.ok(Object.is(got.mu[i], want.mu[i]), `mu[${i}]`);
  }
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
    assert.deepEqual(s.pairs[0], { ...s.pairs[0]!, layer: 0, neuron: 0, head: `L${L}.H${hd}` });
    assert.ok(s.pairs.every((p) => p.raw > 0));
    // The last layer has no later head.
    assert.ok(Number.isNaN(s.z[L * c.dMlp]!));
  } finally {
    close();
  }
});

test('neuronRoles on a fixture: every neuron gets a role string, baselines recorded', async () => {
  const { weights, close } = openModelWeights(FIXTURE);
  try {
    const ws = await weightStats(weights, { gemm: 'js' });
    const r = neuronRoles(weights, ws, { seed: 1, directions: 64 });
    assert.equal(r.role.length, ws.nNeurons);
    assert.ok(r.baseline.vocabVarMin > 0 && r.baseline.vocabVarMin < r.baseline.vocabVarMax);
    assert.equal(r.entropyRanking.length, ws.dMlp);
    assert.throws(() => neuronRoles(weights, ws, { directions: 4 }), /at least 16 random directions/);
  } finally {
    close();
  }
});
