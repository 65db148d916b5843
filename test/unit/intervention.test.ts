// The scoring graph (per-token nll, entropy, final-LN scale) and the neuron intervention against
// an independent PyTorch forward (tools/torch_reference.py writes the golden
// test/fixtures/golden/gpt2-tiny-crfm.scores.json), plus the errors a caller can run into.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { entropyIntervention, entropyInterventions, heldoutLoss, scoreMeans } from '../../src/engine/analysis/intervention';
import { buildGpt2Graph, hookName, INPUT_IDS, INTERVENTION_VALUE, LOGITS, parseGpt2Config, resolveGpt2Weights, TARGETS } from '../../src/engine/arch/gpt2';
import { loadCheckpoint } from '../../src/engine/checkpoint';
import { CancelledError, EngineError } from '../../src/engine/errors';
import { openModel, safetensorsSource } from '../../src/engine/runtime';
import { openScorer, Scorer, type TokenScores } from '../../src/engine/scorer';

const FIXTURE = join(__dirname, '..', 'fixtures', 'gpt2-tiny-crfm');
const TOL = 1e-4;

interface RowScores {
  nll: number[];
  entropy: number[];
  ln_scale: number[];
}
const golden = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'golden', 'gpt2-tiny-crfm.scores.json'), 'utf8')) as {
  rows: number[][];
  plain: RowScores[];
  intervention: { layer: number; neuron: number; values: { value: number; rows: RowScores[] }[] };
};
const target = { layer: golden.intervention.layer, neuron: golden.intervention.neuron };
const summary: string[] = [];

/** Max |engine − golden| per score over all rows. */
function diffs(s: TokenScores, want: RowScores[]): { nll: number; entropy: number; lnScale: number } {
  assert.equal(s.nTokens, golden.rows.reduce((a, r) => a + r.length, 0));
  const d = { nll: 0, entropy: 0, lnScale: 0 };
  const worst = (got: Float32Array, exp: number[], r: number): number => {
    let m = 0;
    exp.forEach((e, t) => {
      const x = Math.abs(got[s.offsets[r]! + t]! - e);
      if (!(x <= m)) m = x; // NaN fails
    });
    return m;
  };
  want.forEach((w, r) => {
    d.nll = Math.max(d.nll, worst(s.nll, w.nll, r));
    d.entropy = Math.max(d.entropy, worst(s.entropy, w.entropy, r));
    d.lnScale = Math.max(d.lnScale, worst(s.lnScale, w.ln_scale, r));
  });
  return d;
}

function within(label: string, d: { nll: number; entropy: number; lnScale: number }): void {
  summary.push(`${label.padEnd(28)} nll ${d.nll.toExponential(2)}  entropy ${d.entropy.toExponential(2)}  ln scale ${d.lnScale.toExponential(2)}`);
  assert.ok(d.nll <= TOL && d.entropy <= TOL && d.lnScale <= TOL, `${label}: ${JSON.stringify(d)}`);
}

/** Means over positions with a target, in float64, of the golden rows. */
function goldenMeans(rows: RowScores[]): { loss: number; entropy: number; lnScale: number } {
  let loss = 0;
  let entropy = 0;
  let lnScale = 0;
  let n = 0;
  for (const r of rows) {
    for (let t = 0; t + 1 < r.nll.length; t++, n++) {
      loss += r.nll[t]!;
      entropy += r.entropy[t]!;
      lnScale += r.ln_scale[t]!;
    }
  }
  return { loss: loss / n, entropy: entropy / n, lnScale: lnScale / n };
}

