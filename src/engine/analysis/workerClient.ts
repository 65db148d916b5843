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
 *
 * `isolation: 'process'` (the editor's) runs the same worker inside a child process of its own
 * (the bundle's process side, relayAnalysis: it starts the worker and relays the messages). Two
 * gains: the child starts with glibc's huge-pages tunable (hugePages.ts; a tunable is read only
 * when a process starts, and the extension host is not ours to restart), which halved a
 * GPT-2-small-size cross step; and a native fault in onnxruntime ends the child, not the
 * extension host. The parent sees the same messages and the same outcomes; a child that dies
 * unannounced (killed, aborted) is handled as a dead worker, with the tail of its stderr in the error.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { EngineError, type CancellationSignal } from '../errors';
import { hugePagesEnv } from '../hugePages';
import { RUN_FILES } from '../run/files';
import { readManifest, writeManifest } from '../run/manifest';
import type { Progress } from './pipeline';
import { fromWorkerError, toWorkerError, type FromWorker, type ToWorker, type WorkerAnalysisOptions, type WorkerRunResult } from './workerProtocol';

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
  /**
   * 'thread' (default): a worker thread of this process. 'process': the worker inside a child
   * process of its own, started with huge pages where they apply (see the file comment).
   */
  isolation?: 'thread' | 'process';
}

