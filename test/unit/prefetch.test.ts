// The forward worker (src/engine/analysis/pipeline/prefetch.ts): the next batch's forwards on a
// worker thread while the analysis' thread accumulates. Its activations are bit-identical to the
// analysis' thread's own forward, a run gives byte-identical results with it on and off, a worker
// that dies stops the run with a clear error and the run resumes to the same results; a thread
// that ends while its worker is inside a forward does not take the process down.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCorpus, row } from '../../src/engine/corpus';
import { openModel, type Model } from '../../src/engine/runtime';
import { readJson, writeFileAtomic } from '../../src/engine/store';
import { runAnalysis, type AnalysisPlan, type Manifest } from '../../src/engine/analysis/pipeline';
import { ForwardPrefetch } from '../../src/engine/analysis/pipeline/prefetch';
import type { Accumulator, AccumulatorState, ActivationBatch } from '../../src/engine/analysis/types';

const ROOT = join(__dirname, '..', '..');
const MODEL = (s: string) => join(ROOT, 'models', `tiny-gpt2-${s}`);
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-prefetch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Makes the worker exit at the next message it reads (what close() sends), as a crash would end it. */
const exitWorker = (p: ForwardPrefetch): void => (p as unknown as { worker: { postMessage(m: unknown): void } }).worker.postMessage({ op: 'close' });

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('ForwardPrefetch', () => {
  let here: Model;
  let there: Model;
  before(async () => {
    here = await openModel(MODEL('b'), { threads: 1 });
    there = await openModel(MODEL('b'), { threads: 1 });
  });
  after(async () => {
    await here.close();
    await there.close();
  });

  test("the worker's forward is bit-identical to this thread's; this thread's sessions are released", async () => {
    const corpus = readCorpus({ paths: [HELDOUT], nPositions: 128, tokens: 128 * 4 });
    const rows = [row(corpus, 0), row(corpus, 1), row(corpus, 2)];
    const kept = Int32Array.from({ length: 300 }, (_, k) => (k * 7) % 384).sort();
    const kinds = ['keptPre', 'keptPost', 'post', 'pre'] as const;
    const want = await here.runKept(rows, kept, kinds);
    const p = new ForwardPrefetch(1);
    try {
      assert.ok(there.forward.loadedVariants().length > 0, 'a model opens with a session');
      await p.load(1, there, kinds);
      assert.deepEqual(there.forward.loadedVariants(), [], 'no session of the model left on this thread');
      assert.equal(p.request('k1', 1, there, rows, kept, kinds), true);
      const got = await p.take('k1')!;
      assert.equal(p.take('k1'), undefined, 'taken once');
      for (const k of kinds) {
        assert.equal(got[k]!.length, want![k]!.length, k);
        assert.ok(bits(got[k]!).equals(bits(want![k]!)), `${k}: bit-identical`);
      }
      // A model not loaded on the worker is not requested there.
      assert.equal(p.request('k2', 0, there, rows, kept, kinds), false);
    } finally {
      await p.close();
    }
  });

  test('a worker that dies fails the forward waiting on it, and every later one, with a clear error', async () => {
    const corpus = readCorpus({ paths: [HELDOUT], nPositions: 128, tokens: 128 * 2 });
    const rows = [row(corpus, 0)];
    const kept = Int32Array.from({ length: 100 }, (_, k) => k);
    const p = new ForwardPrefetch(1);
    await p.load(0, there, ['keptPost']);
    // The worker exits before it reads the request (as a crash would end it).
    exitWorker(p);
    p.request('a', 0, there, rows, kept, ['keptPost']);
    const waiting = p.take('a')!;
    await assert.rejects(waiting, /the forward worker exited \(code 0\); the run stops \(its last checkpoint can be resumed\)/);
    p.request('b', 0, there, rows, kept, ['keptPost']);
    await assert.rejects(p.take('b')!, /the forward worker exited/);
    await p.close();
  });

  // Node terminates a worker when the thread that made it ends; terminated inside onnxruntime's
  // run, it aborted the whole process (found by the analysis worker's crash test in CI).
  for (const how of ['exit', 'uncaught'] as const) {
    test(`a thread that ends by ${how === 'exit' ? 'process.exit' : 'an uncaught exception'} inside the worker's forward ends with its own code, not SIGABRT`, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'prefetch-exit.ts'), how], { encoding: 'utf8', timeout: 120_000 });
      assert.match(r.stdout, /ending inside the forward/);
      assert.doesNotMatch(r.stderr, /terminate called/);
      assert.equal(r.signal, null, r.stderr);
      assert.equal(r.status, how === 'exit' ? 3 : 1, r.stderr);
    });
  }
});

