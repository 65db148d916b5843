// Blocked analysis (issue 4 item 9): the default plan on three of the shipped tiny models, run in
// blocks of reference columns (one pass per block and other model, the statistics in a last pass), gives
// bit for bit the unblocked run's correlations, baselines and partners, and the same files;
// a blocked run cancelled in a middle pass resumes to the same result; the memory planner picks
// blocks for GPT-2-small's shape within 8 GB and refuses impossible budgets. Fast mode, blocked,
// equals fast mode unblocked.
//
// Bit-identical is expected, not a tolerance: every block sees the same batches, its S_xy columns
// come from the same fp32 GEMM (MLAS's sum over tokens does not depend on how many reference
// columns there are) flushed to float64 at the same tokens, and the blocks after the first take
// m's moments computed once from the same Gram — the arithmetic of each output element is the
// unblocked run's. The baseline's fp32 screen may differ with the block's rows, but it only
// chooses which entries get their float64 dot; the maximum and its argmax are those dots'.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EngineError } from '../../src/engine/errors';
import { blockBounds, GiB, planMemory, reclaim } from '../../src/engine/analysis/blocking';
import { Gemm } from '../../src/engine/analysis/gemm';
import { fastStateBytes } from '../../src/engine/analysis/cross/fast';
import { pairSeed } from '../../src/engine/analysis/rotations';
import type { CrossMomentsResult } from '../../src/engine/analysis/crossmoments';
import { readCheckpoint, readJson } from '../../src/engine/store';
import { Model } from '../../src/engine/runtime';
import { runAnalysis, type Manifest, type Progress, type RunResult } from '../../src/engine/analysis/pipeline';
import { crossSpecs, defaultPlan, mapSpecs } from '../../src/engine/analysis/plan';
import type { Accumulator, ActivationBatch, AnalysisPlan, PlanContext } from '../../src/engine/analysis/types';

