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