describe('scores and intervention against torch: gpt2-tiny-crfm', () => {
  let scorer: Scorer;
  before(async () => {
    scorer = await openScorer(FIXTURE, { threads: 2, intervention: target });
  });
  after(async () => {
    await scorer?.close();
  });

  test('the golden rows need padding and the intervention changes every score', () => {
    assert.ok(new Set(golden.rows.map((r) => r.length)).size > 1);
    for (const v of golden.intervention.values) {
      for (const key of ['nll', 'entropy', 'ln_scale'] as const) {
        const moved = v.rows.some((r, i) => r[key].some((x, t) => Math.abs(x - golden.plain[i]![key][t]!) > 1e-3));
        assert.ok(moved, `value ${v.value} leaves ${key} unchanged: the test would not see a broken intervention`);
      }
    }
  });

  test(`plain nll, entropy, ln_final scale within ${TOL}`, async () => {
    const s = await scorer.score(golden.rows);
    within('plain', diffs(s, golden.plain));
    golden.rows.forEach((r, i) => assert.equal(s.nll[s.offsets[i]! + r.length - 1], 0, 'the last position has no target'));
  });

  test(`intervened L${target.layer}.N${target.neuron} within ${TOL}`, async () => {
    for (const v of golden.intervention.values) within(`L${target.layer}.N${target.neuron} = ${v.value}`, diffs(await scorer.score(golden.rows, { value: v.value }), v.rows));
  });

  test('one row per ORT run gives the same scores', async () => {
    const small = await openScorer(FIXTURE, { threads: 1, batchTokens: 32, intervention: target });
    try {
      within('plain, batchTokens 32', diffs(await small.score(golden.rows), golden.plain));
      const v = golden.intervention.values[1]!;
      within(`= ${v.value}, batchTokens 32`, diffs(await small.score(golden.rows, { value: v.value }), v.rows));
    } finally {
      await small.close();
    }
  });

  test('entropyIntervention and heldoutLoss report the golden means', async () => {
    const values = golden.intervention.values.map((v) => v.value);
    const res = await entropyIntervention(FIXTURE, golden.rows, target, values, { threads: 2 });
    const close = (got: { loss: number; entropy: number; lnScale: number }, want: ReturnType<typeof goldenMeans>, label: string): void => {
      for (const k of ['loss', 'entropy', 'lnScale'] as const) assert.ok(Math.abs(got[k] - want[k]) <= TOL, `${label} ${k}: ${got[k]} vs ${want[k]}`);
    };
    const base = goldenMeans(golden.plain);
    close(res.baseline, base, 'baseline');
    assert.deepEqual(
      res.points.map((p) => p.value),
      values,
    );
    res.points.forEach((p, i) => {
      close(p, goldenMeans(golden.intervention.values[i]!.rows), `value ${p.value}`);
      assert.equal(p.dLoss, p.loss - res.baseline.loss);
      assert.equal(p.dEntropy, p.entropy - res.baseline.entropy);
    });
    assert.ok(Math.abs((await heldoutLoss(FIXTURE, golden.rows, { threads: 2 })) - base.loss) <= TOL);
  });
});

describe('several neurons on one shared unfixed forward', () => {
  test('entropyInterventions equals each neuron run on its own scorer; the golden neuron matches torch', async () => {
    const values = golden.intervention.values.map((v) => v.value);
    const other = { layer: 0, neuron: 3 };
    const seen: number[] = [];
    const [a, b] = await entropyInterventions(FIXTURE, golden.rows, [target, other], values, { threads: 2, onTarget: (i) => seen.push(i) });
    assert.deepEqual(seen, [0, 1]);
    const base = goldenMeans(golden.plain);
    for (const k of ['loss', 'entropy', 'lnScale'] as const) assert.ok(Math.abs(a!.baseline[k] - base[k]) <= TOL);
    assert.deepEqual(b!.baseline, a!.baseline, 'one baseline for both');
    a!.points.forEach((p, i) => {
      const want = goldenMeans(golden.intervention.values[i]!.rows);
      for (const k of ['loss', 'entropy', 'lnScale'] as const) assert.ok(Math.abs(p[k] - want[k]) <= TOL, `value ${p.value} ${k}`);
    });
    // The second neuron against its own scorer, row by row (one row per run: another batching).
    const own = await openScorer(FIXTURE, { threads: 2, intervention: other, batchTokens: 1 });
    try {
      for (const p of b!.points) {
        const m = scoreMeans(await own.score(golden.rows, { value: p.value }));
        for (const k of ['loss', 'entropy', 'lnScale'] as const) assert.ok(Math.abs(p[k] - m[k]) <= 1e-5, `L0.N3 value ${p.value} ${k}: ${p[k]} vs ${m[k]}`);
        assert.equal(p.dLoss, p.loss - b!.baseline.loss);
      }
    } finally {
      await own.close();
    }
    assert.deepEqual(await entropyInterventions(FIXTURE, golden.rows, [], values), []);
    await assert.rejects(entropyInterventions(FIXTURE, golden.rows, [other, { layer: 0, neuron: 1e6 }], values, { threads: 1 }), /outside this model's neurons/);
  });
});

describe('the intervention graph', () => {
  test('hook_post shows the fixed value; other neurons and earlier layers are untouched; logits stay inside', async () => {
    const ck = loadCheckpoint(FIXTURE);
    const model = await openModel(FIXTURE, { threads: 2 });
    try {
      const cfg = parseGpt2Config(ck.configJson, ck.configPath);
      const w = resolveGpt2Weights(cfg, safetensorsSource(ck.weights), ck.weights.path);
      const session = await ort.InferenceSession.create(buildGpt2Graph(w, { logits: false, scores: true, intervention: target }).toBytes(), { intraOpNumThreads: 2 });
      try {
        assert.ok(!session.outputNames.includes(LOGITS), 'the scores variant must not output logits');
        const row = golden.rows[0]!;
        const S = row.length;
        const value = 2.5;
        const res = await session.run({
          [INPUT_IDS]: new ort.Tensor('int64', BigInt64Array.from(row, BigInt), [1, S]),
          [TARGETS]: new ort.Tensor('int64', new BigInt64Array(S).fill(-1n), [1, S]),
          [INTERVENTION_VALUE]: new ort.Tensor('float32', Float32Array.of(value), [1]),
        });
        assert.deepEqual([...(res['nll']!.data as Float32Array)], new Array(S).fill(0), 'no target: nll 0');
        const plain = await model.runTokens([row]);
        const M = model.dMlp;
        for (let l = 0; l <= target.layer; l++) {
          const got = res[hookName(l, 'post')]!.data as Float32Array;
          const want = plain.hookPost[l]!;
          for (let i = 0; i < S * M; i++) {
            if (l === target.layer && i % M === target.neuron) assert.equal(got[i], value);
            else assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6, `L${l} token ${Math.floor(i / M)} neuron ${i % M}`);
          }
        }
      } finally {
        await session.release();
      }
    } finally {
      ck.weights.close();
      await model.close();
    }
  });
});

