// A real Slurm on localhost (issue #17): munged, slurmctld and slurmd started here with a generated
// slurm.conf (one node, 2 CPUs), the scripts `universal-neurons slurm` writes for the tiny family in
// 3 parts submitted as they are (the job array, then the merge with afterok), and the merged run
// compared with a single-machine run. Then a task that fails for real (a CPU-time limit): the
// afterok merge never runs, `status` names the part, and rerunning it alone with the merge gives
// the single run. And the same by token shards (slurm --shards). The daemons this test started are
// stopped by their pids.
// Slurm and munge come from Debian (setup.sh, as the e2e installs its tools); when apt cannot be
// reached the test is skipped with a loud message.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readNeuronArrow } from '../../src/engine/run/neurons';

const ROOT = join(__dirname, '..', '..');
const MODELS = ['a', 'b', 'c'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const CLI = join(ROOT, 'dist', 'cli.js');
// Few tokens: the point is the scheduling, the merge's exactness is parts.test.ts's.
const ANALYZE = ['--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1024', '--batch-rows', '4'];
const tmp = mkdtempSync(join(tmpdir(), 'un-slurm-'));
const daemons: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutS = 120): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: timeoutS * 1000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function start(cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(join(tmp, log), 'a');
  const p = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true });
  daemons.push(p);
  return p;
}

async function waitFor(what: string, ok: () => boolean, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 2; i++) {
    if (ok()) return;
    await sleep(500);
  }
  const logs = readdirSync(tmp).filter((f) => f.endsWith('.log')).map((f) => `--- ${f}\n${readFileSync(join(tmp, f), 'utf8').slice(-3000)}`);
  assert.fail(`${what}: not within ${seconds} s\n${logs.join('\n')}`);
}

// The single-machine run, as one would run it without a cluster; both tests compare with it.
let single: Promise<string> | undefined;
function singleRun(): Promise<string> {
  single ??= (async () => {
    const out = join(tmp, 'single');
    // (minutes on a loaded CI machine)
    const s = sh(process.execPath, [CLI, 'analyze', ...ANALYZE, '--out', out], process.env, 900);
    assert.equal(s.status, 0, s.out);
    return out;
  })();
  return single;
}

/** The end of every log of a job folder, for a failure's message. */
const logsOf = (dir: string): string =>
  readdirSync(join(dir, 'logs')).map((f) => `--- ${f}\n${readFileSync(join(dir, 'logs', f), 'utf8').slice(-2000)}`).join('\n');

/** The merged run equals the single run: universal sets, every float column (|Δ| ≤ 1e-9), the examples and the table byte for byte. */
async function assertSameRun(singleDir: string, merged: string): Promise<void> {
  const a = await readNeuronArrow(join(singleDir, 'neurons.arrow'));
  const b = await readNeuronArrow(join(merged, 'neurons.arrow'));
  const ex = (t: typeof a) => t.columns.get('excess_corr')!;
  for (const th of [0.3, 0.4, 0.5]) {
    const set = (t: typeof a) => [...ex(t)].flatMap((x, j) => (x > th ? [j] : []));
    assert.deepEqual(set(b), set(a), `universal at ${th}`);
  }
  for (const [name, col] of a.columns) {
    const other = b.columns.get(name)!;
    for (let j = 0; j < col.length; j++) {
      const d = Math.abs(col[j]! - other[j]!);
      if (!(d <= 1e-9 || (Number.isNaN(col[j]!) && Number.isNaN(other[j]!)))) assert.fail(`${name}[${j}]: ${col[j]} single vs ${other[j]} merged`);
    }
  }
  for (const f of ['examples.bin', 'examples.json', 'universal.csv']) {
    assert.ok(readFileSync(join(singleDir, f)).equals(readFileSync(join(merged, f))), `${f} differs`);
  }
}

const setup = sh('bash', [join(__dirname, 'setup.sh')], process.env, 900);
const skip = setup.status === 3 ? 'apt is unreachable: slurm-wlm and munge cannot be installed' : false;
if (skip) process.stderr.write(`\n!!!!!!!! SKIPPED: the localhost Slurm test: ${skip} !!!!!!!!\n\n`);

