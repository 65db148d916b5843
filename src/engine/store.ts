/**
 * Results store: one folder per run (`.universal-neurons/runs/<id>/` or `--out`), every file
 * written atomically — temp file in the same folder, fsync, rename — so a run killed mid-way or
 * a disk that fills mid-write never leaves a half-written file under a final name, and files of
 * earlier runs (or earlier checkpoints of this one) stay as they were. Also the run folder's
 * life (create, lock, resolve) and its checkpoint.
 *
 * What each result file holds, and its one reader and writer, is src/engine/run/; this module
 * gives them the atomic write and the Arrow IPC / CSV encoding.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { EngineError, ioReason } from './errors';
import type { AccumulatorState, StateValue } from './analysis/types';
import { RUNS_DIR, RUN_FILES } from './run/files';
import { processAlive } from './run/liveness';

export { RUNS_DIR };

// ---------------------------------------------------------------------------------------------
// Atomic writes

/** The low-level write, injectable so tests can make the disk "fill" mid-write. */
export type WriteFn = (fd: number, data: Uint8Array, position: number) => number;
const defaultWrite: WriteFn = (fd, data, position) => fs.writeSync(fd, data, 0, data.byteLength, position);
let writeImpl: WriteFn = defaultWrite;

/** For tests: replace the byte writer (returns a function that restores the default). */
export function setWriteFn(fn: WriteFn | undefined): () => void {
  const prev = writeImpl;
  writeImpl = fn ?? defaultWrite;
  return () => {
    writeImpl = prev;
  };
}

/** A Buffer as a plain Uint8Array view (this @types/node's Buffer does not type-check as one). */
const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** The low-level write as tests have set it (jsonOut streams through it too). */
export function ioWrite(fd: number, data: Uint8Array, position: number): number {
  return writeImpl(fd, data, position);
}

const ioMessage = ioReason;

/**
 * Writes `chunks` to `path` atomically. On any failure the temp file is removed, the final name
 * keeps whatever it held before, and an EngineError names the file.
 */
export function writeFileAtomic(path: string, chunks: Uint8Array | string | readonly (Uint8Array | string)[]): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const list = Array.isArray(chunks) ? chunks : [chunks as Uint8Array | string];
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    let pos = 0;
    for (const c of list) {
      const bytes = typeof c === 'string' ? u8(Buffer.from(c, 'utf8')) : c;
      let off = 0;
      while (off < bytes.byteLength) {
        const n = writeImpl(fd, bytes.subarray(off), pos);
        if (!(n > 0)) throw Object.assign(new Error('short write'), { code: 'EIO' });
        off += n;
        pos += n;
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the unlink below matters more
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created, or already gone
    }
    throw new EngineError(`cannot write ${path}: ${ioMessage(e)}`, path);
  }
  syncDir(dir);
}

/** Makes the rename durable; some filesystems refuse fsync on folders, which is harmless here. */
function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // best effort
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

// ---------------------------------------------------------------------------------------------
// Run folders

/** `YYYYMMDD-HHMMSS-xxxxxx`: sortable by time, the hash tells same-second runs apart. */
export function newRunId(now: Date = new Date(), salt = ''): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  const h = createHash('sha256').update(`${now.toISOString()}|${process.pid}|${salt}|`).update(u8(randomBytes(8))).digest('hex');
  return `${stamp}-${h.slice(0, 6)}`;
}

/** Creates a fresh run folder (refuses to reuse one that holds a manifest). */
export function createRunDir(opts: { out?: string; workspace?: string; id?: string }): { dir: string; id: string } {
  let dir: string;
  let id: string;
  if (opts.out) {
    dir = opts.out;
    id = basename(dir);
  } else {
    id = opts.id ?? newRunId();
    dir = join(opts.workspace ?? process.cwd(), RUNS_DIR, id);
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new EngineError(`cannot create run folder ${dir}: ${ioMessage(e)}`, dir);
  }
  if (fs.existsSync(join(dir, RUN_FILES.manifest))) {
    throw new EngineError(`${dir} already holds a run (manifest.json); choose another --out or --resume it`, dir);
  }
  return { dir, id };
}

/**
 * Claims a run folder for this process (`run.lock` holding the pid), so that two processes never
 * write one run. A lock left by a process that no longer exists (killed) is taken over.
 * Returns the release function.
 */