const ROOT = join(__dirname, '..', '..');
const MODELS = ['a', 'b', 'c'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-blocked-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// 24 rows of 128 tokens in batches of 4 rows: 6 batches, a checkpoint every 2.
const BASE = { models: MODELS, corpus: [HELDOUT], tokens: 128 * 24, batchRows: 4, checkpointEvery: 2, threads: 2 };
// 2,048 reference neurons: a first block of 500 (with m's Gram), then 1,548 in blocks of at most
// 700: 516 each. Four blocks per pair, two pairs, and the statistics: 9 passes.
const BLOCKS = [500, 700] as const;
const OTHERS = ['tiny-gpt2-b', 'tiny-gpt2-c'];
const FILES = ['neurons.arrow', 'partners.arrow', 'universal.csv', 'actstats.arrow', 'examples.bin', 'examples.json'];

function assertSameCross(got: RunResult, want: RunResult, others = OTHERS): void {
  for (const label of others) {
    const g = got.results.get(`cross:${label}`) as CrossMomentsResult;
    const w = want.results.get(`cross:${label}`) as CrossMomentsResult;
    assert.equal(g.refStart, 0);
    assert.equal(g.n, w.n);
    for (const k of ['maxCorr', 'partner', 'baseline', 'baselinePartner'] as const) {
      assert.equal(g[k].length, w[k].length, `${label} ${k} length`);
      for (let i = 0; i < w[k].length; i++) {
        if (!Object.is(g[k][i], w[k][i])) assert.fail(`${label} ${k}[${i}]: ${g[k][i]} blocked vs ${w[k][i]} unblocked`);
      }
    }
  }
}

/** Runs `opts` and cancels it at the first progress event for which `when` is true; it must end cancelled. */
async function runCancelled(opts: Parameters<typeof runAnalysis>[0], when: (p: Progress) => boolean): Promise<void> {
  let cancelled = false;
  const signal = {
    get cancelled() {
      return cancelled;
    },
  };
  await assert.rejects(
    runAnalysis(opts, (p) => void (when(p) && (cancelled = true)), signal),
    (e: unknown) => e instanceof Error && e.name === 'CancelledError',
  );
}

function assertSameFiles(a: string, b: string): void {
  for (const f of FILES) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
}

describe('blocked analysis equals the unblocked run', () => {
  let full: RunResult;
  let blocked: RunResult;
  before(async () => {
    full = await runAnalysis({ ...BASE, out: join(tmp, 'full') });
    blocked = await runAnalysis({ ...BASE, out: join(tmp, 'blocked'), refBlocks: BLOCKS });
  });

  test('the tiny family is unblocked by default, and the manifest says so', () => {
    assert.equal(full.manifest.settings.refBlock, 0);
    assert.equal(full.manifest.settings.gramBlock, 0);
    assert.equal(full.manifest.settings.memoryGb, 8);
    assert.equal(full.manifest.choices.memory, undefined);
    assert.equal(full.manifest.progress.batches_total, 6);
  });

  test('a fresh rotation per pair, as the paper draws it: seeds recorded in the manifest and used by each pair', () => {
    const seeds: Record<string, number> = full.manifest.settings.rotationSeeds!;
    assert.deepEqual({ ...seeds }, { 'tiny-gpt2-b': pairSeed(0, 1), 'tiny-gpt2-c': pairSeed(0, 2) });
    assert.notEqual(seeds['tiny-gpt2-b'], seeds['tiny-gpt2-c']);
    for (const label of OTHERS) assert.equal((full.results.get(`cross:${label}`) as CrossMomentsResult).seed, seeds[label], label);
    // Deterministic, in range, and different for other run seeds.
    assert.equal(pairSeed(0, 1), pairSeed(0, 1));
    assert.notEqual(pairSeed(0, 1), pairSeed(1, 1));
    for (let m = 1; m < 50; m++) assert.ok(Number.isInteger(pairSeed(123, m)) && pairSeed(123, m) >= 0 && pairSeed(123, m) < 2 ** 32);
  });

  test('max_corr, partner, baseline and its partner are bit-identical; so are the files', () => {
    assertSameCross(blocked, full);
    assertSameFiles(blocked.runDir, full.runDir);
  });

  test('the manifest records the blocks and the passes (4 blocks × 2 models + statistics)', () => {
    const m = readJson<Manifest>(join(blocked.runDir, 'manifest.json'));
    assert.equal(m.status, 'complete');
    assert.deepEqual([m.settings.gramBlock, m.settings.refBlock], [500, 700]);
    assert.match(m.choices.memory ?? '', /a first block of 500 .*blocks of at most 700/);
    assert.equal(m.progress.batches_total, 9 * 6);
    assert.equal(m.progress.batches_done, 9 * 6);
    assert.deepEqual(blockBounds(2048, 500, 700), [[0, 500], [500, 1016], [1016, 1532], [1532, 2048]]);
  });

  test('fast mode on a budget this small runs exact, and says so', async () => {
    // 3,072 tokens: a screen of half of them would miss partners (FAST_MIN_TOKENS). Families off
    // to keep it short; the correlations do not depend on them.
    const r = await runAnalysis({ ...BASE, mode: 'fast', out: join(tmp, 'fast-small'), plan: defaultPlan({ families: { enabled: false } }) });
    assert.equal(r.manifest.settings.mode, 'exact');
    assert.match(r.manifest.choices.mode ?? '', /fast mode was asked for, but ran exact: 3072 tokens is below 40960/);
    assert.ok(r.manifest.warnings.some((w) => /ran exact/.test(w)));
    assertSameCross(r, full);
  });

  test('a blocked run cancelled in a middle pass resumes to the same results', async () => {
    const dir = join(tmp, 'blocked-cancelled');
    // Batch 5 of pass 6 (model c, second block): past a checkpoint, with passes finished before it
    // (b's four blocks, and c's first, whose moments the rest of c's blocks read).
    await runCancelled({ ...BASE, out: dir, refBlocks: BLOCKS }, (p) => p.phase === 'stream' && p.batch === 5 * 6 + 5);
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'cancelled');
    // No checkpoint on the way out: the last periodic one (every 2 batches) is after batch 4 of pass 6.
    assert.equal(m.progress.batches_done, 5 * 6 + 4);
    let firstBatch: number | undefined;
    const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir }, (p) => {
      if (p.phase === 'stream' && firstBatch === undefined) firstBatch = p.batch;
    });
    assert.equal(firstBatch, 5 * 6 + 5, 'the resume starts at the checkpoint, in pass 6');
    assertSameCross(r, full);
    assertSameFiles(r.runDir, full.runDir);
  });
});