/** Float64 sums of each model's kept pre/post activations and a fingerprint of the batch order. */
class SumAcc implements Accumulator<Float64Array> {
  sum: Float64Array;
  order = 0;
  constructor(
    readonly model: number,
    readonly N: number,
  ) {
    this.sum = new Float64Array(2 * N);
  }
  add(b: ActivationBatch): void {
    const m = b.models[this.model]!;
    const N = this.N;
    for (let k = 0; k < b.nKept; k++) {
      for (let j = 0; j < N; j++) {
        this.sum[j]! += m.keptPost[k * N + j]!;
        this.sum[N + j]! += m.keptPre[k * N + j]!;
      }
    }
    this.order = (this.order * 31 + b.batchIndex + 1) % 1_000_000_007;
  }
  state(): AccumulatorState {
    return { sum: this.sum, order: this.order };
  }
  static restore(s: AccumulatorState, model: number, N: number): SumAcc {
    const a = new SumAcc(model, N);
    a.sum.set(s.sum as Float64Array);
    a.order = s.order as number;
    return a;
  }
  finish(): Float64Array {
    const out = new Float64Array(this.sum.length + 1);
    out.set(this.sum);
    out[this.sum.length] = this.order;
    return out;
  }
}

/** Each model read for its kept arrays only, as the default plan's cross moments and statistics read. */
const plan: AnalysisPlan = {
  accumulators: (ctx) =>
    ctx.models.map((m, i) => ({
      name: `sum:${m.label}`,
      reads: { models: [i], arrays: ['keptPre', 'keptPost'] },
      create: () => new SumAcc(i, m.nNeurons),
      restore: (s) => SumAcc.restore(s, i, m.nNeurons),
    })),
  finalize: async (ctx, results) => {
    writeFileAtomic(join(ctx.runDir, 'sums.bin'), [...results.values()].map((r) => new Uint8Array((r as Float64Array).buffer)));
    return { files: ['sums.bin'] };
  },
};

// 2 threads: with one, the run has no worker (a second thread).
const BASE = { models: [MODEL('a'), MODEL('b'), MODEL('c')], corpus: [HELDOUT], tokens: 128 * 12, batchRows: 2, checkpointEvery: 2, threads: 2, plan };

/** Counts the forwards requested from workers while `f` runs; `onRequest` sees each. */
async function counting<T>(f: () => Promise<T>, onRequest: (p: ForwardPrefetch, n: number) => void = () => {}): Promise<{ value: T; requests: number }> {
  const orig = ForwardPrefetch.prototype.request;
  let requests = 0;
  ForwardPrefetch.prototype.request = function (this: ForwardPrefetch, ...args: Parameters<ForwardPrefetch['request']>) {
    const ok = orig.apply(this, args);
    if (ok) onRequest(this, ++requests);
    return ok;
  };
  try {
    return { value: await f(), requests };
  } finally {
    ForwardPrefetch.prototype.request = orig;
  }
}

describe('a run with the forward worker', () => {
  let off: Buffer;
  before(async () => {
    const { requests, value } = await counting(() => runAnalysis({ ...BASE, out: join(tmp, 'off'), overlap: false }));
    assert.equal(requests, 0, 'overlap off: no worker');
    assert.equal(value.manifest.settings.overlap, false, 'recorded in the manifest');
    off = readFileSync(join(tmp, 'off', 'sums.bin'));
  });

  test('one thread asked for: no worker', async () => {
    const { requests, value } = await counting(() => runAnalysis({ ...BASE, threads: 1, out: join(tmp, 'one-thread') }));
    assert.equal(requests, 0);
    assert.equal(value.manifest.status, 'complete');
  });

  test('on (the default) and off give byte-identical results; every batch of every model went to the worker', async () => {
    const { requests, value } = await counting(() => runAnalysis({ ...BASE, out: join(tmp, 'on') }));
    assert.equal(value.manifest.status, 'complete');
    assert.equal(value.manifest.settings.overlap, undefined, 'the default is not written');
    assert.equal(requests, 3 * 6, '3 models × 6 batches');
    assert.deepEqual(readFileSync(join(tmp, 'on', 'sums.bin')), off);
  });

  test('a worker that dies mid-stream: the run fails naming it, and resumes to the same results', async () => {
    const dir = join(tmp, 'died');
    await assert.rejects(
      counting(
        () => runAnalysis({ ...BASE, out: dir }),
        (p, n) => {
          // Before batch 4's forwards (the checkpoint after batch 2 stays).
          if (n === 3 * 3) exitWorker(p);
        },
      ),
      /the forward worker exited \(code 0\); the run stops \(its last checkpoint can be resumed\)/,
    );
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'failed');
    assert.match(m.error ?? '', /forward worker/);
    const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan });
    assert.equal(r.manifest.status, 'complete');
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), off);
  });

  test('a cancel while the worker runs ahead stops the run; the resume gives the same results', async () => {
    const dir = join(tmp, 'cancelled');
    let cancelled = false;
    const signal = { get cancelled() { return cancelled; } };
    const t0 = Date.now();
    await assert.rejects(
      runAnalysis({ ...BASE, out: dir }, (p) => {
        if (p.phase === 'stream' && p.batch === 3) cancelled = true;
      }, signal),
      /cancel/i,
    );
    assert.ok(Date.now() - t0 < 60_000);
    assert.equal(readJson<Manifest>(join(dir, 'manifest.json')).status, 'cancelled');
    await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan });
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), off);
  });
});
