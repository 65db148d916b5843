/**
 * Runs an analysis in a worker thread (worker.ts) and hands back its progress and outcome, so
 * that the calling thread (the extension host) never blocks on onnxruntime. One worker per run,
 * with its own onnxruntime sessions; it ends with the run.
 *
 * Outcomes: the result (`done`); CancelledError after a cancel (as in-thread: no checkpoint is
 * written on the way out, the run resumes from its last periodic one); the worker's own error (an EngineError keeps its file
 * and tensor); or, for a worker that died without saying why (an uncaught exception, an exit),
 * an EngineError naming the run folder and its last checkpoint. In that last case
 * the worker could not mark its run, so the client does: the manifest says `failed` with the
 * reason, and the run lock (written with this process's pid, which is still alive) is removed, so
 * that a resume from this same process is not refused. The checkpoint is untouched: a resume
 * continues from it and gives the uninterrupted run's results.
 *
 * There is deliberately no terminate(): `worker.terminate()` while the worker is inside an
 * onnxruntime call aborted the whole process here ("terminate called after throwing an instance of
 * 'Napi::Error'"), which in the editor is the extension host. A run is stopped by cancel(); a
 * finished worker ends by itself.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { EngineError, type CancellationSignal } from '../errors';
import { RUN_FILES } from '../run/files';
import { readManifest, writeManifest } from '../run/manifest';
import type { Progress } from './pipeline';
import { fromWorkerError, type FromWorker, type ToWorker, type WorkerAnalysisOptions, type WorkerRunResult } from './workerProtocol';

export type { WorkerAnalysisOptions, WorkerRunResult } from './workerProtocol';

export interface WorkerClientOptions {
  onProgress?: (p: Progress) => void;
  /** Polled every 50 ms; when it fires, the run is cancelled as by cancel(). */
  signal?: CancellationSignal;
  /** The worker script: default dist/analysisWorker.js next to the running bundle, or workerMain.ts under tsx. */
  script?: string;
  /**
   * Niceness of the worker thread and its onnxruntime threads (Linux; 0–19, higher yields more).
   * Absent: the process's. The editor leaves it: on a loaded 2-core machine nice 10 gave no
   * measurable hover gain and let other processes' work slow the analysis (BENCHMARKS.md).
   */
  nice?: number;
  /** Handed to the worker as `workerData` (a test worker's fault, say). */
  workerData?: unknown;
}

export interface AnalysisWorkerRun {
  /** The run's outcome (see the file comment). */
  readonly result: Promise<WorkerRunResult>;
  /** The run folder, once the worker has created or opened it. */
  readonly runDir: string | undefined;
  /** Asks the worker to stop at its next cancel point; `result` then rejects with CancelledError. */
  cancel(): void;
  /** The worker thread's exit code, once it has ended (it ends by itself after its run). */
  readonly exited: Promise<number>;
}

/** The worker bundle beside the running bundle (dist/), else the TypeScript source (tests, benchmarks under tsx). */
export function defaultWorkerScript(): string {
  const js = join(__dirname, 'analysisWorker.js');
  const ts = join(__dirname, 'workerMain.ts');
  // Neither: the bundle's name, so that the error names the file a build would have made.
  return fs.existsSync(js) || !fs.existsSync(ts) ? js : ts;
}

const devBundles = new Map<string, string>();

/**
 * A .ts worker entry (sources under tsx: tests, benchmarks) bundled as the shipped one is, once
 * per process, into a temp file: tsx's loader does not reach a worker's import() on Node 20.
 * `__dirname` keeps meaning the entry's folder, as under tsx.
 */
function devBundle(script: string): string {
  let out = devBundles.get(script);
  if (out) return out;
  const dir = fs.mkdtempSync(join(tmpdir(), 'un-analysis-worker-'));
  out = join(dir, 'analysisWorker.js');
  const req = createRequire(__filename);
  const esbuild = req('esbuild') as typeof import('esbuild');
  const ort = req.resolve('onnxruntime-node');
  esbuild.buildSync({
    entryPoints: [script],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // The bundle lives in a temp folder: onnxruntime-node is required by its absolute path.
    alias: { 'onnxruntime-node': ort },
    external: [ort],
    define: { __dirname: JSON.stringify(dirname(script)) },
    logLevel: 'warning',
  });
  devBundles.set(script, out);
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return out;
}

