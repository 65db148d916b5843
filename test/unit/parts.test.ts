// Split runs (issue #17): the shipped tiny family analysed as parts, one pass of the plan each
// (a block of reference neurons against one other model, or the statistics), then merged, gives
// the single run's files byte for byte: the same arithmetic on the same batches (parts.ts). A part
// cancelled part-way resumes alone; the merge refuses missing, duplicated and foreign parts by name.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CancelledError } from '../../src/engine/errors';
import { checkParts, combineParts } from '../../src/engine/analysis/parts';
import { mergeParts } from '../../src/engine/analysis/merge';
import { runAnalysis, type RunResult } from '../../src/engine/analysis/pipeline';
import { readNeuronArrow } from '../../src/engine/run/neurons';
import { readJson } from '../../src/engine/store';
import type { Manifest } from '../../src/engine/run/manifest';

const ROOT = join(__dirname, '..', '..');
const MODELS = ['a', 'b', 'c'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-parts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// 8 rows of 128 tokens in batches of 4: two batches, a checkpoint after each.
const BASE = { models: MODELS, corpus: [HELDOUT], tokens: 128 * 8, batchRows: 4, checkpointEvery: 1, threads: 1 };
// 2,048 reference neurons: a first block of 1,000, then 1,048 in two of 524, against each of 2 other models,
// and the statistics: 7 parts.
const BLOCKS = [1000, 1000] as const;
const FILES = ['neurons.arrow', 'partners.arrow', 'universal.csv', 'vocab.arrow', 'actstats.arrow', 'examples.bin', 'examples.json', 'families.arrow'];

const partDir = (j: number): string => join(tmp, `part-${j}`);

describe('a run split into parts merges to the single run', () => {
  let single: RunResult;
  let merged: RunResult;
  let blocks = 0;
  before(async () => {
    single = await runAnalysis({ ...BASE, out: join(tmp, 'single'), refBlocks: BLOCKS });
    // Part 0 first: it says how many parts the plan has.
    const p0 = await runAnalysis({ ...BASE, out: partDir(0), refBlocks: BLOCKS, part: { block: 0 } });
    blocks = p0.manifest.part!.blocks;
    for (let j = 1; j < blocks; j++) {
      if (j === 2) {
        // Killed after its first batch: the part resumes alone from its checkpoint.
        let stop = false;
        await assert.rejects(
          runAnalysis({ ...BASE, out: partDir(j), refBlocks: BLOCKS, part: { block: j } }, (p) => {
            if (p.phase === 'checkpoint') stop = true;
          }, { get cancelled() { return stop; } }),
          CancelledError,
        );
        await runAnalysis({ ...BASE, resume: partDir(j) });
        continue;
      }
      await runAnalysis({ ...BASE, out: partDir(j), refBlocks: BLOCKS, part: { block: j } });
    }
    merged = await mergeParts(Array.from({ length: blocks }, (_, j) => partDir(j)).reverse(), join(tmp, 'merged'));
  });

  test('the plan has a part per block and other model, and one for the statistics', () => {
    assert.equal(blocks, 3 * 2 + 1);
    const m = readJson<Manifest>(join(partDir(3), 'manifest.json'));
    assert.equal(m.status, 'complete');
    assert.equal(m.part?.block, 3);
    assert.equal(m.results, undefined, 'a part writes no results');
  });

  test('the merged files equal the single run byte for byte', () => {
    for (const f of FILES) {
      assert.ok(readFileSync(join(single.runDir, f)).equals(readFileSync(join(merged.runDir, f))), `${f} differs`);
    }
    assert.equal(merged.manifest.status, 'complete');
    assert.equal(merged.manifest.part, undefined);
    assert.deepEqual(merged.manifest.results, single.manifest.results);
  });

  test('identical universal sets at 0.3, 0.4 and 0.5, and every float column within 1e-9', async () => {
    const a = await readNeuronArrow(join(single.runDir, 'neurons.arrow'));
    const b = await readNeuronArrow(join(merged.runDir, 'neurons.arrow'));
    const ex = (t: typeof a) => t.columns.get('excess_corr') as Float64Array;
    for (const th of [0.3, 0.4, 0.5]) {
      const set = (t: typeof a) => [...ex(t)].flatMap((x, j) => (x > th ? [j] : []));
      assert.deepEqual(set(b), set(a), `universal at ${th}`);
    }
    let floats = 0;
    for (const [name, col] of a.columns) {
      if (a.booleans?.has(name) || ['layer', 'neuron'].includes(name)) continue;
      const other = b.columns.get(name) as Float64Array;
      floats++;
      for (let j = 0; j < col.length; j++) {
        const d = Math.abs(col[j]! - other[j]!);
        if (!(d <= 1e-9 || (Number.isNaN(col[j]!) && Number.isNaN(other[j]!)))) assert.fail(`${name}[${j}]: ${col[j]} vs ${other[j]}`);
      }
    }
    assert.ok(floats > 10, `${floats} float columns compared`);
  });

  test('a merge of merges: parts joined in two groups, then merged, equal the single run', async () => {
    const all = Array.from({ length: blocks }, (_, j) => partDir(j));
    const g1 = combineParts(all.slice(0, 3), join(tmp, 'group-1'));
    const g2 = combineParts(all.slice(3), join(tmp, 'group-2'));
    assert.deepEqual(g1.passes, [0, 1, 2]);
    assert.throws(() => checkParts([g1.dir, partDir(2), g2.dir]), /block 2 is in two parts/);
    const tree = await mergeParts([g2.dir, g1.dir], join(tmp, 'tree'));
    for (const f of FILES) assert.ok(readFileSync(join(single.runDir, f)).equals(readFileSync(join(tree.runDir, f))), `${f} differs`);
  });

  test('a missing part is refused, naming the block to compute', () => {
    const dirs = Array.from({ length: blocks }, (_, j) => partDir(j)).filter((_, j) => j !== 3);
    assert.throws(() => checkParts(dirs), /6 of 7 blocks; missing: --block 3/);
  });

  test('a duplicated part is refused, naming both folders', () => {
    const dirs = [...Array.from({ length: blocks }, (_, j) => partDir(j)), partDir(1)];
    assert.throws(() => checkParts(dirs), (e: Error) => e.message.includes('block 1 is in two parts') && e.message.includes(partDir(1)));
  });

  test('a part of another run is refused, naming it and what differs', async () => {
    const foreign = join(tmp, 'foreign');
    await runAnalysis({ ...BASE, seed: 7, out: foreign, refBlocks: BLOCKS, part: { block: 6 } });
    const dirs = [...Array.from({ length: 6 }, (_, j) => partDir(j)), foreign];
    assert.throws(() => checkParts(dirs), (e: Error) => e.message.includes(`part ${foreign} belongs to another run`) && /settings differ/.test(e.message));
  });

  test('the merge of a part that did not finish says how to finish it', () => {
    assert.throws(() => checkParts([join(tmp, 'single')]), /is a whole run, not a part/);
  });

  test('fast mode and blocks left to the memory planner are refused for parts', async () => {
    await assert.rejects(runAnalysis({ ...BASE, mode: 'fast', fastMinTokens: 0, out: join(tmp, 'fast'), refBlocks: BLOCKS, part: { block: 0 } }), /needs mode exact/);
    await assert.rejects(runAnalysis({ ...BASE, out: join(tmp, 'unplanned'), part: { block: 0 } }), /needs its blocks given \(--block-size/);
    await assert.rejects(runAnalysis({ ...BASE, out: join(tmp, 'beyond'), refBlocks: BLOCKS, part: { block: 7 } }), /has 7 parts, --block 0 to 6/);
  });
});