describe('one batch holding the whole corpus: the forwards are kept from pass to pass', () => {
  test('each model is forwarded once for all the cross passes, with bit-identical results', async () => {
    // 8 rows in one batch of 8: 8 cross passes (4 blocks × 2 pairs) and the statistics.
    const one = { ...BASE, tokens: 128 * 8, batchRows: 8, plan: defaultPlan({ families: { enabled: false } }) };
    const calls: string[] = [];
    const orig = Model.prototype.runKept;
    Model.prototype.runKept = function (this: Model, rows, kept, want, signal) {
      calls.push(`${this.dir.split('/').pop()}:${want.join(',')}`);
      return orig.call(this, rows, kept, want, signal);
    };
    try {
      const full = await runAnalysis({ ...one, out: join(tmp, 'one-full') });
      calls.length = 0;
      const blocked = await runAnalysis({ ...one, out: join(tmp, 'one-blocked'), refBlocks: BLOCKS });
      assert.equal(blocked.manifest.progress.batches_total, 9);
      const cross = calls.filter((c) => c.endsWith(':keptPost'));
      assert.deepEqual(cross, ['tiny-gpt2-a:keptPost', 'tiny-gpt2-b:keptPost', 'tiny-gpt2-c:keptPost'], 'the reference once, each other model once');
      assertSameCross(blocked, full);
    } finally {
      Model.prototype.runKept = orig;
    }
  });

  test('checkpoints only at pass boundaries, holding the finished passes; a cancel mid-pass resumes at that pass', async () => {
    // The accumulators' state is GBs at GPT-2-small size: with one batch per pass it is not written,
    // only the packed results of the passes before (8 boundaries for 9 passes).
    const one = { ...BASE, tokens: 128 * 8, batchRows: 8, refBlocks: BLOCKS, plan: defaultPlan({ families: { enabled: false } }) };
    const ref = await runAnalysis({ ...one, out: join(tmp, 'one-ref') });
    const dir = join(tmp, 'one-cancelled');
    const checkpoints: number[] = [];
    await runCancelled({ ...one, out: dir }, (p) => {
      if (p.phase === 'checkpoint') checkpoints.push(p.batch!);
      // Pass 6 has streamed its one batch: cancelled before it finishes.
      return p.phase === 'stream' && p.batch === 6;
    });
    assert.deepEqual(checkpoints, [1, 2, 3, 4, 5], 'one checkpoint after each finished pass');
    const ck = readCheckpoint(dir)!;
    assert.equal(ck.nextBatch, 0);
    assert.equal(ck.meta.pass, 5, 'at the start of pass 6');
    const keys = Object.keys(ck.states);
    assert.equal(keys.length, 5);
    assert.ok(keys.every((k) => k.startsWith('done:')), `only finished results, no stream state: ${keys.join(', ')}`);
    const m = readJson<Manifest>(join(dir, 'manifest.json'));
    assert.equal(m.status, 'cancelled');
    assert.equal(m.progress.batches_done, 5);
    let firstBatch: number | undefined;
    const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: one.plan }, (p) => {
      if (p.phase === 'stream' && firstBatch === undefined) firstBatch = p.batch;
    });
    assert.equal(firstBatch, 6, 'the resume redoes pass 6 from its start');
    assertSameCross(r, ref);
    assertSameFiles(r.runDir, ref.runDir);
  });
});

