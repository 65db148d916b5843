// Reader for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// header, then the raw tensor data. Only the header is read on open; tensors are read on demand
// by offset, so opening a 500 MB checkpoint costs one small read.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { EngineError } from './errors';

/** The dtypes readF32 can return (upcast to fp32). */
export type DType = 'F32' | 'F16' | 'BF16';

/**
 * Every dtype the safetensors format defines. Files may hold non-float tensors (old transformers
 * versions saved GPT-2's causal mask `attn.bias` as BOOL), so open() accepts them and checks their
 * layout; only readF32 refuses them.
 */
export type StoredDType =
  | DType
  | 'F64'
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'U16'
  | 'I16'
  | 'U32'
  | 'I32'
  | 'U64'
  | 'I64'
  | 'F8_E4M3'
  | 'F8_E5M2';

export interface TensorInfo {
  name: string;
  dtype: StoredDType;
  shape: number[];
  /** Byte range [begin, end) relative to the start of the data section. */
  begin: number;
  end: number;
}

export const READABLE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

const DTYPE_SIZE: Record<StoredDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  BOOL: 1,
  U8: 1,
  I8: 1,
  U16: 2,
  I16: 2,
  U32: 4,
  I32: 4,
  U64: 8,
  I64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN = os.endianness() === 'LE';