export interface AnalysisWorkerRun {
  /** The run's outcome (see the file comment). */
  readonly result: Promise<WorkerRunResult>;
  /** The run folder, once the worker has created or opened it. */
  readonly runDir: string | undefined;
  /** Asks the worker to stop at its next cancel point; `result` then rejects with CancelledError. */
  cancel(): void;
  /** The worker thread's (or child process') exit code, once it has ended (it ends by itself after its run). */
  readonly exited: Promise<number>;
  /** The child process' pid (`isolation: 'process'`); undefined for a worker thread. */
  readonly pid: number | undefined;
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

const runnable = (script: string): string => (script.endsWith('.ts') ? devBundle(script) : script);

/** What the client needs of a worker thread or a child process. */
interface Channel {
  send(m: ToWorker): void;
  onMessage(f: (m: FromWorker) => void): void;
  /** A failure the channel reports before it ends (a worker's uncaught exception, a message that could not be read). */
  onFault(f: (e: Error) => void): void;
  /** When the other side ended: its exit code, why (the code, or the signal that killed a process), and what it last said. */
  onEnd(f: (code: number, why: string, lastWords: string) => void): void;
  /** The pid its run lock holds. */
  readonly lockPid: number;
  readonly pid: number | undefined;
}

function threadChannel(script: string, workerData: unknown): Channel {
  const worker = new Worker(runnable(script), { execArgv: [], workerData });
  return {
    send: (m) => worker.postMessage(m),
    onMessage: (f) => worker.on('message', f),
    onFault: (f) => {
      worker.on('error', f);
      worker.on('messageerror', f);
    },
    onEnd: (f) => worker.on('exit', (code) => f(code, `the analysis worker exited (code ${code})`, '')),
    lockPid: process.pid,
    pid: undefined,
  };
}

/** Bytes of a child's stderr kept for the error when it dies unannounced. */
const STDERR_TAIL = 2048;

function processChannel(script: string): Channel {
  const child: ChildProcess = fork(runnable(script), [], {
    execArgv: [],
    env: hugePagesEnv(process.env) ?? process.env,
    // Structured clone, as a worker's messages (the progress and manifest objects as they are).
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let tail = '';
  child.stderr!.on('data', (b: Buffer) => {
    process.stderr.write(b);
    tail = (tail + b.toString('utf8')).slice(-STDERR_TAIL);
  });
  const lastWords = (): string => {
    const t = tail.trim().split('\n').slice(-3).join(' | ');
    return t ? `; its last output: ${t}` : '';
  };
  return {
    send: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (f) => child.on('message', (m) => f(m as FromWorker)),
    onFault: (f) => child.on('error', f),
    onEnd: (f) =>
      // 'close': after stderr is read to its end, so the tail is whole.
      child.on('close', (code, signal) =>
        f(code ?? 128, signal ? `the analysis process was killed (${signal})` : `the analysis process exited (code ${code})`, lastWords()),
      ),
    lockPid: child.pid ?? -1,
    pid: child.pid,
  };
}

/** Marks the manifest of a run whose worker died unannounced, and drops the lock it left behind (held by `lockPid`). */
function markStopped(runDir: string, reason: string, lockPid: number): void {
  try {
    const m = readManifest(runDir);
    if (m.status === 'running') writeManifest(runDir, { ...m, status: 'failed', error: reason, updated: new Date().toISOString() });
  } catch {
    // no manifest yet, or unreadable: nothing to mark
  }
  const lock = join(runDir, RUN_FILES.lock);
  try {
    if (fs.readFileSync(lock, 'utf8').trim() === String(lockPid)) fs.rmSync(lock, { force: true });
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

/** Starts the analysis in a new worker thread (or, with `isolation: 'process'`, a child process). */
export function startAnalysisWorker(options: WorkerAnalysisOptions, client: WorkerClientOptions = {}): AnalysisWorkerRun {
  const inProcess = client.isolation === 'process';
  const script = client.script ?? defaultWorkerScript();
  // A child process runs the shipped bundle's process side, which starts the worker (`script`, bundled here when a .ts).
  const ch = inProcess ? processChannel(defaultWorkerScript()) : threadChannel(script, client.workerData);
  const what = inProcess ? 'the analysis process' : 'the analysis worker';
  // Shared memory does not cross a process: the child's relay sets its worker's flag on `cancel`.
  const flagBuf = inProcess ? undefined : new SharedArrayBuffer(4);
  const flag = flagBuf ? new Int32Array(flagBuf) : undefined;
  let runDir: string | undefined = options.resume;
  let settled = false;
  let crash: Error | undefined;
  let poll: ReturnType<typeof setInterval> | undefined;

  const cancel = (): void => {
    if (flag) Atomics.store(flag, 0, 1);
    try {
      ch.send({ type: 'cancel' });
    } catch {
      // already gone
    }
  };

  const exited = new Promise<number>((res) => ch.onEnd((code) => res(code)));
  const result = new Promise<WorkerRunResult>((resolve, reject) => {
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      if (poll) clearInterval(poll);
      f();
    };
    ch.onMessage((msg: FromWorker) => {
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
    ch.onFault((e) => {
      // A message that could not be read: the run cannot be followed, so it stops at its next cancel point.
      crash ??= e;
      cancel();
    });
    ch.onEnd((_code, ended, lastWords) => {
      if (settled) return;
      const why = crash ? `${what} failed: ${crash.message}` : `${ended} before the run finished`;
      let message = why;
      if (runDir) {
        markStopped(runDir, why, ch.lockPid);
        message += `; the run folder ${runDir} stays resumable (${lastCheckpoint(runDir)}): universal-neurons analyze --resume ${runDir}`;
      }
      finish(() => reject(new EngineError(message + lastWords, runDir)));
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
  ch.send({
    type: 'start',
    options,
    ...(flagBuf ? { cancelFlag: flagBuf } : {}),
    ...(client.nice !== undefined ? { nice: client.nice } : {}),
    ...(inProcess ? { worker: { script: runnable(script), workerData: client.workerData } } : {}),
  });
  return {
    result,
    get runDir() {
      return runDir;
    },
    cancel,
    exited,
    pid: ch.pid,
  };
}

/**
 * The child process' side of `isolation: 'process'` (the bundle's entry when it runs as a process,
 * workerMain.ts): takes one `start`, runs it in a worker thread of this process as
 * startAnalysisWorker does, and relays progress, the outcome and `cancel`. This thread only relays,
 * so a cancel is read at once. The parent gone (its channel closed), the run is cancelled and the
 * process leaves.
 */
export function relayAnalysis(): void {
  const send = process.send!.bind(process);
  let run: AnalysisWorkerRun | undefined;
  let done = false;
  process.on('message', (msg: ToWorker) => {
    if (msg.type === 'cancel') return run?.cancel();
    if (msg.type !== 'start' || run) return;
    // The same bundle is the worker (the first process bundled a test's worker entry when it named one).
    const script = msg.worker?.script ?? process.argv[1]!;
    run = startAnalysisWorker(msg.options, {
      script,
      workerData: msg.worker?.workerData,
      ...(msg.nice !== undefined ? { nice: msg.nice } : {}),
      onProgress: (progress) => send({ type: 'progress', progress } satisfies FromWorker),
    });
    const end = (m: FromWorker): void => {
      done = true;
      send(m, undefined, undefined, () => process.disconnect());
    };
    run.result.then(
      (result) => end({ type: 'done', result }),
      (e: unknown) => end({ type: 'error', error: toWorkerError(e) }),
    );
  });
  process.on('disconnect', () => {
    if (done) return;
    run?.cancel();
    // A cancel stops at the next batch; a run stuck in one call is ended with the process.
    setTimeout(() => process.exit(1), 10_000).unref();
    if (!run) process.exit(1);
  });
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
