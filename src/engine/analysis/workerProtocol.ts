/**
 * The analysis worker's protocol (worker.ts serves it, workerClient.ts drives it): messages and
 * errors as data. No engine code here, so that the client loads none of the pipeline.
 *
 * Client → worker: `start` (the options, and a shared cancel flag), `cancel`.
 * Worker → client: `progress` (the pipeline's Progress, as is), then exactly one of `done` (the
 * run folder, id and manifest) or `error` (an error as data; `cancelled` for a cancel).
 */
import { CancelledError, EngineError } from '../errors';
import type { AnalysisOptions, Manifest, Progress } from './pipeline';
import type { PlanOptions } from './plan';

/** What a worker can be sent: the pipeline's options as data. The plan is the default plan, built from `plan`. */
export interface WorkerAnalysisOptions extends Omit<AnalysisOptions, 'plan'> {
  plan?: PlanOptions;
}

/** What the worker returns: the accumulators' results stay in the worker (they are in the run folder). */
export interface WorkerRunResult {
  runDir: string;
  id: string;
  manifest: Manifest;
}

export interface WorkerError {
  name: string;
  message: string;
  file?: string;
  tensor?: string;
  stack?: string;
  cancelled?: boolean;
}

export type ToWorker =
  | {
      type: 'start';
      options: WorkerAnalysisOptions;
      cancelFlag?: SharedArrayBuffer;
      /** Niceness for the worker thread and the onnxruntime threads it creates (Linux); absent: unchanged. */
      nice?: number;
      /** To a child process (workerClient.ts relayAnalysis): the worker it starts, when not its own bundle. */
      worker?: { script?: string; workerData?: unknown };
    }
  | { type: 'cancel' };

export type FromWorker = { type: 'progress'; progress: Progress } | { type: 'done'; result: WorkerRunResult } | { type: 'error'; error: WorkerError };

export function toWorkerError(e: unknown): WorkerError {
  if (e instanceof CancelledError) return { name: e.name, message: e.message, cancelled: true };
  if (e instanceof EngineError) return { name: e.name, message: e.message, file: e.file, tensor: e.tensor, stack: e.stack };
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: 'Error', message: String(e) };
}

/** The error a WorkerError stands for: CancelledError, EngineError (file, tensor kept), or Error. */
export function fromWorkerError(w: WorkerError): Error {
  if (w.cancelled) return new CancelledError();
  const e = w.name === 'EngineError' ? new EngineError(w.message, w.file, w.tensor) : new Error(w.message);
  if (w.name !== 'EngineError' && w.name !== 'Error') e.name = w.name;
  if (w.stack) e.stack = w.stack;
  return e;
}
