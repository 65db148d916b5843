// Roles from the weights on GPT-NeoX: the one-token BOS forward behind the attention scores
// (roles.ts bosForward, either residual form, rotary at position 0) against the engine's ONNX
// forward of the same token, and neuronRoles end to end on the NeoX fixtures.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { bosForward, neuronRoles } from '../../src/engine/analysis/roles';
import { openModelWeights, weightStats } from '../../src/engine/analysis/weightstats';
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
    assert.throws(() => neuronRoles(weights, ws, { seed: 1, directions: 64 }), /BOS id is needed for model_type "gpt_neox"/);
    const r = neuronRoles(weights, ws, { seed: 1, directions: 64, bos: 0 });
    assert.equal(r.role.length, ws.nNeurons);
    for (let j = 0; j < (c.nLayer - 1) * c.dMlp; j++) {
      assert.ok(Number.isFinite(r.attnScore[j]!), `neuron ${j}`);
      assert.match(r.attnHead[j]!, /^L[1-9]\d*\.H\d+$/);
    }
    assert.ok(r.attention.length > 0 && r.attention.every((p) => p.raw > 0));
  } finally {
    close();
  }
});
