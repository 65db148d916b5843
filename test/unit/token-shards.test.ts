// Token shards (issue #17 items 1–2): the shipped tiny family analysed as 3 shards of the corpus
// (each its rows, every pass), merged, equals the single run: identical universal sets at 0.3, 0.4
// and 0.5, every float column within 1e-9 (float64 sums in another order), identical examples.
// Also shards × blocks, a merge of merges, missing / duplicated / foreign shards refused by name,
// a killed shard resumed alone, and the shard count the corpus allows (parts.ts).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CancelledError } from '../../src/engine/errors';
import { checkParts, combineParts, shardCuts } from '../../src/engine/analysis/parts';
import { CrossMoments, mergeCrossStates, type CrossMomentsOptions } from '../../src/engine/analysis/crossmoments';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { rng } from '../helpers/synthetic-run';
import { mergeParts } from '../../src/engine/analysis/merge';
import { runAnalysis, type RunResult } from '../../src/engine/analysis/pipeline';
import { readNeuronArrow } from '../../src/engine/run/neurons';
import { readJson } from '../../src/engine/store';
import type { Manifest } from '../../src/engine/run/manifest';
import { parseCli, type AnalyzeCommand } from '../../src/cli/args';
import { partsStatus } from '../../src/cli/parts';
import { writeSlurm } from '../../src/cli/slurm';

