// Roles from the weights on GPT-NeoX: the one-token BOS forward behind the attention scores
// (roles.ts bosForward, either residual form, rotary at position 0) against the engine's ONNX
// forward of the same token, and neuronRoles end to end on the NeoX fixtures.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { attentionScores, bosForward, neuronRoles, randomDirections } from '../../src/engine/analysis/roles';
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
// method (its own one-token forward and fused-QKV split, float64 PyTorch).
for (const name of ['neox-14m', 'neox-tiny-seq']) {
  test(`${name}: attention-deactivation raw scores equal the PyTorch golden (every pair, ≤1e-4)`, () => {
    const g = JSON.parse(readFileSync(join(FIXTURES, 'weightstats', `${name}.json`), 'utf8')) as { attention_h: number[][][] };
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
      const s = attentionScores(weights, wOutUnit, randomDirections(1, 64, d), Infinity, undefined, 0);
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
