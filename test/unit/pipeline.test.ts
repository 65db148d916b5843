// The streaming pass on the shipped tiny family with test accumulators: batch layout (interleaving,
// kept-token compaction), checkpoints, and resume after a cancel or a crash giving byte-identical
// results; model checks (architecture, tokenizer) and the budget warning.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCorpus, row } from '../../src/engine/corpus';
import { CancelledError, EngineError } from '../../src/engine/errors';
import { openModel, type Model } from '../../src/engine/runtime';
import { readCheckpoint, readJson, setWriteFn, writeFileAtomic } from '../../src/engine/store';
import { buildBatch, runAnalysis, unionReads, type AnalysisPlan, type Manifest } from '../../src/engine/analysis/pipeline';
import type { Accumulator, AccumulatorState, ActivationBatch } from '../../src/engine/analysis/types';

const ROOT = join(__dirname, '..', '..');
const MODEL = (s: string) => join(ROOT, 'models', `tiny-gpt2-${s}`);
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-pipe-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Per model: float64 sums of kept pre/post activations per neuron, the kept count, and a running
 * fingerprint of the batch order. Any skipped, repeated or reordered batch changes the result.
 */
class SumAcc implements Accumulator<Float64Array> {
  sumPost: Float64Array;
  sumPre: Float64Array;
  n = 0;
  order = 0;
  constructor(
    readonly model: number,
    readonly N: number,
    readonly crashAt?: { batch: number },
  ) {
    this.sumPost = new Float64Array(N);
    this.sumPre = new Float64Array(N);
  }
  add(b: ActivationBatch): void {
    if (this.crashAt && b.batchIndex === this.crashAt.batch) throw new Error('simulated crash');
    const m = b.models[this.model]!;
    for (let k = 0; k < b.nKept; k++) {
      for (let j = 0; j < this.N; j++) {
        this.sumPost[j]! += m.keptPost[k * this.N + j]!;
        this.sumPre[j]! += m.keptPre[k * this.N + j]!;
      }
    }
    this.n += b.nKept;
    this.order = (this.order * 31 + b.batchIndex + 1) % 1_000_000_007;
  }
  state(): AccumulatorState {
    return { sumPost: this.sumPost, sumPre: this.sumPre, n: this.n, order: this.order };
  }
  static restore(s: AccumulatorState, model: number, N: number): SumAcc {
    const a = new SumAcc(model, N);
    a.sumPost.set(s.sumPost as Float64Array);
    a.sumPre.set(s.sumPre as Float64Array);
    a.n = s.n as number;
    a.order = s.order as number;
    return a;
  }
  finish(): Float64Array {
    const out = new Float64Array(2 * this.N + 2);
    out.set(this.sumPost);
    out.set(this.sumPre, this.N);
    out[2 * this.N] = this.n;
    out[2 * this.N + 1] = this.order;
    return out;
  }
}

function sumPlan(crashAt?: { batch: number }): AnalysisPlan {
  return {
    accumulators: (ctx) =>
      ctx.models.map((m, i) => ({
        name: `sum:${m.label}`,
        create: () => new SumAcc(i, m.nNeurons, crashAt),
        restore: (s) => SumAcc.restore(s, i, m.nNeurons),
      })),
    finalize: async (ctx, results) => {
      const parts = [...results.values()].map((r) => new Uint8Array((r as Float64Array).buffer));
      writeFileAtomic(join(ctx.runDir, 'sums.bin'), parts);
      return { files: ['sums.bin'] };
    },
    choices: { test: 'sum accumulators' },
  };
}

const BASE = { models: [MODEL('a'), MODEL('b'), MODEL('c')], corpus: [HELDOUT], tokens: 128 * 12, batchRows: 2, checkpointEvery: 2 };

