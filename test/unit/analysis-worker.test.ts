// The analysis in a worker thread (src/engine/analysis/worker.ts, workerClient.ts) on two shipped
// tiny models and a slice of the held-out corpus: the round trip gives the in-thread run's files
// byte for byte, progress arrives while the run goes, the main thread's event loop stays free;
// cancel stops within a batch, leaving a checkpoint that resumes to the same files; a worker that
// throws, dies of an uncaught exception or exits ends the run with a clear error, and its last
// checkpoint resumes to the same files too. The manifest records the threads asked and used.
// The same run in a child process (`isolation: 'process'`, the editor's): the same files, its own
// pid in the manifest, huge pages where they apply; cancel; a child killed mid-run leaves a
// resumable run and says so; a worker's EngineError crosses both hops as is.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { CancelledError, EngineError } from '../../src/engine/errors';
import { runAnalysis, type Manifest, type Progress } from '../../src/engine/analysis/pipeline';
import { defaultPlan } from '../../src/engine/analysis/plan';
import { runAnalysisInWorker, startAnalysisWorker, type WorkerAnalysisOptions } from '../../src/engine/analysis/workerClient';
import { readCheckpoint } from '../../src/engine/store';
import { hugePagesEnv, HUGEPAGES_TUNABLE } from '../../src/engine/hugePages';
import { resolveThreads } from '../../src/engine/threads';

const ROOT = resolve(__dirname, '..', '..');
const MODELS = ['a', 'b'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const FAULTY = join(ROOT, 'test', 'fixtures', 'faulty-analysis-worker.ts');
// Families and roles off: their finishing step is the slowest, and the worker changes nothing there.
const RESULT_FILES = ['neurons.arrow', 'universal.csv', 'partners.arrow', 'vocab.arrow', 'actstats.arrow', 'examples.json', 'examples.bin', 'basis.json'];
const ROWS = 10;
const tmp = mkdtempSync(join(tmpdir(), 'un-worker-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const options = (out: string): WorkerAnalysisOptions => ({
  models: MODELS,
  corpus: [HELDOUT],
  tokens: 128 * ROWS,
  batchRows: 1,
  checkpointEvery: 2,
  out,
  plan: { families: { enabled: false } },
});
const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;

function sameFiles(dir: string, ref: string): void {
  for (const f of RESULT_FILES) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(ref, f))), `${f} differs from the uninterrupted run`);
}

/** Resumes `dir` in a (real) worker and checks it completes with the reference run's files. */
async function resumeMatches(dir: string, ref: string): Promise<void> {
  const r = await runAnalysisInWorker({ models: [], corpus: [], tokens: 0, resume: dir, plan: { families: { enabled: false } } });
  assert.equal(r.manifest.status, 'complete');
  assert.equal(r.manifest.timings.sessions, 2);
  sameFiles(dir, ref);
  assert.equal(existsSync(join(dir, 'run.lock')), false);
}

/** Starts a run, cancels it at stream batch 3, and checks it rejects as cancelled within a batch or two. */
async function cancelAtBatch3(dir: string, isolation: 'thread' | 'process') {
  let cancelledAt = 0;
  const run = startAnalysisWorker(options(dir), {
    isolation,
    onProgress: (p) => {
      if (p.phase === 'stream' && p.batch === 3 && !cancelledAt) {
        cancelledAt = performance.now();
        run.cancel();
      }
    },
  });
  await assert.rejects(run.result, (e: Error) => e instanceof CancelledError);
  const ms = performance.now() - cancelledAt;
  console.log(`     ${isolation}: cancel → rejected in ${ms.toFixed(0)} ms`);
  // The bound is loose for a shared test machine; what must hold is that it stopped within a batch or two.
  assert.ok(ms < 3000, `cancel took ${ms.toFixed(0)} ms`);
  return run;
}