// Fast mode, blocked (plan.ts fastBlockSpecs): each block only screens, in a pass of its own, and
// one pass counts the pair's candidates, the blocks' lists joined. A reference neuron's candidates
// come from the same sampled batches whatever its block, and the candidates' pass is the unblocked
// run's candidate pass, so the same bit-for-bit claim holds.
describe('blocked fast mode equals unblocked fast mode', () => {
  // Two models (one pair) keep it short; the three-model runs above cover pairs in turn.
  const fast = { ...BASE, models: MODELS.slice(0, 2), mode: 'fast' as const, fastMinTokens: 0, plan: defaultPlan({ families: { enabled: false } }) };
  let full: RunResult;
  let blocked: RunResult;
  const adds = new Map<string, number>();
  const screens = new Map<string, number>();
  const streamed = new Map<string, number>();
  before(async () => {
    full = await runAnalysis({ ...fast, out: join(tmp, 'fast-full') });
    const counted = mapSpecs(fast.plan, (s) => ({
      ...s,
      create: (done) => {
        const a = s.create(done);
        return {
          ...a,
          state: () => a.state(),
          finish: (sig) => a.finish(sig),
          add: (b) => (adds.set(s.name, (adds.get(s.name) ?? 0) + 1), a.add(b)),
          ...(a.screen ? { screen: (b: Parameters<NonNullable<typeof a.screen>>[0]) => (screens.set(s.name, (screens.get(s.name) ?? 0) + 1), a.screen!(b)) } : {}),
        };
      },
    }));
    blocked = await runAnalysis({ ...fast, plan: counted, out: join(tmp, 'fast-blocked'), refBlocks: BLOCKS }, (p) => {
      const pass = /^pass (\d+)\//.exec(p.message ?? '')?.[1];
      if (p.phase === 'stream' && p.batch !== undefined && pass) streamed.set(pass, (streamed.get(pass) ?? 0) + 1);
    });
  });

  test('max_corr, partner, baseline and its partner are bit-identical; so are the files', () => {
    assert.equal(blocked.manifest.settings.mode, 'fast');
    assert.deepEqual([blocked.manifest.settings.gramBlock, blocked.manifest.settings.refBlock], [500, 700]);
    assert.ok(/screen/.test(JSON.stringify(blocked.manifest.choices)), 'the manifest records the screen');
    assertSameCross(blocked, full, OTHERS.slice(0, 1));
    assertSameFiles(blocked.runDir, full.runDir);
  });

  test('the blocks only screen (3 sample batches of 6 each, nothing streamed); one pass counts the candidates', () => {
    const names = ['screen:tiny-gpt2-b@0', 'screen:tiny-gpt2-b@500', 'screen:tiny-gpt2-b@1016', 'screen:tiny-gpt2-b@1532'];
    for (const n of names) {
      assert.equal(screens.get(n), 3, `${n} screened every 2nd batch`);
      assert.equal(adds.get(n), undefined, `${n} was given no batch to count`);
    }
    assert.equal(adds.get('cross:tiny-gpt2-b'), 6);
    assert.equal(screens.get('cross:tiny-gpt2-b'), undefined, 'the candidates are not screened again');
    // Passes 1–4 (screens) stream no batch; pass 5 (candidates) and 6 (statistics) stream 6 each.
    assert.deepEqual([...streamed.entries()].sort(), [['5', 6], ['6', 6]]);
  });

  test("the candidates' passes group the pairs as the planner says (settings.candidatePairs)", () => {
    const info = (label: string) => ({ label, nLayers: 4, dMlp: 512, nNeurons: 2048 });
    const ctx = {
      models: ['a', 'b', 'c', 'd'].map(info),
      settings: { mode: 'fast', seed: 0, threads: 1, gramBlock: 500, refBlock: 700, candidatePairs: 2 },
      corpus: { nRows: 24, nPositions: 128 },
    } as unknown as PlanContext;
    const specs = crossSpecs(ctx);
    const at = (name: string) => specs.find((s) => s.name === name)?.pass;
    // 3 pairs × 4 blocks of screens: passes 0–11; then candidates of b and c, then of d.
    assert.deepEqual([at('screen:a@0'), at('screen:b@0'), at('screen:d@1532')], [undefined, 0, 11]);
    assert.deepEqual([at('cross:b'), at('cross:c'), at('cross:d')], [12, 12, 13]);
    assert.ok(specs.filter((s) => s.name.startsWith('screen:')).every((s) => s.screenOnly && s.screen?.every === 2));
    const all = crossSpecs({ ...ctx, settings: { ...ctx.settings, candidatePairs: undefined } } as PlanContext);
    assert.deepEqual(['b', 'c', 'd'].map((l) => all.find((s) => s.name === `cross:${l}`)!.pass), [12, 12, 12], 'without the setting (earlier runs) one pass holds every pair');
  });

  for (const where of ['screen', 'candidates'] as const) {
    test(`cancelled in the ${where === 'screen' ? 'third block\'s screen' : "candidates' pass"}: the resume gives the same files`, async () => {
      const dir = join(tmp, `fast-cancelled-${where}`);
      await runCancelled({ ...fast, out: dir, refBlocks: BLOCKS }, (p) =>
        where === 'screen'
          ? p.phase === 'stream' && /^pass 3\/6: screening sample, batch 3 /.test(p.message ?? '')
          : // Pass 5's third batch: after its checkpoint at batch 2.
            p.phase === 'stream' && p.batch === 4 * 6 + 3,
      );
      const ck = readCheckpoint(dir)!;
      const done = Object.keys(ck.states).filter((k) => k.startsWith('done:'));
      if (where === 'screen') {
        assert.deepEqual([ck.meta.pass, ck.nextBatch], [2, 0], 'at the start of the third screen');
        assert.deepEqual(done, ['done:screen:tiny-gpt2-b@0', 'done:screen:tiny-gpt2-b@500']);
      } else {
        assert.deepEqual([ck.meta.pass, ck.nextBatch], [4, 2]);
        assert.equal(done.length, 4);
        assert.ok(ck.states['cross:tiny-gpt2-b'], "the candidates' state");
      }
      const r = await runAnalysis({ models: [], corpus: [], tokens: 0, resume: dir, plan: fast.plan });
      assertSameCross(r, blocked, OTHERS.slice(0, 1));
      assertSameFiles(r.runDir, blocked.runDir);
    });
  }
});

