// Roles from the weights on GPT-NeoX: the one-token BOS forward behind the attention scores
// (roles.ts bosForward, either residual form, rotary at position 0) against the engine's ONNX
// forward of the same token, and neuronRoles end to end on the NeoX fixtures.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { attentionScores, bosForward, meanRotatedKey, neuronRoles, randomDirections } from '../../src/engine/analysis/roles';
import { openModelWeights, processMlpWeights, weightStats } from '../../src/engine/analysis/weightstats';
import { openModel } from '../../src/engine/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures');

// neox-14m: parallel residual (Pythia's); neox-tiny-seq: sequential; gpt2-tiny-crfm: GPT-2's layout.
for (const name of ['neox-14m', 'neox-tiny-seq', 'gpt2-tiny-crfm']) {
  test(`${name}: bosForward's hook_pre at BOS equals the engine's forward of BOS alone (≤1e-4)`, async () => {
    const dir = join(FIXTURES, name);
    const model = await openModel(dir, { threads: 1 });
    const bos = model.tokenizer.bosId;
    let hookPre: Float32Array[];
    try {
      hookPre = (await model.runTokens([[bos]], { hooks: ['pre'] })).hookPre;
    } finally {
      await model.close();
    }
    const { weights, close } = openModelWeights(dir);
    try {
      const f = bosForward(weights, bos);
      assert.equal(f.pre.length, weights.config.nLayer);
      for (let l = 0; l < weights.config.nLayer; l++) {
        const a = f.pre[l]!;
        const b = hookPre[l]!;
        assert.equal(a.length, b.length);
        let diff = 0;
        for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        assert.ok(diff <= 1e-4, `layer ${l}: max |bosForward − engine| = ${diff}`);
      }
      assert.ok(f.keys.every((k) => k.length === weights.config.nEmbd && k.every(Number.isFinite)));
    } finally {
      close();
    }
  });
}

test('neuronRoles on GPT-NeoX: attention scores against every later head, a role string per neuron; the BOS id is required', async () => {
  const { weights, close } = openModelWeights(join(FIXTURES, 'neox-14m'));
  try {
    const c = weights.config;
    const ws = await weightStats(weights, { gemm: 'js' });
    const kurt = new Float64Array(ws.nNeurons).fill(3);
    assert.throws(() => neuronRoles(weights, ws, kurt, { seed: 1, directions: 64 }), /BOS id is needed for model_type "gpt_neox"/);
    const r = neuronRoles(weights, ws, kurt, { seed: 1, directions: 64, bos: 0 });
    assert.equal(r.role.length, ws.nNeurons);
    for (let j = 0; j < (c.nLayer - 1) * c.dMlp; j++) {
      assert.ok(Number.isFinite(r.attnScore[j]!), `neuron ${j}`);
      assert.match(r.attnHead[j]!, /^L[1-9]\d*\.H\d+$/);
    }
    // Listed by |h|, largest first (issue #14: as the paper ranks them).
    assert.ok(r.attention.length > 0 && r.attention.every((p, i) => i === 0 || Math.abs(r.attention[i - 1]!.raw) >= Math.abs(p.raw)));
  } finally {
    close();
  }
});

// tools/torch_weight_stats.py writes, for GPT-NeoX fixtures, every raw attention score h of the
// method (its own one-token forward and fused-QKV split, float64 PyTorch): with rotary keys the
// mean over query positions 1 … P−1 of the per-position score, each query rotated as HF's forward
// rotates it, against the unrotated k_BOS (the engine instead averages the key: roles.ts).
for (const name of ['neox-14m', 'neox-tiny-seq']) {
  test(`${name}: attention-deactivation raw scores equal the PyTorch golden (every pair, ≤1e-4)`, () => {
    const g = JSON.parse(readFileSync(join(FIXTURES, 'weightstats', `${name}.json`), 'utf8')) as { attention_h: number[][][]; attention_positions: [number, number] };
    const { weights, close } = openModelWeights(join(FIXTURES, name));
    try {
      const { nEmbd: d, dMlp: m, nHead: H } = weights.config;
      const wOutUnit = processMlpWeights(weights).wOut.map((Wo) => {
        const u = Float64Array.from(Wo);
        for (let n = 0; n < m; n++) {
          const row = u.subarray(n * d, (n + 1) * d);
          const norm = Math.sqrt(row.reduce((x, y) => x + y * y, 0));
          row.forEach((x, i) => (row[i] = x / norm));
        }
        return u;
      });
      const [first, last] = g.attention_positions;
      assert.equal(first, 1);
      const s = attentionScores(weights, wOutUnit, randomDirections(1, 64, d), Infinity, undefined, 0, last + 1);
      assert.deepEqual(s.query?.positions, [1, last]);
      const positive = g.attention_h.flat(2).length; // every pair, both signs (listed by |h|)
      assert.equal(s.pairs.length, positive, "one pair per golden h");
      let worst = 0;
      for (const p of s.pairs) {
        const [, l2, hd] = /^L(\d+)\.H(\d+)$/.exec(p.head)!.map(Number);
        const want = g.attention_h[p.layer]![p.neuron]![(l2! - p.layer - 1) * H + hd!]!;
        worst = Math.max(worst, Math.abs(p.raw - want));
        assert.ok(Math.abs(p.raw - want) <= 1e-4 + 1e-5 * Math.abs(want), `L${p.layer}.N${p.neuron} ${p.head}: ${p.raw} vs ${want}`);
      }
      console.log(`${name}: ${s.pairs.length} pairs, max |h − torch| ${worst.toExponential(2)}`);
    } finally {
      close();
    }
  });
}