describe('ActivationBatch', () => {
  let models: Model[];
  before(async () => {
    models = [await openModel(MODEL('a')), await openModel(MODEL('b'))];
  });
  after(async () => {
    for (const m of models) await m.close();
  });

  test('layers interleaved into [T×N]; kept tokens compacted; keep drops 50256 and 198', async () => {
    const corpus = readCorpus({ paths: [HELDOUT], nPositions: 128, tokens: 128 * 3000 });
    // Three rows from the first one that holds a "\n", so that the filter is exercised.
    let start = 0;
    while (start < corpus.nRows && !row(corpus, start).includes(198)) start++;
    const b = await buildBatch(models, corpus, 7, start, 3);
    assert.equal(b.batchIndex, 7);
    assert.equal(b.rowStart, start);
    assert.deepEqual(b.rows[1], row(corpus, start + 1));
    assert.deepEqual(b.offsets, [0, 128, 256, 384]);
    const ids = b.rows.flat();
    assert.ok(ids.includes(198), 'test rows contain a newline');
    assert.equal(b.nTokens, 384);
    for (let t = 0; t < ids.length; t++) assert.equal(b.keep[t], ids[t] === 50256 || ids[t] === 198 ? 0 : 1);
    assert.equal(b.nKept, b.keep.reduce((a, x) => a + x, 0));
    assert.equal(b.keptIndex.length, b.nKept);

    const m = models[1]!;
    const L = m.nLayers;
    const M = m.dMlp;
    const N = L * M;
    const run = await m.runTokens(b.rows, { hooks: ['pre', 'post'] });
    const acts = b.models[1]!;
    assert.equal(acts.pre.length, b.nTokens * N);
    assert.equal(acts.keptPost.length, b.nKept * N);
    for (const [t, l, n] of [
      [0, 0, 0],
      [5, 1, 17],
      [200, 3, 511],
      [383, 2, 256],
    ] as const) {
      assert.equal(acts.pre[t * N + l * M + n], run.hookPre[l]![t * M + n]);
      assert.equal(acts.post[t * N + l * M + n], run.hookPost[l]![t * M + n]);
    }
    for (const k of [0, 1, b.nKept - 1]) {
      const t = b.keptIndex[k]!;
      assert.deepEqual(acts.keptPost.subarray(k * N, (k + 1) * N), acts.post.subarray(t * N, (t + 1) * N));
      assert.deepEqual(acts.keptPre.subarray(k * N, (k + 1) * N), acts.pre.subarray(t * N, (t + 1) * N));
    }
    assert.notDeepEqual(b.models[0]!.post.subarray(0, 100), acts.post.subarray(0, 100), 'models[0] is the first handle, a different seed');

    // Reads per model, as a pass's union of specs (the statistics pass): each model keeps what is read of it, the same values.
    const reads = unionReads(
      [
        { models: [0, 1], arrays: ['keptPre'] },
        { models: [0], arrays: ['post', 'keptPost'] },
      ],
      2,
    );
    assert.deepEqual(reads, [['keptPre', 'post', 'keptPost'], ['keptPre']]);
    const r = await buildBatch(models, corpus, 7, start, 3, undefined, reads);
    assert.deepEqual(r.models[0]!.post, b.models[0]!.post);
    assert.deepEqual(r.models[0]!.keptPost, b.models[0]!.keptPost);
    assert.deepEqual(r.models[0]!.keptPre, b.models[0]!.keptPre);
    assert.equal(r.models[0]!.pre.length, 0);
    assert.deepEqual(r.models[1]!.keptPre, acts.keptPre);
    for (const k of ['pre', 'post', 'keptPost'] as const) assert.equal(r.models[1]![k].length, 0, `model 1 ${k} not kept`);
    const none = await buildBatch(models, corpus, 7, start, 3, undefined, [[], ['keptPost']]);
    for (const k of ['pre', 'post', 'keptPre', 'keptPost'] as const) assert.equal(none.models[0]![k].length, 0, 'model 0 not run');
    assert.deepEqual(none.models[1]!.keptPost, acts.keptPost);
  });
});

