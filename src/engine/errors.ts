/**
 * Every failure the engine reports to a person: the message says what is wrong and names the
 * file (and tensor, where there is one), so that CLI and editor can show it as it is.
 */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

/**
 * Why a file-system call failed, in words, with the code and what to do, for messages that
 * already name the path ("cannot write PATH: <reason>").
 */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
      return 'the disk is full (ENOSPC); free some space or choose another folder, then run again';
    case 'EDQUOT':
      return 'the disk quota is exceeded (EDQUOT); free some space or choose another folder, then run again';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code}); check the permissions of the file and its folder, or choose another folder`;
    case 'EROFS':
      return 'the file system is read-only (EROFS); choose a writable folder';
    case 'ENOENT':
      return 'no such file or folder (ENOENT)';
    case 'EISDIR':
      return 'it is a folder (EISDIR)';
    case 'EMFILE':
    case 'ENFILE':
      return `too many open files (${code}); close other programs or raise the limit (ulimit -n)`;
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

/** Raised when a caller's cancellation token fires; never a failure to report. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export interface CancellationSignal {
  readonly cancelled: boolean;
}

export function throwIfCancelled(signal: CancellationSignal | undefined): void {
  if (signal?.cancelled) throw new CancelledError();
}

/** What is wrong with a run folder, so that the editor can offer the right fix. */
export type RunProblem = 'missing' | 'incomplete' | 'corrupt';

/** A run folder that cannot be read: missing (moved, deleted), incomplete (running, cancelled, failed) or corrupt. */
export class RunError extends EngineError {
  constructor(
    message: string,
    readonly problem: RunProblem,
    readonly runDir: string,
  ) {
    super(message, runDir);
    this.name = 'RunError';
  }
}

/** A request a loaded run cannot answer (a neuron that is not in it): the caller asked for the wrong thing. */
export class RunDataError extends EngineError {
  constructor(message: string, runDir?: string) {
    super(message, runDir);
    this.name = 'RunDataError';
  }
}