describe('a finished pass frees its memory before the next pass allocates', () => {
  test('every accumulator of an earlier pass is collected by the time the next pass creates its own', async () => {
    // WeakRefs to each accumulator as the plan creates it; at each creation, none from an earlier
    // pass may still be reachable. The pipeline's reclaim() alone does the collecting. This failed
    // while the pass loop kept the last accumulator it called in a register of its async frame.
    const refs: { name: string; ref: WeakRef<object> }[] = [];
    const alive: string[][] = [];
    const plan = mapSpecs(defaultPlan({ families: { enabled: false } }), (s) => ({
      ...s,
      create: (done) => {
        alive.push(refs.filter((r) => r.ref.deref() !== undefined).map((r) => r.name));
        const a = s.create(done);
        refs.push({ name: s.name, ref: new WeakRef(a as object) });
        return a;
      },
    }));
    await runAnalysis({ ...BASE, models: MODELS.slice(0, 2), tokens: 128 * 8, out: join(tmp, 'freed'), refBlocks: BLOCKS, plan });
    // 4 blocks of b, then actstats, examples, the paper's histogram and the layer covariance (created together, in one pass).
    assert.deepEqual(refs.map((r) => r.name), ['cross:tiny-gpt2-b@0', 'cross:tiny-gpt2-b@500', 'cross:tiny-gpt2-b@1016', 'cross:tiny-gpt2-b', 'actstats', 'examples', 'paperhist', 'layercov']);
    assert.deepEqual(alive.slice(0, 5), [[], [], [], [], []]);
    assert.deepEqual(alive[5], ['actstats'], 'examples is created beside actstats, in the same pass');
    assert.deepEqual(alive[6], ['actstats', 'examples'], 'and the histogram beside them');
  });
});