describe('checkpoint and resume', () => {
  let full: Buffer;
  before(async () => {
    const r = await runAnalysis({ ...BASE, out: join(tmp, 'full'), plan: sumPlan() });
    assert.equal(r.manifest.status, 'complete');
    full = readFileSync(join(tmp, 'full', 'sums.bin'));
  });

  test('the uninterrupted run: manifest complete, checkpoint removed, every batch seen once', () => {
    const m = readJson<Manifest>(join(tmp, 'full', 'manifest.json'));
    assert.equal(m.status, 'complete');
    assert.equal(m.progress.batches_done, 6);
    assert.equal(m.corpus.tokens.used, 128 * 12);
    assert.equal(m.settings.batchRows, 2);
    assert.equal(m.models[0]!.role, 'reference');
    assert.match(m.models[1]!.safetensors_sha256, /^[0-9a-f]{64}$/);
    assert.ok(m.software['onnxruntime-node'] && m.software['universal-neurons']);
    assert.equal(m.choices.test, 'sum accumulators');
    assert.equal(existsSync(join(tmp, 'full', 'checkpoint')), false);
    const n = 2 * 2048 + 2;
    const sums = new Float64Array(full.buffer, full.byteOffset, full.byteLength / 8);
    assert.equal(sums.length, 3 * n);
    assert.equal(sums[2 * 2048], m.corpus.tokens.kept, 'kept count matches the corpus filter');
  });

  test('checkpoints: every K batches that are also checkpointSeconds apart; the default is 25 batches and 60 s, an explicit K alone', async () => {
    // A slow accumulator (60 ms a batch) and 0.2 s between checkpoints: each periodic checkpoint
    // comes at least 0.2 s after the one before, on a batch that is a multiple of K = 1.
    const plan = sumPlan();
    const specs = plan.accumulators;
    const slow: AnalysisPlan = {
      ...plan,
      accumulators: async (ctx) =>
        (await specs(ctx)).map((sp) => ({
          ...sp,
          create: (done) => {
            const a = sp.create(done) as SumAcc;
            const add = a.add.bind(a);
            return Object.assign(a, { add: async (b: ActivationBatch) => (add(b), await new Promise((r) => setTimeout(r, 20))) });
          },
        })),
    };
    const at: { batch: number; t: number }[] = [];
    const r = await runAnalysis({ ...BASE, checkpointEvery: 1, checkpointSeconds: 0.2, out: join(tmp, 'spaced'), plan: slow }, (p) => {
      if (p.phase === 'checkpoint') at.push({ batch: p.batch!, t: Date.now() });
    });
    assert.equal(r.manifest.settings.checkpointSeconds, 0.2);
    assert.deepEqual(readFileSync(join(tmp, 'spaced', 'sums.bin')), full, 'spacing does not change the results');
    const periodic = at.filter((c) => c.batch < 6);
    assert.ok(periodic.length >= 1 && periodic.length < 5, `periodic checkpoints at ${periodic.map((c) => c.batch).join(', ')}: some, not every batch`);
    for (let i = 1; i < periodic.length; i++) assert.ok(periodic[i]!.t - periodic[i - 1]!.t >= 200, `checkpoints ${i - 1} and ${i} ${periodic[i]!.t - periodic[i - 1]!.t} ms apart`);
    assert.equal(at.at(-1)!.batch, 6, 'and one at the end of the stream');

    // Without checkpointSeconds an explicit K means every K batches, recorded as 0 s.
    const every: number[] = [];
    const e = await runAnalysis({ ...BASE, checkpointEvery: 1, out: join(tmp, 'every'), plan: slow }, (p) => {
      if (p.phase === 'checkpoint') every.push(p.batch!);
    });
    assert.deepEqual(every, [1, 2, 3, 4, 5, 6]);
    assert.equal(e.manifest.settings.checkpointSeconds, 0);
    const { checkpointEvery: _k, ...noK } = BASE;
    const d = await runAnalysis({ ...noK, out: join(tmp, 'default'), plan: sumPlan() });
    assert.equal(d.manifest.settings.checkpointEvery, 25);
    assert.equal(d.manifest.settings.checkpointSeconds, 60);
    await assert.rejects(runAnalysis({ ...BASE, checkpointSeconds: -1, out: join(tmp, 'bad-spacing'), plan: sumPlan() }), /checkpoint spacing -1 s must be a number ≥ 0/);
  });

  test('cancel after batch 3, resume: byte-identical results', async () => {
    const dir = join(tmp, 'cancelled');
    let cancelled = false;
    const signal = { get cancelled() { return cancelled; } };
    await assert.rejects(
      runAnalysis({ ...BASE, out: dir, plan: sumPlan() }, (p) => {
        if (p.phase === 'stream' && p.batch === 3) cancelled = true;
      }, signal),
      CancelledError,
    );
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'cancelled');
    // A cancel writes no checkpoint on the way out: the last periodic one (every 2 batches) stays.
    assert.equal(readCheckpoint(dir)!.nextBatch, 2, 'the last periodic checkpoint');
    assert.match(m.reason ?? '', /cancelled while streaming/);
    assert.equal(existsSync(join(dir, 'sums.bin')), false);
    const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() });
    assert.equal(r.manifest.status, 'complete');
    assert.equal(r.manifest.timings.sessions, 2);
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), full);
  });

  test('cancel while finishing: status cancelled, nothing written, resume finishes without re-streaming', async () => {
    const dir = join(tmp, 'cancelled-finish');
    let cancelled = false;
    const signal = { get cancelled() { return cancelled; } };
    await assert.rejects(
      runAnalysis({ ...BASE, out: dir, plan: sumPlan() }, (p) => {
        if (p.phase === 'finish') cancelled = true;
      }, signal),
      CancelledError,
    );
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'cancelled');
    assert.equal(readCheckpoint(dir)!.nextBatch, 6, 'the end-of-stream checkpoint is there');
    assert.equal(existsSync(join(dir, 'sums.bin')), false);
    let streamed = 0;
    const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() }, (p) => {
      if (p.phase === 'stream') streamed++;
    });
    assert.equal(r.manifest.status, 'complete');
    assert.equal(streamed, 0);
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), full);
  });

  test('crash in batch 5 (checkpoint at 4), resume: byte-identical results', async () => {
    const dir = join(tmp, 'crashed');
    await assert.rejects(runAnalysis({ ...BASE, out: dir, plan: sumPlan({ batch: 5 }) }), /simulated crash/);
    assert.equal(readJson<Manifest>(join(dir, 'manifest.json')).status, 'failed');
    assert.equal(readCheckpoint(dir)!.nextBatch, 4);
    await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() });
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), full);
    await assert.rejects(runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() }), /already complete/);
  });

  test('disk full while writing results: earlier files intact, status failed, resume finishes without re-streaming', async () => {
    const dir = join(tmp, 'diskfull');
    const restore = { fn: () => {} };
    const plan = sumPlan();
    const finalize = plan.finalize;
    plan.finalize = async (ctx, results) => {
      writeFileAtomic(join(ctx.runDir, 'first.txt'), 'written before the disk filled\n');
      restore.fn = setWriteFn(() => {
        throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      });
      try {
        return await finalize(ctx, results);
      } finally {
        restore.fn();
      }
    };
    await assert.rejects(runAnalysis({ ...BASE, out: dir, plan }), /disk is full/);
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'failed');
    assert.match(m.error!, /disk is full/);
    assert.equal(readFileSync(join(dir, 'first.txt'), 'utf8'), 'written before the disk filled\n');
    assert.equal(existsSync(join(dir, 'sums.bin')), false, 'no half-written result under its final name');
    assert.equal(readCheckpoint(dir)!.nextBatch, 6, 'the end-of-stream checkpoint');
    let streamed = 0;
    await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() }, (p) => {
      if (p.phase === 'stream') streamed++;
    });
    assert.equal(streamed, 0);
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), full);
  });

  test('a run in use by a live process is not resumed; a stale lock is taken over', async () => {
    const dir = join(tmp, 'locked');
    let cancelled = false;
    await assert.rejects(
      runAnalysis({ ...BASE, out: dir, plan: sumPlan() }, (p) => {
        if (p.phase === 'stream') cancelled = true;
      }, { get cancelled() { return cancelled; } }),
      CancelledError,
    );
    assert.equal(existsSync(join(dir, 'run.lock')), false, 'released on exit');
    writeFileSync(join(dir, 'run.lock'), String(process.ppid));
    await assert.rejects(runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() }), /in use by process/);
    writeFileSync(join(dir, 'run.lock'), '999999999');
    writeFileSync(join(dir, '.sums.bin.1234.abcd.tmp'), 'left by a killed writer');
    await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: sumPlan() });
    assert.deepEqual(readFileSync(join(dir, 'sums.bin')), full);
    assert.equal(existsSync(join(dir, '.sums.bin.1234.abcd.tmp')), false);
  });

  test('the reference setting puts that model first', async () => {
    const dir = join(tmp, 'ref');
    const r = await runAnalysis({ ...BASE, tokens: 256, reference: 'tiny-gpt2-c', out: dir, plan: sumPlan() });
    assert.deepEqual(r.manifest.models.map((m) => m.label), ['tiny-gpt2-c', 'tiny-gpt2-a', 'tiny-gpt2-b']);
    assert.equal(r.manifest.settings.reference, 'tiny-gpt2-c');
    await assert.rejects(runAnalysis({ ...BASE, reference: 'nope', out: join(tmp, 'ref2'), plan: sumPlan() }), /--reference nope/);
  });
});