describe('analysis in a worker thread', () => {
  const inThread = join(tmp, 'in-thread');
  const inWorker = join(tmp, 'in-worker');
  const progress: Progress[] = [];
  let eventLoopMaxMs = 0;
  let exitCode = -1;
  before(async () => {
    const { plan, ...o } = options(inThread);
    await runAnalysis({ ...o, plan: defaultPlan(plan) });
    // From the worker's first message on (before it, the test bundles the worker's sources).
    const h = monitorEventLoopDelay({ resolution: 5 });
    const run = startAnalysisWorker(options(inWorker), {
      onProgress: (p) => {
        if (progress.length === 0) h.enable();
        progress.push(p);
      },
    });
    await run.result;
    h.disable();
    eventLoopMaxMs = h.max / 1e6;
    exitCode = await run.exited;
  });

  test('round trip: progress while it runs, a complete run, the in-thread run’s files byte for byte', () => {
    const phases = new Set(progress.map((p) => p.phase));
    for (const ph of ['open', 'corpus', 'run', 'stream', 'checkpoint', 'finish', 'write', 'done'] as const) assert.ok(phases.has(ph), `no ${ph} progress`);
    assert.equal(progress.find((p) => p.phase === 'run')?.runDir, inWorker);
    assert.equal(progress.filter((p) => p.phase === 'stream' && p.batch).length, ROWS);
    assert.equal(manifest(inWorker).status, 'complete');
    assert.equal(existsSync(join(inWorker, 'run.lock')), false);
    sameFiles(inWorker, inThread);
    assert.equal(exitCode, 0, 'the worker ends by itself after its run');
    // The main thread ran nothing but message handlers: no onnxruntime batch held it.
    console.log(`     main thread's event-loop delay during the worker run: max ${eventLoopMaxMs.toFixed(1)} ms`);
  });

  test('threads: the setting as asked, and the count actually used', () => {
    const m = manifest(inWorker);
    assert.equal(m.settings.threads, 0);
    assert.equal(m.settings.threadsUsed, resolveThreads(0));
    assert.ok(Number.isInteger(m.settings.threadsUsed) && m.settings.threadsUsed! >= 1);
  });

  test('cancel: stops within a batch, a checkpoint kept; the resume gives the same files', async () => {
    const dir = join(tmp, 'cancelled');
    await cancelAtBatch3(dir, 'thread');
    const m = manifest(dir);
    assert.equal(m.status, 'cancelled');
    const ck = readCheckpoint(dir);
    // Cancelled between batches: a checkpoint there; inside one (the forward polls the signal too):
    // the last periodic checkpoint (every 2 here), and the resume redoes what followed it.
    assert.ok(ck && ck.nextBatch >= 2 && ck.nextBatch <= 5, `checkpoint at ${ck?.nextBatch}`);
    assert.equal(existsSync(join(dir, 'run.lock')), false);
    for (const f of RESULT_FILES) assert.equal(existsSync(join(dir, f)), false, `${f} must not exist yet`);
    await resumeMatches(dir, inThread);
  });

  test('a CancellationSignal (polled) cancels too', async () => {
    const dir = join(tmp, 'signalled');
    let flag = false;
    await assert.rejects(
      runAnalysisInWorker(options(dir), (p) => void (p.phase === 'stream' && p.batch === 2 && (flag = true)), {
        get cancelled() {
          return flag;
        },
      }),
      (e: Error) => e instanceof CancelledError,
    );
    assert.equal(manifest(dir).status, 'cancelled');
  });

  test('a worker that throws: its EngineError as is, status failed, the last checkpoint resumes to the same files', async () => {
    const dir = join(tmp, 'throws');
    await assert.rejects(
      runAnalysisInWorker(options(dir), undefined, undefined, { script: FAULTY, workerData: { kind: 'throw', afterBatch: 5 } }),
      (e: Error) => e instanceof EngineError && e.message === 'simulated failure after batch 5' && e.file === 'fault.bin' && e.tensor === 'fault.tensor',
    );
    const m = manifest(dir);
    assert.equal(m.status, 'failed');
    assert.equal(m.error, 'simulated failure after batch 5');
    assert.equal(readCheckpoint(dir)?.nextBatch, 4);
    assert.equal(existsSync(join(dir, 'run.lock')), false);
    await resumeMatches(dir, inThread);
  });

  /** Runs the faulty worker until it dies; checks the error, the manifest and the lock. */
  async function dies(kind: 'uncaught' | 'exit', dir: string): Promise<void> {
    let error: Error | undefined;
    await runAnalysisInWorker(options(dir), undefined, undefined, { script: FAULTY, workerData: { kind, afterBatch: 7 } }).catch((e: Error) => (error = e));
    assert.ok(error instanceof EngineError, String(error));
    console.log(`     ${error.message}`);
    assert.match(error.message, kind === 'exit' ? /the analysis worker exited \(code 7\) before the run finished/ : /the analysis worker failed: simulated crash after batch 7/);
    assert.ok(error.message.includes(dir) && /checkpoint after batch [68] of 10 is kept/.test(error.message) && error.message.includes(`--resume ${dir}`), error.message);
    const m = manifest(dir);
    assert.equal(m.status, 'failed');
    assert.ok(m.error && m.error.startsWith('the analysis worker'));
    assert.equal(existsSync(join(dir, 'run.lock')), false, 'the dead worker’s lock (this pid) was left behind');
  }

  test('a worker that dies of an uncaught exception: a clear error naming the run and its checkpoint, the lock dropped; the resume gives the same files', async () => {
    const dir = join(tmp, 'dies-uncaught');
    await dies('uncaught', dir);
    await resumeMatches(dir, inThread);
  });

  test('a worker that exits: the same clear error', async () => {
    await dies('exit', join(tmp, 'dies-exit'));
  });

  test('nice: the worker thread and its onnxruntime threads run at the niceness asked (Linux)', { skip: process.platform !== 'linux' }, async () => {
    /** Niceness of every thread of this process, from /proc (field 19 of stat, after the command's parentheses). */
    const nices = () =>
      readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      });
    let seen: number[] = [];
    const run = startAnalysisWorker(options(join(tmp, 'niced')), {
      nice: 7,
      onProgress: (p) => {
        if (p.phase === 'stream' && p.batch === 1) {
          seen = nices();
          run.cancel();
        }
      },
    });
    await assert.rejects(run.result, (e: Error) => e instanceof CancelledError);
    const niced = seen.filter((n) => n === 7).length;
    // The worker thread, plus onnxruntime's pool threads of its sessions (threads − 1 per session).
    assert.ok(niced >= 1 + (resolveThreads(0) > 1 ? 1 : 0), `threads at nice 7: ${niced} of ${seen.length} (${seen.join(',')})`);
    assert.ok(seen.filter((n) => n === 0).length >= 1, 'the main thread kept its niceness');
  });
});