describe("a pass' batch of forwards past the prefetch share is collected before the next batch's", () => {
  test("each batch's arrays are gone when the next batch reaches the accumulators", async () => {
    // 32 rows of 128 tokens: 4 arrays of 2 models, 268 MB a batch, past 5% of a 5 GB budget (the
    // GPT-2-width statistics pass is 1.6 GB). 5 GB, not 4: after the file's earlier runs this
    // process holds ~2.9 GB, and at 4 GB the planner refused the batch in one CI run of two. onnxruntime's outputs are small objects to V8, so
    // without a collection after each batch they outlive it (measured: +1.5 GB between batches).
    const alive: number[] = [];
    const seen: WeakRef<Float32Array>[] = [];
    const probe = (): Accumulator<unknown> => ({
      add: (b: ActivationBatch) => {
        alive.push(seen.filter((r) => r.deref() !== undefined).length);
        for (const m of b.models) seen.push(new WeakRef(m.keptPost), new WeakRef(m.pre));
      },
      state: () => ({}),
      finish: () => ({}),
    });
    const plan: AnalysisPlan = { accumulators: () => [{ name: 'probe', create: probe, restore: probe }], finalize: async () => ({}) };
    await runAnalysis({ models: MODELS.slice(0, 2), corpus: [HELDOUT], tokens: 128 * 96, batchRows: 32, memoryGb: 5, threads: 2, out: join(tmp, 'batches'), plan });
    assert.deepEqual(alive, [0, 0, 0]);
  });
});

