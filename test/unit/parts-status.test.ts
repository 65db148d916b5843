// `status PARTS-DIR` when a part's job failed (issue #17: the afterok merge does not run, and
// status must say which part failed and why). Manifests as the pipeline writes them on failure
// (pipeline/finish.ts markEnded: status failed, error, reason), and the exit line the generated job
// script writes (DIR/logs/part-J.exit, run here by bash without Slurm); no Slurm daemons needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { partsStatus, runStatus } from '../../src/cli/parts';
import { writeSlurm } from '../../src/cli/slurm';

function part(dir: string, block: number, status: string, tokensDone: number, extra: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const m = {
    format: 'universal-neurons/run@1',
    status,
    // What status reads is checked as every reader checks a manifest (run/manifest.ts): the models are required.
    models: [{ label: 'a', dir: '/models/a', nLayers: 2, dMlp: 8 }, { label: 'b', dir: '/models/b', nLayers: 2, dMlp: 8 }],
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

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

test("a part killed on another node (its manifest still says running): the job's exit line makes it failed", async () => {
  const root = mkdtempSync(join(tmpdir(), 'un-parts-exit-'));
  try {
    const parts = join(root, 'parts');
    const t = Date.parse('2026-12-02T10:00:00Z');
    part(join(parts, 'part-0000'), 0, 'complete', 256);
    // Slurm's time limit (SIGTERM to the part) leaves the manifest as it was: running, on node7.
    const running = { pid: 4242, hostname: 'node7-not-this-host', updated: new Date(t).toISOString() };
    part(join(parts, 'part-0001'), 1, 'running', 128, running);
    part(join(parts, 'part-0002'), 2, 'running', 64, running);
    mkdirSync(join(root, 'logs'));
    writeFileSync(join(root, 'logs', 'part-1.exit'), `exit 143 on node7, Slurm job 42, ${iso(t + 5000)}\n`);
    const limit = 'slurmstepd: error: *** JOB 42 ON node7 CANCELLED AT 2026-12-02T10:00:05 DUE TO TIME LIMIT ***';
    writeFileSync(join(root, 'logs', 'part-1.out'), `pass 1/1: computing correlations and statistics\n${limit}\n`);
    // Part 2 failed before, and was resumed by hand since (its manifest is newer): running.
    writeFileSync(join(root, 'logs', 'part-2.exit'), `exit 1 on node7, Slurm job 41, ${iso(t - 60_000)}\n`);
    const s = await partsStatus(parts);
    assert.deepEqual(s.failed, [1]);
    assert.deepEqual(s.missing, []);
    assert.equal(s.done, 1);
    assert.equal(s.lines[1], `block 1: failed, 128 of 256 tokens (${join(parts, 'part-0001')}): its job exited with status 143 (SIGTERM) on node7, Slurm job 42, ${iso(t + 5000)}; its job's log ${join(root, 'logs', 'part-1.out')} ends: ${limit}; resume it with: universal-neurons analyze --resume ${join(parts, 'part-0001')}`);
    assert.match(s.lines[2]!, /^block 2: running, 64 of 256 tokens/);
    // A success line does not make a part failed.
    writeFileSync(join(root, 'logs', 'part-1.exit'), `exit 0 on node7, ${iso(t + 5000)}\n`);
    assert.deepEqual((await partsStatus(parts)).failed, []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('jobs that failed before any part folder existed: failed, not missing, counted from the job script', async () => {
  const root = mkdtempSync(join(tmpdir(), 'un-parts-early-'));
  try {
    const parts = join(root, 'parts');
    mkdirSync(parts);
    mkdirSync(join(root, 'logs'));
    writeFileSync(join(root, 'analyze.sbatch'), '#!/bin/bash\n#SBATCH --array=0-2\n');
    writeFileSync(join(root, 'logs', 'part-0.exit'), 'exit 152 on node3, Slurm job 7, 2026-12-02T10:00:00Z\n');
    writeFileSync(join(root, 'logs', 'part-0.out'), 'opening 3 models\nanalyze.sbatch: line 24: 20101 CPU time limit exceeded "$@"\n');
    writeFileSync(join(root, 'logs', 'part-2.exit'), 'exit 1 on node4, Slurm job 7, 2026-12-02T10:00:01Z\n');
    const s = await partsStatus(parts);
    assert.equal(s.blocks, 3);
    assert.deepEqual(s.failed, [0, 2]);
    assert.deepEqual(s.missing, [1]);
    assert.equal(s.lines[0], `block 0: failed before its part folder existed: its job exited with status 152 (SIGXCPU) on node3, Slurm job 7, 2026-12-02T10:00:00Z; its job's log ${join(root, 'logs', 'part-0.out')} ends: analyze.sbatch: line 24: 20101 CPU time limit exceeded "$@"`);
    assert.equal(s.lines[1], 'block 2: failed before its part folder existed: its job exited with status 1 on node4, Slurm job 7, 2026-12-02T10:00:01Z');
    const out: string[] = [];
    await runStatus({ dir: parts }, (l) => out.push(l));
    assert.equal(out[2], '0 of 3 parts done; not started: block 1; failed: block 0, 2');
    assert.equal(out[4], `  cd ${root} && j=$(sbatch --parsable --array=0,2 analyze.sbatch) && sbatch --dependency=afterok:\${j%%;*} merge.sbatch`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the generated job script writes how its part ended, a SIGKILL of the part included; a retry replaces it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'un-parts-trap-'));
  try {
    const models = ['a', 'b'].map((s) => join('models', `tiny-gpt2-${s}`));
    const args = ['--models', ...models, '--corpus', 'models/corpus/heldout.jsonl', '--tokens', '1024', '--block-size', '2048', '--dir', root];
    // In place of universal-neurons: a part that the kernel kills (as the OOM killer does), one
    // that exits 3, and one that succeeds. bash runs the generated script as Slurm would.
    const task = async (cli: string, j: number) => {
      await writeSlurm([...args, '--cli', cli]);
      const r = spawnSync('bash', [join(root, 'analyze.sbatch')], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: String(j), SLURM_JOB_ID: '99' } });
      return r.status;
    };
    assert.equal(await task(`bash -c 'kill -KILL $$' x`, 0), 137);
    assert.equal(await task(`bash -c 'exit 3' x`, 1), 3);
    const s = await partsStatus(join(root, 'parts'));
    assert.deepEqual(s.failed, [0, 1]);
    assert.match(s.lines[0]!, /^block 0: failed before its part folder existed: its job exited with status 137 \(SIGKILL\) on .+, Slurm job 99, \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(s.lines[1]!, /^block 1: failed before its part folder existed: its job exited with status 3 on /);
    assert.equal(await task('true', 1), 0);
    assert.match(readFileSync(join(root, 'logs', 'part-1.exit'), 'utf8'), /^exit 0 on /);
    assert.deepEqual((await partsStatus(join(root, 'parts'))).failed, [0]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