test('rotary attention scores: the mean over query positions, not position 0; the row length is checked; GPT-2 is unchanged', () => {
  const unit = (w: Parameters<typeof processMlpWeights>[0]) =>
    processMlpWeights(w).wOut.map((Wo) => {
      const u = Float64Array.from(Wo);
      const d = w.config.nEmbd;
      for (let n = 0; n < w.config.dMlp; n++) {
        const row = u.subarray(n * d, (n + 1) * d);
        const norm = Math.sqrt(row.reduce((x, y) => x + y * y, 0));
        row.forEach((x, i) => (row[i] = x / norm));
      }
      return u;
    });
  const neox = openModelWeights(join(FIXTURES, 'neox-14m'));
  try {
    const { nEmbd: d, nPositions: P } = neox.weights.config;
    const wOut = unit(neox.weights);
    const dirs = randomDirections(1, 64, d);
    const byContext = (n?: number) => attentionScores(neox.weights, wOut, dirs, Infinity, undefined, 0, n);
    // Default: the model's context; a run's shorter rows average over fewer positions.
    assert.deepEqual(byContext().query, { positions: [1, P - 1], rotaryDims: 8, rotaryBase: 10000 });
    const short = byContext(8);
    assert.deepEqual(short.query?.positions, [1, 7]);
    const h = (s: ReturnType<typeof byContext>) => new Map(s.pairs.map((p) => [`${p.layer}.${p.neuron}.${p.head}`, p.raw]));
    const [a, b] = [h(byContext()), h(short)];
    assert.ok([...a].some(([k, v]) => Math.abs(v - b.get(k)!) > 1e-4), 'the positions averaged over must matter');
    // n = 2 is the query at position 1 alone: R_{-1}·k_BOS.
    assert.deepEqual(byContext(2).query?.positions, [1, 1]);
    for (const bad of [1, P + 1, 2.5]) assert.throws(() => byContext(bad), /query positions 1 … n−1 of a run's rows; a row length of/);
  } finally {
    neox.close();
  }
  const gpt2 = openModelWeights(join(FIXTURES, 'gpt2-tiny-crfm'));
  try {
    const wOut = unit(gpt2.weights);
    const dirs = randomDirections(1, 64, gpt2.weights.config.nEmbd);
    const plain = attentionScores(gpt2.weights, wOut, dirs, Infinity);
    const withRows = attentionScores(gpt2.weights, wOut, dirs, Infinity, undefined, undefined, 5);
    assert.equal(plain.query, null);
    assert.deepEqual(withRows.z, plain.z);
    assert.deepEqual(withRows.pairs, plain.pairs);
  } finally {
    gpt2.close();
  }
});

test('meanRotatedKey against a loop over positions with explicit cos/sin of HF rotate_half', () => {
  const H = 2;
  const dh = 8;
  const rotary = { dims: 4, base: 500 };
  const key = Float64Array.from({ length: H * dh }, (_, i) => Math.sin(1.7 * i + 0.3));
  const q = Float64Array.from({ length: H * dh }, (_, i) => Math.cos(0.9 * i - 0.2));
  const n = 11;
  const kbar = meanRotatedKey(key, H, dh, rotary, n);
  for (let h = 0; h < H; h++) {
    // Direct: rotate the query to position p (x·cos + rotate_half(x)·sin), score against the unrotated key, average.
    let direct = 0;
    for (let p = 1; p < n; p++) {
      const qp = new Float64Array(dh);
      for (let i = 0; i < dh; i++) {
        if (i >= rotary.dims) {
          qp[i] = q[h * dh + i]!;
          continue;
        }
        const half = rotary.dims / 2;
        const theta = p * rotary.base ** (-(2 * (i % half)) / rotary.dims);
        const rot = i < half ? -q[h * dh + i + half]! : q[h * dh + i - half]!;
        qp[i] = q[h * dh + i]! * Math.cos(theta) + rot * Math.sin(theta);
      }
      for (let i = 0; i < dh; i++) direct += qp[i]! * key[h * dh + i]!;
    }
    direct /= n - 1;
    let viaMean = 0;
    for (let i = 0; i < dh; i++) viaMean += q[h * dh + i]! * kbar[h * dh + i]!;
    assert.ok(Math.abs(direct - viaMean) < 1e-12, `head ${h}: ${direct} vs ${viaMean}`);
  }
  // Dims past the rotary ones pass unchanged.
  for (let h = 0; h < H; h++) for (let i = rotary.dims; i < dh; i++) assert.equal(kbar[h * dh + i], key[h * dh + i]);
});
