/**
 * VS Code's cancellation token as the engine's CancellationSignal (src/engine/errors.ts), the one
 * adapter every command, hover and progress notification uses.
 *
 * Why the engine has its own signal rather than AbortSignal: the analysis worker's signal is a
 * flag in shared memory (workerClient.ts) that synchronous loops poll between batches and
 * pieces of work; an AbortSignal's `aborted` only changes when the event loop runs, which those
 * loops do not let happen. A `{ cancelled }` getter serves both that flag and a token like this.
 */
import type * as vscode from 'vscode';
import type { CancellationSignal } from '../engine/errors';

export function tokenSignal(token: vscode.CancellationToken): CancellationSignal {
  return {
    get cancelled() {
      return token.isCancellationRequested;
    },
  };
}