describe('bad input', () => {
  test('models of different architecture: error names both', async () => {
    const other = join(ROOT, 'test', 'fixtures', 'gpt2-tiny-crfm');
    await assert.rejects(
      runAnalysis({ ...BASE, models: [MODEL('a'), other], out: join(tmp, 'arch'), plan: sumPlan() }),
      (e: Error) => e instanceof EngineError && e.message.includes(MODEL('a')) && e.message.includes('gpt2-tiny-crfm') && /architecture/.test(e.message),
    );
    assert.equal(existsSync(join(tmp, 'arch')), false, 'no run folder for a run that never started');
  });

  test('models with different tokenizers: error names both', async () => {
    const dir = join(tmp, 'other-tok');
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(MODEL('b'), f), join(dir, f));
    const tj = JSON.parse(readFileSync(join(MODEL('b'), 'tokenizer.json'), 'utf8'));
    // A valid tokenizer of the same vocabulary that splits differently (a word in the vocabulary
    // is one token before any merge). Two ids swapped would be refused at open (validate.test.ts).
    tj.model.ignore_merges = true;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
    await assert.rejects(
      runAnalysis({ ...BASE, models: [MODEL('a'), dir], out: join(tmp, 'tok'), plan: sumPlan() }),
      (e: Error) =>
        e instanceof EngineError && e.message.includes(MODEL('a')) && e.message.includes(dir) && e.message.includes(join(dir, 'tokenizer.json')) && /different tokenizers/.test(e.message),
    );
  });

  test('a budget larger than the corpus warns in the manifest and uses what there is', async () => {
    const small = join(tmp, 'small.tokens.bin');
    const buf = readFileSync(HELDOUT).subarray(0, 2 * 127 * 3 + 10);
    writeFileSync(small, new Uint8Array(buf));
    const r = await runAnalysis({ ...BASE, models: [MODEL('a'), MODEL('b')], corpus: [small], tokens: 1_000_000, out: join(tmp, 'big'), plan: sumPlan() });
    assert.equal(r.manifest.corpus.rows, 3);
    assert.equal(r.manifest.corpus.tokens.requested, 1_000_000);
    assert.equal(r.manifest.corpus.tokens.used, 3 * 128);
    assert.ok(r.manifest.warnings.some((w) => /larger than the corpus/.test(w)));
  });

  test('one model is not enough', async () => {
    await assert.rejects(runAnalysis({ ...BASE, models: [MODEL('a')], plan: sumPlan() }), /at least two models/);
  });
});