function createWorker(script: string, workerData: unknown): Worker {
  return new Worker(script.endsWith('.ts') ? devBundle(script) : script, { execArgv: [], workerData });
}

/** Marks the manifest of a run whose worker died unannounced, and drops the lock it left behind. */
function markStopped(runDir: string, reason: string): void {
  try {
    const m = readManifest(runDir);
    if (m.status === 'running') writeManifest(runDir, { ...m, status: 'failed', error: reason, updated: new Date().toISOString() });
  } catch {
    // no manifest yet, or unreadable: nothing to mark
  }
  const lock = join(runDir, RUN_FILES.lock);
  try {
    if (fs.readFileSync(lock, 'utf8').trim() === String(process.pid)) fs.rmSync(lock, { force: true });
  } catch {
    // no lock
  }
}

function lastCheckpoint(runDir: string): string {
  try {
    const p = readManifest(runDir).progress;
    if (p?.batches_done && fs.existsSync(join(runDir, RUN_FILES.checkpointDir))) return `its checkpoint after batch ${p.batches_done} of ${p.batches_total} is kept`;
  } catch {
    // fall through
  }
  return 'it has no checkpoint yet';
}

/** Starts the analysis in a new worker thread. */
export function startAnalysisWorker(options: WorkerAnalysisOptions, client: WorkerClientOptions = {}): AnalysisWorkerRun {
  const worker = createWorker(client.script ?? defaultWorkerScript(), client.workerData);
  const flagBuf = new SharedArrayBuffer(4);
  const flag = new Int32Array(flagBuf);
  let runDir: string | undefined = options.resume;
  let settled = false;
  let crash: Error | undefined;
  let poll: ReturnType<typeof setInterval> | undefined;

  const cancel = (): void => {
    Atomics.store(flag, 0, 1);
    try {
      worker.postMessage({ type: 'cancel' } satisfies ToWorker);
    } catch {
      // already gone
    }
  };

  const result = new Promise<WorkerRunResult>((resolve, reject) => {
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      if (poll) clearInterval(poll);
      f();
    };
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'progress') {
        if (msg.progress.runDir) runDir = msg.progress.runDir;
        try {
          client.onProgress?.(msg.progress);
        } catch {
          // a progress display's failure is not the run's
        }
      } else if (msg.type === 'done') {
        finish(() => resolve(msg.result));
      } else if (msg.type === 'error') {
        finish(() => reject(fromWorkerError(msg.error)));
      }
    });
    worker.on('error', (e) => {
      crash = e;
    });
    worker.on('messageerror', (e) => {
      // A message that could not be read: the run cannot be followed, so it stops at its next cancel point.
      crash = e;
      cancel();
    });
    worker.on('exit', (code) => {
      if (settled) return;
      const why = crash ? `the analysis worker failed: ${crash.message}` : `the analysis worker exited (code ${code}) before the run finished`;
      let message = why;
      if (runDir) {
        markStopped(runDir, why);
        message += `; the run folder ${runDir} stays resumable (${lastCheckpoint(runDir)}): universal-neurons analyze --resume ${runDir}`;
      }
      finish(() => reject(new EngineError(message, runDir)));
    });
  });

  if (client.signal) {
    const s = client.signal;
    poll = setInterval(() => {
      if (s.cancelled) {
        cancel();
        if (poll) clearInterval(poll);
      }
    }, 50);
  }
  worker.postMessage({ type: 'start', options, cancelFlag: flagBuf, ...(client.nice !== undefined ? { nice: client.nice } : {}) } satisfies ToWorker);

  const exited = new Promise<number>((res) => worker.once('exit', res));
  return {
    result,
    get runDir() {
      return runDir;
    },
    cancel,
    exited,
  };
}

/** `runAnalysis`'s shape, in a worker: progress to `onProgress`, `signal` cancels. */
export function runAnalysisInWorker(
  options: WorkerAnalysisOptions,
  onProgress: (p: Progress) => void = () => {},
  signal?: CancellationSignal,
  client: Omit<WorkerClientOptions, 'onProgress' | 'signal'> = {},
): Promise<WorkerRunResult> {
  return startAnalysisWorker(options, { ...client, onProgress, signal }).result;
}