export function isReadableDType(d: StoredDType): d is DType {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

export class SafetensorsFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    /** File offset where the data section starts (8 + header length). */
    private readonly dataStart: number,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {
    this.fd = fd;
  }

  /** Opens `path` and validates its header. Tensor data is not read. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw fsError(e, path, 'cannot open safetensors file');
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) {
        throw new EngineError(
          `${path} is ${size} bytes, too short to be a safetensors file (it must start with an 8-byte header length)`,
          path,
        );
      }
      const lenBuf = new Uint8Array(8);
      readFully(fd, lenBuf, 0, path);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new EngineError(
          `${path}: header length ${n} bytes is absurd (limit ${MAX_HEADER_BYTES}); this is not a safetensors file or it is corrupt`,
          path,
        );
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new EngineError(
          `${path}: header length ${headerLen} bytes runs past the end of the file (${size} bytes); the file is truncated or not a safetensors file`,
          path,
        );
      }
      const headerBuf = new Uint8Array(headerLen);
      readFully(fd, headerBuf, 8, path);
      const dataStart = 8 + headerLen;
      const { tensors, metadata } = parseHeader(headerBuf, path, size - dataStart, size);
      return new SafetensorsFile(path, fd, dataStart, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw this.missing(name);
    return t;
  }

  /** Reads one tensor into a fresh Float32Array, upcasting F16/BF16. */
  readF32(name: string): Float32Array {
    const t = this.info(name);
    const fd = this.fd;
    if (fd === undefined) {
      throw new EngineError(`${this.path} is closed; cannot read tensor "${name}"`, this.path, name);
    }
    const count = (t.end - t.begin) / DTYPE_SIZE[t.dtype];
    const pos = this.dataStart + t.begin;
    switch (t.dtype) {
      case 'F32': {
        const out = new Float32Array(count);
        readFully(fd, new Uint8Array(out.buffer), pos, this.path, name);
        if (!LITTLE_ENDIAN) swapBytes(new Uint8Array(out.buffer), 4);
        return out;
      }
      case 'F16': {
        const raw = new Uint16Array(count);
        readFully(fd, new Uint8Array(raw.buffer), pos, this.path, name);
        if (!LITTLE_ENDIAN) swapBytes(new Uint8Array(raw.buffer), 2);
        const lut = halfTable();
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = lut[raw[i]!]!;
        return out;
      }
      case 'BF16': {
        const raw = new Uint16Array(count);
        readFully(fd, new Uint8Array(raw.buffer), pos, this.path, name);
        if (!LITTLE_ENDIAN) swapBytes(new Uint8Array(raw.buffer), 2);
        // bf16 is the top half of an fp32, so shifting the bits back is exact.
        const out = new Float32Array(count);
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < count; i++) bits[i] = raw[i]! << 16;
        return out;
      }
      default:
        throw new EngineError(
          `unsupported dtype ${t.dtype} for tensor "${name}" in ${this.path}; supported: ${READABLE_DTYPES.join(', ')}`,
          this.path,
          name,
        );
    }
  }

  /**
   * Index of the first NaN or ±Infinity element of a float tensor, or -1, checked on the stored
   * bits (an all-ones exponent) in chunks of 16 MiB: no upcast and no tensor-sized allocation.
   */
  firstNonFinite(name: string): number {
    const t = this.info(name);
    const fd = this.fd;
    if (fd === undefined) {
      throw new EngineError(`${this.path} is closed; cannot read tensor "${name}"`, this.path, name);
    }
    if (!isReadableDType(t.dtype)) {
      throw new EngineError(
        `unsupported dtype ${t.dtype} for tensor "${name}" in ${this.path}; supported: ${READABLE_DTYPES.join(', ')}`,
        this.path,
        name,
      );
    }
    const size = DTYPE_SIZE[t.dtype];
    const CHUNK = 1 << 24;
    const buf = new Uint8Array(Math.min(CHUNK, t.end - t.begin));
    for (let off = t.begin; off < t.end; off += CHUNK) {
      const n = Math.min(CHUNK, t.end - off);
      const bytes = buf.subarray(0, n);
      readFully(fd, bytes, this.dataStart + off, this.path, name);
      if (!LITTLE_ENDIAN) swapBytes(bytes, size);
      const base = (off - t.begin) / size;
      if (size === 4) {
        // Little-endian fp32: the exponent is bits 23..30 of each word.
        const w = new Uint32Array(bytes.buffer, bytes.byteOffset, n / 4);
        let any = 0;
        for (let i = 0; i < w.length; i++) any |= (w[i]! & 0x7f800000) === 0x7f800000 ? 1 : 0;
        if (any) for (let i = 0; i < w.length; i++) if ((w[i]! & 0x7f800000) === 0x7f800000) return base + i;
      } else {
        const mask = t.dtype === 'F16' ? 0x7c00 : 0x7f80;
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n / 2);
        let any = 0;
        for (let i = 0; i < h.length; i++) any |= (h[i]! & mask) === mask ? 1 : 0;
        if (any) for (let i = 0; i < h.length; i++) if ((h[i]! & mask) === mask) return base + i;
      }
    }
    return -1;
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private missing(name: string): EngineError {
    const names = [...this.tensors.keys()];
    // Names that share the last two components ("mlp.c_fc.weight") are the likely intended
    // ones when only a prefix such as "transformer." differs.
    const tail = name.split('.').slice(-2).join('.');
    const near = names.filter((n) => n.endsWith(tail));
    const shown = [...new Set([...near, ...names])].slice(0, 5);
    const list = shown.map((n) => `"${n}"`).join(', ');
    const more = names.length > shown.length ? `, ... (${names.length} in all)` : '';
    return new EngineError(
      `no tensor "${name}" in ${this.path}; it has ${names.length === 0 ? 'no tensors' : list + more}`,
      this.path,
      name,
    );
  }
}