export function acquireRunLock(runDir: string): () => void {
  const p = join(runDir, RUN_FILES.lock);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = fs.openSync(p, 'wx');
      try {
        fs.writeSync(fd, String(process.pid));
      } finally {
        fs.closeSync(fd);
      }
      return () => {
        try {
          if (fs.readFileSync(p, 'utf8') === String(process.pid)) fs.unlinkSync(p);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw new EngineError(`cannot lock run ${runDir}: ${ioMessage(e)}`, runDir);
      }
      let pid = NaN;
      try {
        pid = Number(fs.readFileSync(p, 'utf8').trim());
      } catch {
        // unreadable: treat as stale
      }
      if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || processAlive(pid))) {
        throw new EngineError(`run ${runDir} is in use by process ${pid}`, runDir);
      }
      fs.rmSync(p, { force: true });
    }
  }
}

/** A run folder given as a path, or as an id under the workspace's runs folder. */
export function resolveRunDir(run: string, workspace: string = process.cwd()): string {
  for (const cand of [run, join(workspace, RUNS_DIR, run)]) {
    if (fs.existsSync(join(cand, RUN_FILES.manifest))) return cand;
  }
  throw new EngineError(`no run at ${run} (looked for manifest.json there and under ${join(workspace, RUNS_DIR)})`, run);
}