describe('a split run on a real localhost Slurm', { skip }, () => {
  let env: NodeJS.ProcessEnv;
  before(async () => {
    assert.equal(setup.status, 0, `setup.sh failed:\n${setup.out}`);
    assert.ok(existsSync(CLI), `${CLI} is missing: build first (node esbuild.config.mjs)`);
    const host = hostname().split('.')[0]!;
    const sock = join(tmp, 'munge.socket');
    const key = join(tmp, 'munge.key');
    writeFileSync(key, randomBytes(1024));
    chmodSync(key, 0o400);
    for (const d of ['state', 'spool']) mkdirSync(join(tmp, d));
    const [ctld, slurmd] = [await freePort(), await freePort()];
    const conf = join(tmp, 'slurm.conf');
    writeFileSync(
      conf,
      [
        'ClusterName=untest',
        `SlurmctldHost=${host}(127.0.0.1)`,
        `SlurmctldPort=${ctld}`,
        `SlurmdPort=${slurmd}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${sock}`,
        `StateSaveLocation=${join(tmp, 'state')}`,
        `SlurmdSpoolDir=${join(tmp, 'spool')}`,
        `SlurmctldPidFile=${join(tmp, 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(tmp, 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(tmp, 'slurmctld.log')}`,
        `SlurmdLogFile=${join(tmp, 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_CPU',
        'SchedulerType=sched/backfill',
        'MpiDefault=none',
        'ReturnToService=2',
        'SlurmdTimeout=300',
        `NodeName=${host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN`,
        `PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
        '',
      ].join('\n'),
    );
    env = { ...process.env, SLURM_CONF: conf };
    // munged refuses to run as root without --force, and checks its files' owners.
    start('munged', ['--foreground', '--force', `--socket=${sock}`, `--key-file=${key}`, `--pid-file=${join(tmp, 'munged.pid')}`, `--log-file=${join(tmp, 'munged.log')}`, `--seed-file=${join(tmp, 'munge.seed')}`], 'munged.out.log', env);
    await waitFor('munged socket', () => existsSync(sock), 30);
    start('slurmctld', ['-D', '-i', '-f', conf], 'slurmctld.out.log', env);
    start('slurmd', ['-D', '-f', conf], 'slurmd.out.log', env);
    await waitFor('the node idle', () => /idle/.test(sh('sinfo', ['-h', '-o', '%T'], env).out), 90);
  });
  after(async () => {
    // Only what this test started, by pid.
    for (const p of daemons.reverse()) if (p.pid && p.exitCode === null) process.kill(p.pid, 'SIGTERM');
    await sleep(1000);
    for (const p of daemons) if (p.pid && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the generated job array and its afterok merge give the single run', async () => {
    const dir = join(tmp, 'cluster');
    // One CPU a task: two parts at once on the 2-CPU node. Block size 2,048: one block per pair, so 3 parts.
    const w = sh(process.execPath, [CLI, 'slurm', ...ANALYZE, '--block-size', '2048', '--dir', dir, '--cpus', '1', '--time', '30', '--cli', `${process.execPath} ${CLI}`], env);
    assert.equal(w.status, 0, w.out);
    assert.match(w.out, /3 parts/);
    const sbatch = readFileSync(join(dir, 'analyze.sbatch'), 'utf8');
    assert.match(sbatch, /#SBATCH --array=0-2/);
    assert.match(readFileSync(join(dir, 'submit.sh'), 'utf8'), /--dependency=afterok:/);
    assert.match(readFileSync(join(dir, 'k8s-parts.yaml'), 'utf8'), /completionMode: Indexed\n {2}completions: 3/);

    const sub = sh('bash', [join(dir, 'submit.sh')], env);
    assert.equal(sub.status, 0, sub.out);
    const jobs = [...sub.out.matchAll(/job (\d+)/g)].map((m) => m[1]!);
    assert.equal(jobs.length, 2, sub.out);
    await waitFor('the parts and the merge', () => sh('squeue', ['-h', '-j', jobs.join(',')], env).out.trim() === '', 900);

    const logs = () => logsOf(dir);
    assert.ok(existsSync(join(dir, 'run', 'neurons.arrow')), `the merge wrote no run\n${logs()}`);
    const status = sh(process.execPath, [CLI, 'status', join(dir, 'parts')], env);
    assert.match(status.out, /3 of 3 parts done/, status.out);

    await assertSameRun(await singleRun(), join(dir, 'run'));
  });

  test('token shards: slurm --shards 2 runs the shards as the array, and the merge gives the single run', async () => {
    const dir = join(tmp, 'shards');
    // 72 rows in batches of 8: the cross moments add their fp32 sums into float64 before batch 8,
    // the one place a shard may begin (parts.ts shardCuts): 2 shards, rows 0–63 and 64–71.
    const args = ['--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '9216'];
    const w = sh(process.execPath, [CLI, 'slurm', ...args, '--shards', '2', '--dir', dir, '--cpus', '1', '--time', '30', '--cli', `${process.execPath} ${CLI}`], env);
    assert.equal(w.status, 0, w.out);
    assert.match(w.out, /2 parts/);
    const sbatch = readFileSync(join(dir, 'analyze.sbatch'), 'utf8');
    assert.match(sbatch, /#SBATCH --array=0-1/);
    assert.ok(sbatch.includes('--shard "$J/2"'), sbatch);
    const sub = sh('bash', [join(dir, 'submit.sh')], env);
    assert.equal(sub.status, 0, sub.out);
    const jobs = [...sub.out.matchAll(/job (\d+)/g)].map((m) => m[1]!);
    assert.equal(jobs.length, 2, sub.out);
    await waitFor('the shards and the merge', () => sh('squeue', ['-h', '-j', jobs.join(',')], env).out.trim() === '', 900);
    assert.ok(existsSync(join(dir, 'run', 'neurons.arrow')), `the merge wrote no run\n${logsOf(dir)}`);
    const status = sh(process.execPath, [CLI, 'status', join(dir, 'parts')], env);
    assert.match(status.out, /shard 1\/2: done, 1,024 of 1,024 tokens/, status.out);
    assert.match(status.out, /2 of 2 parts done/, status.out);
    const single = join(tmp, 'single-shards');
    const s = sh(process.execPath, [CLI, 'analyze', ...args, '--out', single], process.env, 900);
    assert.equal(s.status, 0, s.out);
    await assertSameRun(single, join(dir, 'run'));
  });

  test('a task that fails: the merge never runs, status names the part; rerunning it alone, then the merge, gives the single run', async () => {
    const dir = join(tmp, 'failing');
    const w = sh(process.execPath, [CLI, 'slurm', ...ANALYZE, '--block-size', '2048', '--dir', dir, '--cpus', '1', '--time', '30', '--cli', `${process.execPath} ${CLI}`], env);
    assert.equal(w.status, 0, w.out);
    // Parts 0 and 2 are done already (the first test's, of the same run): their tasks find them
    // done and exit 0 at once, as on a resubmission. Part 1 computes.
    for (const p of ['part-0000', 'part-0002']) cpSync(join(tmp, 'cluster', 'parts', p), join(dir, 'parts', p), { recursive: true });
    // The fault, a real one: a 1 s CPU-time limit in the submitting shell, which Slurm gives every
    // task (PropagateResourceLimits, ALL by default), as a site's limit would. Part 1 needs about
    // 2 CPU-seconds, so the kernel stops it (SIGXCPU) while it opens the models; bash and sbatch
    // need far less. No core file.
    const sub = sh('bash', ['-c', `ulimit -c 0 && ulimit -S -t 1 && exec bash ${join(dir, 'submit.sh')}`], env);
    assert.equal(sub.status, 0, sub.out);
    const [parts, merge] = [...sub.out.matchAll(/job (\d+)/g)].map((m) => m[1]!);
    assert.ok(parts && merge, sub.out);
    const logs = () => logsOf(dir);
    // afterok: once the array has ended with a failed task, the merge can never start.
    const reason = () => sh('squeue', ['-h', '-j', merge, '-o', '%r'], env).out.trim();
    await waitFor('the parts to end and the merge to wait forever', () => sh('squeue', ['-h', '-j', parts], env).out.trim() === '' && reason() === 'DependencyNeverSatisfied', 300);
    assert.ok(!existsSync(join(dir, 'logs', 'merge.out')) && !existsSync(join(dir, 'run')), `the merge ran\n${logs()}`);
    assert.equal(sh('scancel', [merge], env).status, 0);

    const status = sh(process.execPath, [CLI, 'status', join(dir, 'parts')], env);
    assert.match(status.out, /2 of 3 parts done; failed: block 1\n/, `${status.out}\n${logs()}`);
    assert.match(status.out, /^block 1: .*its job exited with status (13[47]|143|152) \(SIG(KILL|XCPU|TERM|ABRT)\) on .*, Slurm job \d+/m, status.out);
    // Rerun only part 1, and a new merge after it, with the command status prints (no limit now).
    const rerun = status.out.split('\n').find((l) => l.includes('--array=1 '));
    assert.ok(rerun, status.out);
    const r = sh('bash', ['-c', rerun], env);
    assert.equal(r.status, 0, r.out);
    await waitFor('the rerun and the merge', () => sh('squeue', ['-h'], env).out.trim() === '', 600);
    assert.ok(existsSync(join(dir, 'run', 'neurons.arrow')), `the merge wrote no run\n${logs()}`);
    assert.match(sh(process.execPath, [CLI, 'status', join(dir, 'parts')], env).out, /3 of 3 parts done\n/);
    await assertSameRun(await singleRun(), join(dir, 'run'));
  });
});
