// `status PARTS-DIR` when a part's job failed (issue #17: the afterok merge does not run, and
// status must say which part failed and why). Manifests as the pipeline writes them on failure
// (pipeline.ts markEnded: status failed, error, reason); no Slurm daemons needed.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { partsStatus } from '../../src/cli/parts';

function part(dir: string, block: number, status: string, tokensDone: number, extra: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const m = {
    format: 'universal-neurons/run@1',
    status,
    part: { block, blocks: 3 },
    corpus: { rows: 4, row_length: 64 },
    progress: { tokens_done: tokensDone },
    ...extra,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
}

test('status names the failed part, its reason and how to rerun it; a part never started is missing', async () => {
  const root = mkdtempSync(join(tmpdir(), 'un-parts-status-'));
  try {
    part(join(root, 'part-0'), 0, 'complete', 256);
    const err = 'corpus /data/missing.txt: no such file';
    part(join(root, 'part-1'), 1, 'failed', 64, { error: err, reason: `failed while reading the corpus: ${err}` });
    // block 2: its job never ran (no folder)
    const s = await partsStatus(root);
    assert.equal(s.blocks, 3);
    assert.equal(s.done, 1);
    assert.deepEqual(s.failed, [1]);
    assert.deepEqual(s.missing, [2]);
    assert.equal(s.lines.length, 2);
    assert.match(s.lines[0]!, /^block 0: done, 256 of 256 tokens/);
    const line = s.lines[1]!;
    assert.match(line, /^block 1: failed, 64 of 256 tokens/);
    assert.ok(line.includes(`failed: ${err}`), line);
    assert.ok(line.includes(`universal-neurons analyze --resume ${join(root, 'part-1')}`), line);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a part refused before its folder existed: status shows the end of its job's Slurm log", async () => {
  const root = mkdtempSync(join(tmpdir(), 'un-parts-log-'));
  try {
    const parts = join(root, 'parts'); // the layout slurm.ts writes: DIR/parts and DIR/logs
    part(join(parts, 'part-0000'), 0, 'complete', 256);
    part(join(parts, 'part-0001'), 1, 'complete', 256);
    mkdirSync(join(root, 'logs'));
    writeFileSync(join(root, 'logs', 'part-2.out'), 'starting part 2\nerror: corpus /data/missing.txt: no such file\n\n');
    const s = await partsStatus(parts);
    assert.deepEqual(s.missing, [2]);
    assert.equal(s.lines.length, 3);
    assert.equal(s.lines[2], `block 2: no part folder; its job's log ${join(root, 'logs', 'part-2.out')} ends: error: corpus /data/missing.txt: no such file`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