describe('errors', () => {
  test('a neuron or layer outside the model is refused at open', async () => {
    const refuses = async (intervention: { layer: number; neuron: number }, ...patterns: RegExp[]): Promise<void> => {
      await assert.rejects(openScorer(FIXTURE, { threads: 1, intervention }), (e: unknown) => {
        assert.ok(e instanceof EngineError, String(e));
        for (const p of patterns) assert.match(e.message, p);
        return true;
      });
    };
    await refuses({ layer: 1, neuron: 64 }, /L1\.N64/, /0\.\.63/, /d_mlp/);
    await refuses({ layer: 0, neuron: -1 }, /L0\.N-1/);
    await refuses({ layer: 0, neuron: 1.5 }, /L0\.N1\.5/);
    await refuses({ layer: 3, neuron: 0 }, /layer 3/, /0\.\.2/);
    await assert.rejects(entropyIntervention(FIXTURE, golden.rows, { layer: 2, neuron: 99 }, [1], { threads: 1 }), EngineError);
  });

  test('values, rows and scorers that cannot be scored', async () => {
    const s = await openScorer(FIXTURE, { threads: 1, intervention: target });
    const plain = await openScorer(FIXTURE, { threads: 1 });
    try {
      for (const value of [NaN, Infinity, -Infinity]) await assert.rejects(s.score(golden.rows, { value }), /not a finite number/);
      await assert.rejects(plain.score(golden.rows, { value: 1 }), (e: unknown) => e instanceof EngineError && /without an intervention/.test(e.message));
      await assert.rejects(s.score([[50256, 50257]]), (e: unknown) => e instanceof EngineError && /token id 50257/.test(e.message));
      await assert.rejects(entropyIntervention(FIXTURE, golden.rows, target, [0, NaN]), (e: unknown) => e instanceof EngineError && /NaN/.test(e.message));
      // A row of BOS alone predicts nothing: a mean over no positions is an error, not NaN.
      assert.throws(() => scoreMeans({ offsets: [0, 1], nTokens: 1, nll: new Float32Array(1), entropy: new Float32Array(1), lnScale: new Float32Array(1) }), EngineError);
      const empty = await s.score([]);
      assert.equal(empty.nTokens, 0);
    } finally {
      await s.close();
      await plain.close();
    }
    await assert.rejects(s.score(golden.rows), /closed/);
  });

  test('cancellation between batches', async () => {
    const s = await openScorer(FIXTURE, { threads: 1, batchTokens: 32 });
    try {
      let checks = 0;
      const signal = {
        get cancelled() {
          return ++checks > 2;
        },
      };
      await assert.rejects(s.score(golden.rows, { signal }), CancelledError);
      await assert.rejects(heldoutLoss(FIXTURE, golden.rows, { threads: 1, signal: { cancelled: true } }), CancelledError);
    } finally {
      await s.close();
    }
  });
});

after(() => {
  if (summary.length) console.log(`\nmax |engine − torch| (gpt2-tiny-crfm scores):\n  ${summary.join('\n  ')}`);
});