describe('memory planner', () => {
  const gpt2 = { nLayers: 12, dMlp: 3072, nNeurons: 36864, nPositions: 1024 };
  const tiny = { nLayers: 4, dMlp: 512, nNeurons: 2048, nPositions: 128 };
  const base = 3 * GiB;

  test('the tiny family fits unblocked at 8 GB with the default batch', () => {
    const p = planMemory({ models: Array(5).fill(tiny), batchRows: 8, batchRowsFixed: false, budgetBytes: 8 * GiB, baseBytes: 0.3 * GiB });
    assert.deepEqual([p.gramBlock, p.refBlock, p.batchRows], [0, 0, 8]);
  });

  test('GPT-2-small × 5 at 8 GB: blocks within the budget, the Gram block narrower, batch rows lowered to fit the statistics pass', () => {
    const p = planMemory({ models: Array(5).fill(gpt2), batchRows: 8, batchRowsFixed: false, budgetBytes: 8 * GiB, baseBytes: base });
    assert.ok(p.gramBlock > 0 && p.gramBlock < p.refBlock && p.refBlock < 36864, `blocks ${p.gramBlock}, ${p.refBlock}`);
    assert.ok(p.batchRows >= 1 && p.batchRows < 8, `rows ${p.batchRows}`);
    assert.ok(p.estimateBytes <= 8 * GiB);
    const b = blockBounds(36864, p.gramBlock, p.refBlock);
    assert.equal(b[b.length - 1]![1], 36864);
    const widths = b.slice(1).map(([x, y]) => y - x);
    assert.ok(Math.max(...widths) - Math.min(...widths) <= 1 && Math.max(...widths) <= p.refBlock, 'the rest are equal up to rounding');
  });

  test("fast mode at GPT-2-small size: the candidates' passes hold as many pairs as fit (3 of 4 at 8 GB, all 4 at 12 GB)", () => {
    const args = { models: Array(5).fill(gpt2), batchRows: 8, batchRowsFixed: false, baseBytes: 2.5 * GiB, statsBytes: 2e9, fastCandidates: fastStateBytes(36864, 12, 3072) };
    // A pair's state: the arena, both candidate lists at the cap, R_l in fp32 (onnxruntime's copy).
    assert.ok(Math.abs(fastStateBytes(36864, 12, 3072) / 1e9 - 0.78) < 0.01);
    const p8 = planMemory({ ...args, budgetBytes: 8e9 });
    assert.equal(p8.candidatePairs, 3);
    assert.ok(p8.refBlock > 0 && p8.estimateBytes <= 8e9);
    assert.equal(planMemory({ ...args, budgetBytes: 12e9 }).candidatePairs, 4);
    // Exact mode has no candidates' pass.
    assert.equal(planMemory({ ...args, fastCandidates: undefined, budgetBytes: 8e9 }).candidatePairs, 0);
  });

  test('the statistics pass counts its accumulators: statsBytes that cannot fit are refused, a smaller sum fits', () => {
    const args = { models: Array(5).fill(gpt2), batchRows: 1, batchRowsFixed: true, budgetBytes: 8 * GiB, baseBytes: base };
    const ok = planMemory({ ...args, statsBytes: 2 * GiB });
    assert.ok(ok.estimateBytes <= 8 * GiB && ok.estimateBytes >= base + 2 * GiB, `estimate ${ok.estimateBytes / GiB} GiB`);
    assert.throws(
      () => planMemory({ ...args, statsBytes: 4.5 * GiB }),
      (e: unknown) => e instanceof EngineError && /the statistics 4\.83 GB/.test(e.message),
    );
  });

  test("the statistics pass counts the running forward's attention scores (two arrays of rows × heads × positions²)", () => {
    // Refused, so that the message names what a batch of every model takes.
    const args = { models: Array(5).fill(gpt2), batchRows: 2, batchRowsFixed: true, budgetBytes: 4 * GiB, baseBytes: base, statsBytes: 2 * GiB };
    const batchGb = (models: object[]): number => {
      try {
        planMemory({ ...args, models: models as typeof args.models });
      } catch (e) {
        return Number(/a batch of 2 row\(s\) of every model takes ([\d.]+) GB/.exec((e as Error).message)![1]);
      }
      return assert.fail('not refused');
    };
    const d = batchGb(Array(5).fill({ ...gpt2, nHeads: 12 })) - batchGb(Array(5).fill(gpt2));
    assert.ok(Math.abs(d - (8 * 2 * 12 * 1024 ** 2) / 1e9) < 0.006, `${d} GB more`);
  });

  test('impossible budgets are refused with the terms named', () => {
    assert.throws(
      () => planMemory({ models: Array(5).fill(gpt2), batchRows: 1, batchRowsFixed: false, budgetBytes: 4 * GiB, baseBytes: base }),
      (e: unknown) => e instanceof EngineError && /memory budget of 4\.29 GB cannot hold/.test(e.message) && /--memory-gb/.test(e.message),
    );
    assert.throws(
      () => planMemory({ models: Array(5).fill(gpt2), batchRows: 8, batchRowsFixed: true, budgetBytes: 8 * GiB, baseBytes: base }),
      (e: unknown) => e instanceof EngineError && /--batch-rows/.test(e.message),
    );
  });
});

describe('reclaim', () => {
  test('frees a dropped onnxruntime output at once (its finalizer needs a collection after a task)', async () => {
    const gemm = new Gemm({ threads: 1 });
    try {
      const [m, k, n] = [4000, 64, 3072]; // a 98 MB float64 output
      const a = new Float64Array(m * k).fill(0.5);
      const b = new Float64Array(n * k).fill(0.25);
      await reclaim();
      const before = process.memoryUsage().arrayBuffers;
      let out: Float64Array | null = await gemm.abt64(a, b, m, k, n);
      assert.equal(out[0], 64 * 0.125);
      assert.ok(process.memoryUsage().arrayBuffers - before > 90e6, 'the output is held');
      out = null;
      await reclaim();
      const left = process.memoryUsage().arrayBuffers - before;
      assert.ok(left < 10e6, `${(left / 1e6).toFixed(1)} MB still held after reclaim()`);
    } finally {
      await gemm.release();
    }
  });
});