const ROOT = join(__dirname, '..', '..');
const MODELS = ['a', 'b', 'c'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-shards-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// 12 rows of 128 tokens in batches of 2: 6 batches of about 250 kept tokens. With the cross
// moments' fp32 chunk at 256 tokens every batch adds its partial into float64, so every batch
// boundary may begin a shard: 3 shards are batches [0, 2), [2, 4), [4, 6).
const BASE = { models: MODELS, corpus: [HELDOUT], tokens: 128 * 12, batchRows: 2, checkpointEvery: 1, threads: 1, chunkTokens: 256 };
const SHARDS = 3;
const FILES = ['neurons.arrow', 'partners.arrow', 'universal.csv', 'vocab.arrow', 'actstats.arrow', 'examples.bin', 'examples.json', 'families.arrow'];

// The shards alone in one folder, as `status` reads it.
const shardDir = (i: number): string => join(tmp, 'shards', `shard-${i}`);
const shard = (index: number, count = SHARDS) => ({ part: { shard: { index, count } } });

/** Universal sets equal at 0.3, 0.4 and 0.5, every float column of neurons.arrow within 1e-9. */
async function assertNumbersEqual(a: string, b: string): Promise<void> {
  const x = await readNeuronArrow(join(a, 'neurons.arrow'));
  const y = await readNeuronArrow(join(b, 'neurons.arrow'));
  const ex = (t: typeof x) => t.columns.get('excess_corr') as Float64Array;
  for (const th of [0.3, 0.4, 0.5]) {
    const set = (t: typeof x) => [...ex(t)].flatMap((v, j) => (v > th ? [j] : []));
    assert.deepEqual(set(y), set(x), `universal at ${th}`);
  }
  let floats = 0;
  let worst = 0;
  for (const [name, col] of x.columns) {
    if (x.booleans?.has(name) || ['layer', 'neuron'].includes(name)) continue;
    const other = y.columns.get(name) as Float64Array | Int32Array;
    assert.ok(other, `${name} is missing`);
    floats++;
    for (let j = 0; j < col.length; j++) {
      const d = Math.abs(col[j]! - other[j]!);
      if (!(d <= 1e-9 || (Number.isNaN(col[j]!) && Number.isNaN(other[j]!)))) assert.fail(`${name}[${j}]: ${col[j]} vs ${other[j]}`);
      if (d > worst) worst = d;
    }
  }
  assert.ok(floats > 10, `${floats} float columns compared`);
}

describe('token shards merge to the single run', () => {
  let single: RunResult;
  let merged: RunResult;
  before(async () => {
    single = await runAnalysis({ ...BASE, out: join(tmp, 'single') });
    for (let i = 0; i < SHARDS; i++) {
      if (i === 1) {
        // Killed after its first checkpoint: the shard resumes alone.
        let stop = false;
        await assert.rejects(
          runAnalysis({ ...BASE, out: shardDir(i), ...shard(i) }, (p) => {
            if (p.phase === 'checkpoint') stop = true;
          }, { get cancelled() { return stop; } }),
          CancelledError,
        );
        assert.equal(readJson<Manifest>(join(shardDir(i), 'manifest.json')).status, 'cancelled');
        await runAnalysis({ ...BASE, resume: shardDir(i) });
        continue;
      }
      await runAnalysis({ ...BASE, out: shardDir(i), ...shard(i) });
    }
    // Given out of order: the merge sorts shards.
    merged = await mergeParts([shardDir(2), shardDir(0), shardDir(1)], join(tmp, 'merged'));
  });

  test('each shard records which it is: its batches and rows, from the corpus and settings alone', () => {
    const rows = [0, 1, 2].map((i) => readJson<Manifest>(join(shardDir(i), 'manifest.json')).part!);
    assert.deepEqual(rows.map((p) => p.shard!.batches), [[0, 2], [2, 4], [4, 6]]);
    assert.deepEqual(rows.map((p) => p.shard!.rows), [[0, 4], [4, 8], [8, 12]]);
    assert.ok(rows.every((p) => p.block === undefined && p.key === rows[0]!.key), 'every pass; one key');
    assert.equal(readJson<Manifest>(join(shardDir(0), 'manifest.json')).results, undefined, 'a shard writes no results');
  });

  test('identical universal sets at 0.3, 0.4 and 0.5, every float column within 1e-9, identical examples', async () => {
    await assertNumbersEqual(single.runDir, merged.runDir);
    // Examples: the top-K ranked by value then row, the interval samples by their keys: the same files.
    for (const f of ['examples.bin', 'examples.json']) assert.ok(readFileSync(join(single.runDir, f)).equals(readFileSync(join(merged.runDir, f))), `${f} differs`);
    assert.equal(merged.manifest.part, undefined);
    assert.equal(merged.manifest.status, 'complete');
    for (const f of FILES) assert.ok(existsSync(join(merged.runDir, f)), f);
    assert.deepEqual((merged.manifest.results as { universal: number }).universal, (single.manifest.results as { universal: number }).universal);
  });

  test('a merge of merges (shards 0 and 1 joined, then with 2) equals the direct merge', async () => {
    const g = combineParts([shardDir(1), shardDir(0)], join(tmp, 'shards-0-1'));
    assert.deepEqual(g.shards, [0, 1]);
    assert.throws(() => checkParts([g.dir, shardDir(1), shardDir(2)]), /shard 1\/3 is in two parts/);
    const tree = await mergeParts([shardDir(2), g.dir], join(tmp, 'tree'));
    for (const f of FILES) assert.ok(readFileSync(join(merged.runDir, f)).equals(readFileSync(join(tree.runDir, f))), `${f} differs`);
  });

  test('a missing, duplicated or foreign shard is refused by name', async () => {
    assert.throws(() => checkParts([shardDir(0), shardDir(2)]), /missing: --shard 1\/3/);
    assert.throws(() => checkParts([shardDir(0), shardDir(1), shardDir(2), shardDir(1)]), (e: Error) => e.message.includes('shard 1/3 is in two parts') && e.message.includes(shardDir(1)));
    // Another shard count (the same rows cut otherwise), and other settings.
    const two = join(tmp, 'two-0');
    await runAnalysis({ ...BASE, out: two, ...shard(0, 2) });
    assert.throws(() => checkParts([shardDir(0), shardDir(1), two]), (e: Error) => e.message.includes(`part ${two} belongs to another run`) && /shards differ/.test(e.message));
    const seed = join(tmp, 'seed-7');
    await runAnalysis({ ...BASE, seed: 7, out: seed, ...shard(2) });
    assert.throws(() => checkParts([shardDir(0), shardDir(1), seed]), (e: Error) => e.message.includes(`part ${seed} belongs to another run`) && /settings differ/.test(e.message));
  });

  test('status shows each shard with its tokens, and the shards missing', async () => {
    const s = await partsStatus(join(tmp, 'shards'));
    const lines = s.lines;
    assert.equal(lines.length, 3);
    assert.deepEqual(s.missing, []);
    assert.equal(s.done, 3);
    assert.match(lines[0]!, /^shard 0\/3: done, 512 of 512 tokens/);
    assert.match(lines[1]!, /^shard 1\/3: done, 512 of 512 tokens/);
  });
});

describe('token shards × neuron blocks', () => {
  // 2,048 reference neurons in blocks of 1,500 and 548, against 2 other models, and the
  // statistics: 5 passes × 2 shards = 10 parts.
  const BLOCKS = [1500, 1500] as const;
  test('every block of every shard, merged, equals the single blocked run', async () => {
    const single = await runAnalysis({ ...BASE, out: join(tmp, 'bs-single'), refBlocks: BLOCKS });
    const p0 = await runAnalysis({ ...BASE, out: join(tmp, 'bs-0-0'), refBlocks: BLOCKS, part: { block: 0, shard: { index: 0, count: 2 } } });
    const P = p0.manifest.part!.blocks;
    assert.equal(P, 5);
    const dirs = [join(tmp, 'bs-0-0')];
    for (let b = 0; b < P; b++) {
      for (let i = 0; i < 2; i++) {
        if (b === 0 && i === 0) continue;
        const d = join(tmp, `bs-${b}-${i}`);
        await runAnalysis({ ...BASE, out: d, refBlocks: BLOCKS, part: { block: b, shard: { index: i, count: 2 } } });
        dirs.push(d);
      }
    }
    assert.throws(() => checkParts(dirs.filter((d) => !d.endsWith('bs-3-1'))), /missing: --block 3 --shard 1\/2/);
    const merged = await mergeParts(dirs, join(tmp, 'bs-merged'));
    await assertNumbersEqual(single.runDir, merged.runDir);
    for (const f of ['examples.bin', 'examples.json']) assert.ok(readFileSync(join(single.runDir, f)).equals(readFileSync(join(merged.runDir, f))), `${f} differs`);
  });
});

describe('where shards may begin', () => {
  test('at batches where a single run adds its fp32 partial into float64', () => {
    // Batches of 100 kept tokens, chunk 250: the partial holds 100, 200, then 300 > 250 flushes
    // before batch 2; then 100, 200, flush before batch 4, …
    assert.deepEqual(shardCuts([100, 100, 100, 100, 100, 100], 250), [2, 4]);
    // A batch past the chunk is cut into steps: each step flushes, so every batch begins clean.
    assert.deepEqual(shardCuts([600, 600, 600], 250), [1, 2]);
    // Batches without kept tokens before the first: nothing to flush, the partial is empty.
    assert.deepEqual(shardCuts([0, 0, 100], 250), [1, 2]);
  });

  test('more shards than the corpus allows are refused before any work, saying how many it allows', async () => {
    await assert.rejects(runAnalysis({ ...BASE, out: join(tmp, 'seven'), ...shard(0, 7) }), /splits into at most 6 token shards/);
    assert.ok(!existsSync(join(tmp, 'seven', 'part.ckpt')));
    await assert.rejects(runAnalysis({ ...BASE, mode: 'fast', fastMinTokens: 0, out: join(tmp, 'fast'), ...shard(0) }), /needs mode exact/);
  });

  test('the command line: --shard I/N, and slurm --shards N writes an array of N shards', async () => {
    const cmd = parseCli(['analyze', '--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1536', '--shard', '2/3']) as AnalyzeCommand;
    assert.deepEqual(cmd.shard, { index: 2, count: 3 });
    assert.throws(() => parseCli(['analyze', '--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1536', '--shard', '3/3']), /--shard needs I\/N/);
    const dir = join(tmp, 'slurm');
    const w = await writeSlurm(['--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1536', '--shards', '3', '--dir', dir]);
    assert.equal(w.parts, 3);
    const sb = readFileSync(join(dir, 'analyze.sbatch'), 'utf8');
    assert.match(sb, /#SBATCH --array=0-2$/m);
    assert.ok(sb.includes('--shard "$J/3" --out "$PART"'), sb);
    const both = await writeSlurm(['--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1536', '--shards', '2', '--block-size', '1500', '--dir', join(tmp, 'slurm-2')]);
    assert.equal(both.parts, 10);
    assert.ok(readFileSync(join(tmp, 'slurm-2', 'analyze.sbatch'), 'utf8').includes('--block "$((J / 2))" --shard "$((J % 2))/2"'));
  });
});

describe('cross moments over token shards', () => {
  // Two models' keptPost, [T × N] with offsets (fp32 rounding of their sums is then visible).
  const T = 1200;
  const N = 24;
  const r = rng(17);
  const data = [0, 1].map((m) => Float32Array.from({ length: T * N }, (_, e) => 3 + m + (e % N) / 4 + Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())));
  const batch = (b: number): ActivationBatch => {
    const kept = data.map((x) => x.slice(b * 100 * N, (b + 1) * 100 * N));
    return {
      batchIndex: b,
      rows: [],
      rowStart: b,
      offsets: [0, 100],
      nTokens: 100,
      keep: new Uint8Array(100).fill(1),
      keptIndex: Int32Array.from({ length: 100 }, (_, i) => i),
      nKept: 100,
      models: kept.map((k) => ({ pre: k, post: k, keptPre: k, keptPost: k })),
    };
  };
  // Batches of 100 tokens, partials of 300: a single run flushes before batches 3, 6 and 9.
  const opts: CrossMomentsOptions = { model: 1, ref: { nLayers: 2, dMlp: 12 }, other: { nLayers: 2, dMlp: 12 }, seed: 5, chunkTokens: 300 };
  const shards = async (cuts: number[]): Promise<{ maxCorr: Float64Array; baseline: Float64Array }> => {
    const states = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const c = new CrossMoments(opts);
      if (cuts[i]! > 0) c.prime(batch(0));
      for (let b = cuts[i]!; b < cuts[i + 1]!; b++) await c.add(batch(b));
      states.push(c.state());
    }
    return CrossMoments.restore(mergeCrossStates(states), opts).finish();
  };
  const maxDiff = (a: Float64Array, b: Float64Array): number => a.reduce((m, x, j) => Math.max(m, Math.abs(x - b[j]!)), 0);

  test('shards that begin where a single run flushes merge to it within 1e-12; elsewhere fp32 rounding shows', async () => {
    assert.deepEqual(shardCuts(Array(12).fill(100), 300), [3, 6, 9]);
    const single = new CrossMoments(opts);
    for (let b = 0; b < 12; b++) await single.add(batch(b));
    const want = await single.finish();
    const aligned = await shards([0, 3, 9, 12]);
    assert.ok(maxDiff(aligned.maxCorr, want.maxCorr) <= 1e-12 && maxDiff(aligned.baseline, want.baseline) <= 1e-12, `aligned: ${maxDiff(aligned.maxCorr, want.maxCorr)}`);
    // The reason for the rule: cut where the single run's fp32 partial runs on, the sums differ by fp32 rounding.
    const off = await shards([0, 4, 8, 12]);
    assert.ok(maxDiff(off.maxCorr, want.maxCorr) > 1e-9, `misaligned shards matched too (${maxDiff(off.maxCorr, want.maxCorr)}): the test data does not show fp32 rounding`);
  });

  test('a shard that did not take the corpus\' first token as its shift is refused', async () => {
    const a = new CrossMoments(opts);
    for (let b = 0; b < 3; b++) await a.add(batch(b));
    const c = new CrossMoments(opts);
    for (let b = 3; b < 6; b++) await c.add(batch(b)); // not primed: shifted by batch 3's first token
    assert.throws(() => mergeCrossStates([a.state(), c.state()]), /different first tokens/);
  });
});