describe('analysis in a child process', () => {
  const ref = join(tmp, 'in-thread');
  const dir = join(tmp, 'in-process');
  let pid: number | undefined;
  let exitCode = -1;
  const phases = new Set<string>();
  before(async () => {
    if (!existsSync(join(ref, 'universal.csv'))) {
      const { plan, ...o } = options(ref);
      await runAnalysis({ ...o, plan: defaultPlan(plan) });
    }
    const run = startAnalysisWorker(options(dir), { isolation: 'process', onProgress: (p) => phases.add(p.phase) });
    pid = run.pid;
    await run.result;
    exitCode = await run.exited;
  });

  test('round trip: the in-thread run’s files byte for byte, run by the child (its pid), huge pages where they apply', () => {
    for (const ph of ['open', 'stream', 'write', 'done']) assert.ok(phases.has(ph), `no ${ph} progress`);
    const m = manifest(dir);
    assert.equal(m.status, 'complete');
    sameFiles(dir, ref);
    assert.ok(pid && pid !== process.pid);
    assert.equal(m.pid, pid, 'the run was not made by the child process');
    assert.equal(m.software['huge pages'], hugePagesEnv() ? HUGEPAGES_TUNABLE : 'off');
    assert.equal(existsSync(join(dir, 'run.lock')), false);
    assert.equal(exitCode, 0, 'the child ends by itself after its run');
  });

  test('cancel: stops within a batch or two; the resume gives the same files', async () => {
    const d = join(tmp, 'process-cancelled');
    const run = await cancelAtBatch3(d, 'process');
    assert.equal(manifest(d).status, 'cancelled');
    assert.equal(await run.exited, 0);
    await resumeMatches(d, ref);
  });

  test('a child killed mid-run: a clear error naming the run and its checkpoint, its lock dropped; the resume gives the same files', async () => {
    const d = join(tmp, 'process-killed');
    let killed = false;
    const run = startAnalysisWorker(options(d), {
      isolation: 'process',
      onProgress: (p) => {
        if (p.phase === 'stream' && p.batch === 7 && !killed) {
          killed = true;
          process.kill(run.pid!, 'SIGKILL');
        }
      },
    });
    const error = await run.result.then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(error instanceof EngineError, String(error));
    console.log(`     ${error.message}`);
    assert.match(error.message, /^the analysis process was killed \(SIGKILL\) before the run finished; the run folder /);
    assert.ok(error.message.includes(`--resume ${d}`) && /checkpoint after batch \d+ of 10 is kept/.test(error.message), error.message);
    const m = manifest(d);
    assert.equal(m.status, 'failed');
    assert.equal(existsSync(join(d, 'run.lock')), false, 'the killed child’s lock was left behind');
    await resumeMatches(d, ref);
  });

  test('a worker that throws inside the child: its EngineError as is (file and tensor kept)', async () => {
    const d = join(tmp, 'process-throws');
    await assert.rejects(
      startAnalysisWorker(options(d), { isolation: 'process', script: FAULTY, workerData: { kind: 'throw', afterBatch: 5 } }).result,
      (e: Error) => e instanceof EngineError && e.message === 'simulated failure after batch 5' && e.file === 'fault.bin' && e.tensor === 'fault.tensor',
    );
    assert.equal(manifest(d).status, 'failed');
    assert.equal(readCheckpoint(d)?.nextBatch, 4);
  });
});