function parseHeader(
  buf: Uint8Array,
  path: string,
  dataSize: number,
  fileSize: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf));
  } catch (e) {
    throw new EngineError(
      `${path}: safetensors header is not valid JSON (${(e as Error).message}); the file is corrupt or not a safetensors file`,
      path,
    );
  }
  if (!isPlainObject(header)) {
    throw new EngineError(`${path}: safetensors header must be a JSON object`, path);
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) {
        throw new EngineError(`${path}: "__metadata__" must be an object of strings`, path);
      }
      for (const [k, v] of Object.entries(entry)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
      continue;
    }
    tensors.set(name, parseEntry(name, entry, path));
  }

  // Overlaps are checked on entries sorted by start; a tensor of zero bytes cannot overlap.
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw new EngineError(
        `${path}: tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${cur.name}" [${cur.begin}, ${cur.end}) overlap in the data section; the header is corrupt`,
        path,
        cur.name,
      );
    }
  }

  const past = [...tensors.values()].filter((t) => t.end > dataSize);
  if (past.length > 0) {
    // A header whose tensors tile the data section from 0 without gaps is intact; if it still runs
    // past EOF, the file lost its tail (an interrupted download). Otherwise the offsets are bogus.
    let contiguous = true;
    for (let i = 0, at = 0; i < sorted.length; i++) {
      if (sorted[i]!.begin !== at) contiguous = false;
      at = sorted[i]!.end;
    }
    const first = past.sort((a, b) => a.begin - b.begin)[0]!;
    if (contiguous) {
      throw new EngineError(
        `${path} is truncated: it is ${fileSize} bytes, but tensor "${first.name}" needs data bytes [${first.begin}, ${first.end}) and the data section has only ${dataSize}; re-download or re-save the checkpoint`,
        path,
        first.name,
      );
    }
    throw new EngineError(
      `${path}: tensor "${first.name}" has data_offsets [${first.begin}, ${first.end}] out of range; the data section is ${dataSize} bytes (file ${fileSize} bytes)`,
      path,
      first.name,
    );
  }

  // The tensors must tile the data section exactly: from byte 0, back to back, to its last byte.
  // A gap or a tail no tensor claims means the header length or the offsets are wrong — e.g. a
  // header length 4 short makes every tensor read 4 bytes early and still look plausible.
  let at = 0;
  for (const t of sorted) {
    if (t.begin !== at) {
      const before = sorted[sorted.indexOf(t) - 1];
      throw new EngineError(
        `${path}: data bytes [${at}, ${t.begin}) ${before ? `between tensors "${before.name}" and "${t.name}"` : `before the first tensor "${t.name}"`} ` +
          `belong to no tensor; safetensors tensors are stored back to back, so the header's data_offsets are corrupt. Re-download or re-save the checkpoint`,
        path,
        t.name,
      );
    }
    at = t.end;
  }
  if (at !== dataSize) {
    const last = sorted[sorted.length - 1];
    throw new EngineError(
      `${path}: the data section is ${dataSize} bytes, but its tensors end at byte ${at}${last ? ` (last: "${last.name}")` : ''}; ` +
        `the last ${dataSize - at} bytes belong to no tensor, so the header length (${fileSize - dataSize - 8} bytes) or the data_offsets are wrong. ` +
        `Re-download or re-save the checkpoint`,
      path,
      last?.name,
    );
  }
  return { tensors, metadata };
}

function parseEntry(name: string, entry: unknown, path: string): TensorInfo {
  const bad = (what: string) => new EngineError(`${path}: tensor "${name}" ${what}`, path, name);
  if (!isPlainObject(entry)) throw bad('has a header entry that is not an object');
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string') throw bad('has no dtype');
  if (!Object.hasOwn(DTYPE_SIZE, dtype)) {
    throw new EngineError(
      `unknown dtype ${dtype} for tensor "${name}" in ${path}; supported: ${READABLE_DTYPES.join(', ')}`,
      path,
      name,
    );
  }
  const dt = dtype as StoredDType;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`has an invalid shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw bad(`has invalid data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with 0 <= begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_SIZE[dt];
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw bad(
      `has shape [${shape.join(', ')}] of ${dt} (${expected} bytes) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
    );
  }
  return { name, dtype: dt, shape: shape as number[], begin, end };
}

function readFully(fd: number, into: Uint8Array, position: number, path: string, tensor?: string): void {
  let done = 0;
  // Large reads can return short, so loop; a 0-byte read means the file shrank under us.
  while (done < into.length) {
    let n: number;
    try {
      n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    } catch (e) {
      throw fsError(e, path, tensor ? `cannot read tensor "${tensor}" from` : 'cannot read');
    }
    if (n === 0) {
      throw new EngineError(
        `${path} is truncated: unexpected end of file at byte ${position + done}${tensor ? ` while reading tensor "${tensor}"` : ''}`,
        path,
        tensor,
      );
    }
    done += n;
  }
}

function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i < b.length; i += width) b.subarray(i, i + width).reverse();
}

let HALF: Float32Array | undefined;

/** All 65536 IEEE binary16 values as fp32, built once; indexing beats bit twiddling per element. */
function halfTable(): Float32Array {
  if (HALF) return HALF;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloat(h);
  HALF = t;
  return t;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fsError(e: unknown, path: string, what: string): EngineError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a folder' : err.message;
  return new EngineError(`${what} ${path}: ${why}`, path);
}