export function readJson<T>(path: string): T {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${ioMessage(e)}`, path);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new EngineError(`${path} is not valid JSON (${(e as Error).message})`, path);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: one file, so that the batch index and every accumulator's state change together.

const CKPT_MAGIC = 'UNCKPT01';

type ArrayKind = 'f64' | 'f32' | 'i32' | 'u32';
interface ArrayRef {
  $array: ArrayKind;
  offset: number;
  length: number;
}

export interface Checkpoint {
  /** Batches completed: the run continues at this batch index. */
  nextBatch: number;
  /** Anything JSON-able the pipeline wants back (corpus hash, settings, …). */
  meta: Record<string, unknown>;
  states: Record<string, AccumulatorState>;
}

function kindOfArray(v: StateValue): ArrayKind | undefined {
  if (v instanceof Float64Array) return 'f64';
  if (v instanceof Float32Array) return 'f32';
  if (v instanceof Int32Array) return 'i32';
  if (v instanceof Uint32Array) return 'u32';
  return undefined;
}

/** Layout: magic, uint32 LE header length, header JSON, zero padding to 8, raw arrays (each 8-aligned). */
export function encodeCheckpoint(ck: Checkpoint): (Uint8Array | string)[] {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const states: Record<string, Record<string, unknown>> = {};
  for (const [name, st] of Object.entries(ck.states)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(st)) {
      const kind = kindOfArray(v);
      if (!kind) {
        out[key] = v;
        continue;
      }
      const a = v as Float64Array | Float32Array | Int32Array | Uint32Array;
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      const ref: ArrayRef = { $array: kind, offset, length: a.length };
      out[key] = ref;
      blobs.push(bytes);
      offset += bytes.byteLength;
      const pad = (8 - (offset % 8)) % 8;
      if (pad) {
        blobs.push(new Uint8Array(pad));
        offset += pad;
      }
    }
    states[name] = out;
  }
  const hash = createHash('sha256');
  for (const b of blobs) hash.update(b);
  const header = Buffer.from(
    JSON.stringify({ nextBatch: ck.nextBatch, meta: ck.meta, states, payloadBytes: offset, payloadSha256: hash.digest('hex') }),
    'utf8',
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.byteLength);
  const headPad = (8 - ((CKPT_MAGIC.length + 4 + header.byteLength) % 8)) % 8;
  return [CKPT_MAGIC, u8(len), u8(header), new Uint8Array(headPad), ...blobs];
}

export function decodeCheckpoint(buf: Uint8Array, file = 'checkpoint'): Checkpoint {
  const bad = (why: string) => new EngineError(`${file} is not a usable checkpoint: ${why}`, file);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.byteLength < 12 || b.toString('latin1', 0, 8) !== CKPT_MAGIC) throw bad('wrong magic');
  const hlen = b.readUInt32LE(8);
  if (12 + hlen > b.byteLength) throw bad('truncated header');
  let head: { nextBatch: number; meta: Record<string, unknown>; states: Record<string, Record<string, unknown>>; payloadBytes: number; payloadSha256: string };
  try {
    head = JSON.parse(b.toString('utf8', 12, 12 + hlen));
  } catch {
    throw bad('header is not JSON');
  }
  const start = 12 + hlen + ((8 - ((12 + hlen) % 8)) % 8);
  if (start + head.payloadBytes !== b.byteLength) throw bad(`payload is ${b.byteLength - start} bytes, expected ${head.payloadBytes}`);
  const payload = b.subarray(start);
  if (createHash('sha256').update(u8(payload)).digest('hex') !== head.payloadSha256) throw bad('payload checksum mismatch');
  const states: Record<string, AccumulatorState> = {};
  for (const [name, st] of Object.entries(head.states)) {
    const out: AccumulatorState = {};
    for (const [key, v] of Object.entries(st)) {
      const ref = v as Partial<ArrayRef> | null;
      if (ref && typeof ref === 'object' && !Array.isArray(ref) && typeof ref.$array === 'string') {
        const width = ref.$array === 'f64' ? 8 : 4;
        // Copy into a fresh, aligned buffer: the accumulator owns (and mutates) what it restores.
        const bytes = payload.subarray(ref.offset!, ref.offset! + ref.length! * width);
        const copy = new Uint8Array(bytes.byteLength);
        copy.set(bytes);
        const ab = copy.buffer;
        out[key] =
          ref.$array === 'f64'
            ? new Float64Array(ab)
            : ref.$array === 'f32'
              ? new Float32Array(ab)
              : ref.$array === 'i32'
                ? new Int32Array(ab)
                : new Uint32Array(ab);
      } else {
        out[key] = v as StateValue;
      }
    }
    states[name] = out;
  }
  return { nextBatch: head.nextBatch, meta: head.meta, states };
}

export const checkpointPath = (runDir: string): string => join(runDir, RUN_FILES.checkpointDir, 'state.ckpt');

export function writeCheckpoint(runDir: string, ck: Checkpoint): void {
  const dir = join(runDir, RUN_FILES.checkpointDir);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new EngineError(`cannot create ${dir}: ${ioMessage(e)}`, dir);
  }
  writeFileAtomic(checkpointPath(runDir), encodeCheckpoint(ck));
}

export function readCheckpoint(runDir: string): Checkpoint | undefined {
  const p = checkpointPath(runDir);
  if (!fs.existsSync(p)) return undefined;
  let buf: Buffer;
  try {
    buf = fs.readFileSync(p);
  } catch (e) {
    throw new EngineError(`cannot read ${p}: ${ioMessage(e)}`, p);
  }
  return decodeCheckpoint(u8(buf), p);
}

// ---------------------------------------------------------------------------------------------
// Tables

export type Column = Float64Array | Float32Array | Int32Array | Uint32Array | boolean[] | Uint8Array | string[];

/** Arrow IPC file bytes of named columns, all of one length, in the given order. */
export async function arrowBytes(columns: Record<string, Column>, metadata: Record<string, string> = {}): Promise<Uint8Array> {
  // Loaded on first use: the extension never pays for it at activation.
  const arrow = await import('apache-arrow');
  const lengths = new Set(Object.values(columns).map((c) => c.length));
  if (lengths.size > 1) throw new EngineError(`table columns differ in length (${[...lengths].join(', ')})`);
  const vectors: Record<string, import('apache-arrow').Vector> = {};
  for (const [name, col] of Object.entries(columns)) {
    if (col instanceof Uint8Array) vectors[name] = arrow.vectorFromArray(Array.from(col, (x) => x !== 0), new arrow.Bool());
    else if (Array.isArray(col) && (col.length === 0 || typeof col[0] === 'boolean')) {
      vectors[name] = arrow.vectorFromArray(col as boolean[], new arrow.Bool());
    } else if (Array.isArray(col)) vectors[name] = arrow.vectorFromArray(col as string[], new arrow.Utf8());
    else vectors[name] = arrow.makeVector(col as Float64Array | Float32Array | Int32Array | Uint32Array);
  }
  const table = new arrow.Table(vectors);
  for (const [k, v] of Object.entries(metadata)) table.schema.metadata.set(k, v);
  return arrow.tableToIPC(table, 'file');
}

export async function writeArrowAtomic(path: string, columns: Record<string, Column>, metadata: Record<string, string> = {}): Promise<void> {
  writeFileAtomic(path, await arrowBytes(columns, metadata));
}

/** Shortest round-trip decimal; NaN and ±Infinity as pandas writes missing values: empty. */
export function csvNumber(x: number): string {
  return Number.isFinite(x) ? String(x) : '';
}

/** CSV text of rows in the given column order (numbers only, so no quoting is needed). */
export function csvText(columns: readonly string[], rows: readonly Record<string, number>[]): string {
  const lines = [columns.join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvNumber(r[c] ?? NaN)).join(','));
  return lines.join('\n') + '\n';
}
