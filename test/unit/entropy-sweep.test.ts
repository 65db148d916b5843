// The entropy sweep (src/engine/entropySweep.ts): every value's scores of a last-layer neuron from
// one forward, of an earlier neuron from the layers above it. Checked per token against the direct
// fixed forward (the intervention graph, which the torch goldens check in intervention.test.ts)
// with its softmax done in float64 here, on GPT-2 (tied, untied, the shipped model) and GPT-NeoX;
// and through entropyInterventions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { entropyInterventions } from '../../src/engine/analysis/intervention';
import { INPUT_IDS, INTERVENTION_VALUE, LOGITS, type NeuronRef } from '../../src/engine/arch/common';
import { type ArchWeights, buildGraph } from '../../src/engine/arch/index';
import { loadCheckpoint } from '../../src/engine/checkpoint';
import { entropySweep } from '../../src/engine/entropySweep';
import { KernelMemory } from '../../src/engine/kernels';
import { setKernelThreads } from '../../src/engine/kernels/pool';
import { createSession } from '../../src/engine/runtime';
import { openScorer } from '../../src/engine/scorer';
import { checkpointWeights } from '../../src/engine/validate';

const ROOT = join(__dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures');
const summary: string[] = [];
const VALUES = [-0.17, 0, 1, 6];

/** Rows of different lengths (the batch pads them), ids below the model's vocabulary. */
function rowsFor(V: number): number[][] {
  const ids = new Uint16Array(readFileSync(join(ROOT, 'models', 'corpus', 'heldout.tokens.bin')).buffer.slice(0));
  return [32, 17, 25].map((n, r) => [0, ...Array.from(ids.subarray(r * 50, r * 50 + n - 1), (x) => x % V)]);
}

/** The fixed forward's logits (value undefined: unfixed), softmax in float64: per token entropy and nll. */
async function reference(w: ArchWeights, rows: number[][], target: NeuronRef, value: number | undefined): Promise<{ entropy: number[]; nll: number[] }> {
  const session = await createSession(buildGraph(w, { logits: true, ...(value === undefined ? {} : { intervention: target }) }), [LOGITS], { threads: 1 }, []);
  const V = w.config.vocabSize;
  const entropy: number[] = [];
  const nll: number[] = [];
  try {
    for (const row of rows) {
      const res = await session.run(
        {
          [INPUT_IDS]: new ort.Tensor('int64', BigInt64Array.from(row, BigInt), [1, row.length]),
          ...(value === undefined ? {} : { [INTERVENTION_VALUE]: new ort.Tensor('float32', Float32Array.of(value), [1]) }),
        },
        [LOGITS],
      );
      const z = res[LOGITS]!.data as Float32Array;
      for (let t = 0; t < row.length; t++) {
        const r = z.subarray(t * V, (t + 1) * V);
        let m = -Infinity;
        for (const x of r) m = Math.max(m, x);
        let S = 0;
        for (const x of r) S += Math.exp(x - m);
        const lse = m + Math.log(S);
        let H = 0;
        for (const x of r) H -= Math.exp(x - lse) * (x - lse);
        entropy.push(H);
        nll.push(t + 1 < row.length ? lse - r[row[t + 1]!]! : 0);
      }
    }
  } finally {
    await session.release();
  }
  return { entropy, nll };
}

const MODELS: [string, string][] = [
  ['gpt2-tiny-crfm', join(FIXTURES, 'gpt2-tiny-crfm')],
  ['gpt2-tiny-untied', join(FIXTURES, 'gpt2-tiny-untied')],
  ['neox-14m (GPT-NeoX, parallel residual)', join(FIXTURES, 'neox-14m')],
  ['neox-tiny-seq (GPT-NeoX, sequential)', join(FIXTURES, 'neox-tiny-seq')],
  ['tiny-gpt2-a (shipped)', join(ROOT, 'models', 'tiny-gpt2-a')],
];

for (const [label, dir] of MODELS) {
  describe(`entropy sweep: ${label}`, () => {
    test('per token: entropy and loss as the fixed forward in float64, final-LN scale as the scorer; 1 and 3 threads bit-identical', async () => {
      const ck = loadCheckpoint(dir);
      try {
        const w = checkpointWeights(ck);
        const L = w.config.nLayer;
        const rows = rowsFor(w.config.vocabSize);
        // Two of the last layer (the affine path), one of layer 0 (the layers above it per value).
        const targets = [
          { layer: L - 1, neuron: 5 },
          { layer: 0, neuron: 3 },
          { layer: L - 1, neuron: w.config.dMlp - 1 },
        ];
        setKernelThreads(1);
        const sw = await entropySweep(w, rows, targets, VALUES, { threads: 1 });
        setKernelThreads(3);
        const sw3 = await entropySweep(w, rows, targets, VALUES, { threads: 2, batchTokens: 40 });
        setKernelThreads(0);
        assert.deepEqual(sw3, sw, '3 kernel threads and other batches: the same bits');
        const worst = { entropy: 0, nll: 0, lnScale: 0 };
        const moved = { entropy: 0, lnScale: 0 };
        const check = async (got: (typeof sw)['base'], target: NeuronRef, value: number | undefined): Promise<void> => {
          const want = await reference(w, rows, target, value);
          for (let i = 0; i < got.nTokens; i++) {
            worst.entropy = Math.max(worst.entropy, Math.abs(got.entropy[i]! - want.entropy[i]!));
            worst.nll = Math.max(worst.nll, Math.abs(got.nll[i]! - want.nll[i]!));
            moved.entropy = Math.max(moved.entropy, Math.abs(got.entropy[i]! - sw.base.entropy[i]!));
          }
        };
        await check(sw.base, targets[0]!, undefined);
        for (const [j, target] of targets.entries()) {
          const scorer = await openScorer(dir, { threads: 1, intervention: target });
          try {
            for (const [q, value] of VALUES.entries()) {
              const got = sw.byTarget[j]![q]!;
              await check(got, target, value);
              const s = await scorer.score(rows, { value });
              for (let i = 0; i < got.nTokens; i++) {
                worst.lnScale = Math.max(worst.lnScale, Math.abs(got.lnScale[i]! - s.lnScale[i]!) / s.lnScale[i]!);
                moved.lnScale = Math.max(moved.lnScale, Math.abs(got.lnScale[i]! - sw.base.lnScale[i]!));
              }
            }
          } finally {
            await scorer.close();
          }
        }
        summary.push(`${label.padEnd(40)} entropy ${worst.entropy.toExponential(2)}  nll ${worst.nll.toExponential(2)}  ln scale (rel.) ${worst.lnScale.toExponential(2)}`);
        assert.ok(moved.entropy > 1e-3 && moved.lnScale > 1e-3, `the values move the scores (${JSON.stringify(moved)}): else this test could not fail`);
        assert.ok(worst.entropy <= 5e-5 && worst.nll <= 5e-5 && worst.lnScale <= 1e-5, JSON.stringify(worst));
        for (const j of [1, 2]) {
          const last = rows.map((r, i) => sw.byTarget[j]![3]!.nll[sw.base.offsets[i]! + r.length - 1]);
          assert.deepEqual(last, [0, 0, 0], 'the last position has no target');
        }
      } finally {
        ck.weights.close();
      }
    });
  });
}

describe('entropyInterventions with the sweep', () => {
  test('a last-layer and a middle-layer neuron: in order, one baseline, the same means as the scorer\'s forward per value', async () => {
    const dir = join(FIXTURES, 'gpt2-tiny-crfm');
    const rows = rowsFor(50257);
    const targets = [
      { layer: 1, neuron: 13 },
      { layer: 2, neuron: 7 },
    ];
    const seen: number[] = [];
    const swept = await entropyInterventions(dir, rows, targets, VALUES, { threads: 2, onTarget: (i) => seen.push(i) });
    const direct = await entropyInterventions(dir, rows, targets, VALUES, { threads: 2, sweep: false });
    assert.deepEqual(seen, [0, 1]);
    assert.deepEqual(swept[0]!.baseline, swept[1]!.baseline);
    for (const [i, res] of swept.entries()) {
      res.points.forEach((p, q) => {
        const d = direct[i]!.points[q]!;
        assert.equal(p.value, d.value);
        for (const k of ['loss', 'entropy', 'lnScale', 'dLoss', 'dEntropy'] as const) assert.ok(Math.abs(p[k] - d[k]) <= 2e-5, `target ${i} value ${p.value} ${k}: ${p[k]} vs ${d[k]}`);
      });
    }
  });

  test('a bad neuron or value fails before any forward', async () => {
    const dir = join(FIXTURES, 'gpt2-tiny-crfm');
    await assert.rejects(entropyInterventions(dir, [[0, 1, 2]], [{ layer: 2, neuron: 1 }, { layer: 2, neuron: 99999 }], VALUES), /L2\.N99999 is outside this model's neurons/);
    await assert.rejects(entropyInterventions(dir, [[0, 1, 2]], [{ layer: 2, neuron: 1 }], [1, Infinity]), /intervention value Infinity is not a finite number/);
    await assert.rejects(entropyInterventions(dir, [[0, 1, 2]], [{ layer: 3, neuron: 1 }], VALUES), /intervention layer 3 is outside this model's layers 0\.\.2/);
  });
});

describe('the entropy kernel', () => {
  test('NaN or infinite logits are flagged, finite ones give the float64 softmax sums', () => {
    const V = 11;
    const P = 3;
    const mem = new KernelMemory(0);
    const k = mem.exports<{ entropyRows: (...a: number[]) => number; constants: (k0: number) => void; CONSTANTS_BYTES: { value: number } }>('entropy');
    const at = { k0: mem.alloc(k.CONSTANTS_BYTES.value), z: mem.alloc(4 * P * V), b: mem.alloc(4 * V), c: mem.alloc(4 * V), coef: mem.alloc(12 * P), bIndex: mem.alloc(4), target: mem.alloc(4 * P), row: mem.alloc(4 * V), sums: mem.alloc(16 * P), pick: mem.alloc(4 * P) };
    const z = mem.f32(at.z, P * V);
    z.forEach((_, i) => (z[i] = 3 * Math.sin(i)));
    z[V + 4] = NaN;
    z[2 * V + 10] = Infinity;
    // Base 2: the coefficients carry log₂ e; U and pick come back in base 2.
    mem.f32(at.coef, 3 * P).set([Math.LOG2E, 0, 0, Math.LOG2E, 0, 0, Math.LOG2E, 0, 0]);
    mem.i32(at.target, P).set([3, 2, -1]);
    k.constants(at.k0);
    const f = (...a: number[]): number => k.entropyRows(at.k0, ...a);
    assert.equal(f(at.z, P, V, 0, 1, 1, at.coef, at.b, at.bIndex, at.c, at.target, at.row, at.sums, at.pick), 0);
    assert.equal(f(at.z, P, V, 1, 2, 1, at.coef, at.b, at.bIndex, at.c, at.target, at.row, at.sums, at.pick), 1);
    assert.equal(f(at.z, P, V, 2, 3, 1, at.coef, at.b, at.bIndex, at.c, at.target, at.row, at.sums, at.pick), 1);
    const sums = mem.f64(at.sums, 2 * P);
    const r = Array.from(z.subarray(0, V));
    const m = Math.max(...r);
    const S = r.reduce((a, x) => a + Math.exp(x - m), 0);
    const U = r.reduce((a, x) => a + Math.exp(x - m) * (x - m), 0);
    assert.ok(Math.abs(sums[0]! / S - 1) < 1e-6 && Math.abs(sums[1]! * Math.LN2 - U) < 1e-6, `${sums[0]} vs ${S}, ${sums[1]! * Math.LN2} vs ${U}`);
    assert.ok(Math.abs(mem.f32(at.pick, P)[0]! * Math.LN2 - (r[3]! - m)) < 1e-6);
    assert.ok(Number.isNaN(sums[2]) && Number.isNaN(sums[4]));
  });

  test('no kernel has a data segment, which every instantiation would write over the shared arrays', async () => {
    const { hasDataSegment } = (await import(join(ROOT, 'src', 'engine', 'kernels', 'build.mjs'))) as { hasDataSegment: (b: Uint8Array) => boolean };
    const dir = join(ROOT, 'dist', 'kernels');
    const names = readdirSync(dir).filter((n) => n.endsWith('.wasm'));
    assert.ok(names.includes('entropy.wasm'));
    for (const n of names) assert.equal(hasDataSegment(readFileSync(join(dir, n))), false, n);
    // …and the check sees one: Math.log brings its tables.
    const tmp = mkdtempSync(join(tmpdir(), 'un-kernel-'));
    try {
      writeFileSync(join(tmp, 'log.ts'), 'export function f(x: f64): f64 { return Math.log(x); }\n');
      const asc = join(ROOT, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
      const r = spawnSync(process.execPath, [asc, join(tmp, 'log.ts'), '-O3', '--runtime', 'stub', '--importMemory', '-o', join(tmp, 'log.wasm')]);
      assert.equal(r.status, 0, String(r.stderr));
      assert.equal(hasDataSegment(readFileSync(join(tmp, 'log.wasm'))), true);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

after(() => {
  if (summary.length) console.log(`\nmax |sweep − fixed forward (float64 softmax)| per model:\n  ${summary.join('\n  ')}`);
});
