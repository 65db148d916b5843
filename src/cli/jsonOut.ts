/**
 * Atomic JSON output: the document is streamed into a temp file beside the target, then renamed
 * over it, so a reader never sees half a file (activations of a long text run to many MB, hence
 * streaming rather than one JSON.stringify).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type Put = (chunk: string) => void;

export function writeAtomic(path: string, produce: (put: Put) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  let buf = '';
  const flush = () => {
    if (buf) writeSync(fd, buf);
    buf = '';
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
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
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
