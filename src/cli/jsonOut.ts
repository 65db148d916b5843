/**
 * Atomic JSON output: the document is streamed into a temp file beside the target, then renamed
 * over it, so a reader never sees half a file (activations of a long text run to many MB, hence
 * streaming rather than one JSON.stringify).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CancelledError, EngineError, ioReason } from '../engine/errors';
import { ioWrite } from '../engine/store';

export type Put = (chunk: string) => void;

/**
 * On any failure (a full disk, a read-only or unwritable folder) the temp file is removed, `path`
 * keeps what it held, and an EngineError names `path`; errors of `produce` itself pass through.
 */
export function writeAtomic(path: string, produce: (put: Put) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fail = (e: unknown): never => {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot write ${path}: ${ioReason(e)}`, path);
  };
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    return fail(e);
  }
  let buf = '';
  let pos = 0;
  const flush = () => {
    if (!buf) return;
    const bytes = new TextEncoder().encode(buf);
    buf = '';
    for (let off = 0; off < bytes.length; ) {
      const n = ioWrite(fd, bytes.subarray(off), pos);
      if (!(n > 0)) throw Object.assign(new Error('short write'), { code: 'EIO' });
      off += n;
      pos += n;
    }
  };
  try {
    produce((chunk) => {
      buf += chunk;
      if (buf.length > 1 << 20) flush();
    });
    flush();
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already failing
    }
    removeQuietly(tmp);
    return fail(e);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    fail(e);
  }
}

function removeQuietly(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // never created, or already gone
  }
}

/** JSON has no NaN/Infinity; write null there, like JSON.stringify does. */
function num(x: number): string {
  return Number.isFinite(x) ? String(x) : 'null';
}

/** Writes `[layer][token][neuron]` from per-layer row-major [T*dMlp] arrays. */
export function putLayers(put: Put, layers: readonly Float32Array[], nTokens: number, dMlp: number): void {
  put('[');
  layers.forEach((a, l) => {
    put(l ? ',[' : '[');
    for (let t = 0; t < nTokens; t++) {
      const row: string[] = new Array(dMlp);
      for (let n = 0; n < dMlp; n++) row[n] = num(a[t * dMlp + n]!);
      put(`${t ? ',' : ''}[${row.join(',')}]`);
    }
    put(']');
  });
  put(']');
}

/**
 * `writeAtomic` for a producer that awaits (between layers and token rows, so that a Ctrl-C is
 * seen while a long text's JSON is written). A CancelledError from `produce` passes through as
 * it is, after the temp file is removed: `path` keeps what it held.
 */
export async function writeAtomicAsync(path: string, produce: (put: Put) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fail = (e: unknown): never => {
    if (e instanceof EngineError || e instanceof CancelledError) throw e;
    throw new EngineError(`cannot write ${path}: ${ioReason(e)}`, path);
  };
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    return fail(e);
  }
  let buf = '';
  let pos = 0;
  const flush = () => {
    if (!buf) return;
    const bytes = new TextEncoder().encode(buf);
    buf = '';
    for (let off = 0; off < bytes.length; ) {
      const n = ioWrite(fd, bytes.subarray(off), pos);
      if (!(n > 0)) throw Object.assign(new Error('short write'), { code: 'EIO' });
      off += n;
      pos += n;
    }
  };
  try {
    await produce((chunk) => {
      buf += chunk;
      if (buf.length > 1 << 20) flush();
    });
    flush();
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already failing
    }
    removeQuietly(tmp);
    return fail(e);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    fail(e);
  }
}

/** `putLayers`, awaiting `tick` every `every` token rows (a cancel point that lets the event loop turn). */
export async function putLayersAsync(put: Put, layers: readonly Float32Array[], nTokens: number, dMlp: number, tick: () => Promise<void>, every = 256): Promise<void> {
  put('[');
  for (const [l, a] of layers.entries()) {
    put(l ? ',[' : '[');
    for (let t = 0; t < nTokens; t++) {
      if (t % every === 0) await tick();
      const row: string[] = new Array(dMlp);
      for (let n = 0; n < dMlp; n++) row[n] = num(a[t * dMlp + n]!);
      put(`${t ? ',' : ''}[${row.join(',')}]`);
    }
    put(']');
  }
  put(']');
}
