/**
 * The analysis in a worker thread, the worker's side. onnxruntime's
 * `session.run` holds the JS thread for a whole batch (about 1 s at GPT-2-small size), so an
 * analysis started from the editor runs here, with its own onnxruntime sessions, and the
 * extension host's event loop stays free for hovers and the UI. The client is workerClient.ts;
 * the bundle entry (dist/analysisWorker.js) is workerMain.ts.
 *
 * The messages are in workerProtocol.ts.
 *
 * Cancel: the pipeline polls its CancellationSignal between batches while its own thread is busy,
 * and a `cancel` message would only be read when the worker's event loop next turns (the
 * pipeline may not yield to it for a whole pass). So the signal reads a flag in shared memory
 * that the client sets; the `cancel` message sets the same flag, for a client without it.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import type { CancellationSignal } from '../errors';
import { runAnalysis, type AnalysisOptions, type Progress, type RunResult } from './pipeline';
import { defaultPlan } from './plan';
import { toWorkerError, type FromWorker, type ToWorker } from './workerProtocol';

export type { FromWorker, ToWorker, WorkerAnalysisOptions, WorkerError, WorkerRunResult } from './workerProtocol';

/** A port the worker talks through: `parentPort`, or one end of a MessageChannel (tests). */
export type WorkerPort = Pick<MessagePort, 'postMessage' | 'on' | 'off'>;

export type RunAnalysisFn = (opts: AnalysisOptions, onProgress: (p: Progress) => void, signal: CancellationSignal) => Promise<RunResult>;

/**
 * Lowers this thread's scheduling priority (Linux: niceness is per thread, and the threads it
 * creates afterwards, onnxruntime's pool among them, inherit it). The calling process's other
 * threads, the extension host's event loop first, keep theirs, so on a busy machine the scheduler
 * serves a hover before the analysis. Returns whether it took; elsewhere it does nothing.
 */
export function lowerThreadPriority(nice: number): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}

/** Flag in shared memory: 0 running, 1 cancel asked. */
function cancelFlag(buf: SharedArrayBuffer | undefined): Int32Array {
  return new Int32Array(buf ?? new SharedArrayBuffer(4));
}

/**
 * The worker's side: waits for one `start`, runs the analysis, posts progress and the outcome,
 * then stops listening (the thread ends once its event loop is empty). The plan is the default
 * plan built from `options.plan`; `run` replaces the pipeline's runAnalysis (tests inject faults).
 */
export function serveAnalysis(port: WorkerPort, run?: RunAnalysisFn): void {
  let flag: Int32Array | undefined;
  let started = false;
  const onMessage = (msg: ToWorker): void => {
    if (msg.type === 'cancel') {
      if (flag) Atomics.store(flag, 0, 1);
      return;
    }
    if (msg.type !== 'start' || started) return;
    started = true;
    // Before any onnxruntime session exists, so that its threads inherit the priority.
    if (msg.nice !== undefined) lowerThreadPriority(msg.nice);
    flag = cancelFlag(msg.cancelFlag);
    const f = flag;
    const signal: CancellationSignal = {
      get cancelled() {
        return Atomics.load(f, 0) !== 0;
      },
    };
    const post = (m: FromWorker): void => port.postMessage(m);
    void (async () => {
      try {
        const { plan: planOptions, ...options } = msg.options;
        const plan = defaultPlan(planOptions ?? {});
        const r = await (run ?? runAnalysis)({ ...options, plan }, (progress) => post({ type: 'progress', progress }), signal);
        post({ type: 'done', result: { runDir: r.runDir, id: r.id, manifest: r.manifest } });
      } catch (e) {
        post({ type: 'error', error: toWorkerError(e) });
      } finally {
        // One run per worker: nothing more to hear, so the thread can end.
        port.off('message', onMessage);
      }
    })();
  };
  port.on('message', onMessage);
}
