// Writes safetensors files for tests, including deliberately malformed ones (rawSafetensors,
// rawHeader). Plain Uint8Array throughout: this @types/node's Buffer does not type-check as one.
import * as fs from 'node:fs';

export type WriterDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'BOOL';

export interface TensorSpec {
  dtype?: WriterDType; // default F32
  shape: number[];
  /** Values, converted to dtype (F16 rounds to nearest even; BF16 rounds to nearest even). */
  data?: ArrayLike<number>;
  /** Raw little-endian bytes; overrides data (for bit-exact F16/BF16 patterns). */
  bytes?: Uint8Array;
}

/** Serialises tensors in the order given, laid out back to back as the Rust writer does. */
export function buildSafetensors(tensors: Record<string, TensorSpec>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const dtype = t.dtype ?? 'F32';
    const bytes = t.bytes ? t.bytes.slice() : encode(dtype, t.data ?? new Array(t.shape.reduce((a, b) => a * b, 1)).fill(0));
    header[name] = { dtype, shape: t.shape, data_offsets: [at, at + bytes.length] };
    chunks.push(bytes);
    at += bytes.length;
  }
  return rawSafetensors(header, concat(chunks));
}

/** Any header object (valid or not) followed by `data`; the header is space-padded to 8 bytes. */
export function rawSafetensors(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  return rawHeader(JSON.stringify(header), data, headerLength);
}

/** Header text as given (need not be JSON), space-padded to 8 bytes, then `data`. */
export function rawHeader(text: string, data: Uint8Array, headerLength?: bigint): Uint8Array {
  let h: Uint8Array = new TextEncoder().encode(text);
  const pad = (8 - (h.length % 8)) % 8;
  h = concat([h, new TextEncoder().encode(' '.repeat(pad))]);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, headerLength ?? BigInt(h.length), true);
  return concat([len, h, data]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Record<string, TensorSpec>, metadata?: Record<string, string>): void {
  fs.writeFileSync(path, buildSafetensors(tensors, metadata));
}

function encode(dtype: WriterDType, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'F16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToHalf(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'BF16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToBf16(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'I64':
      return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
    case 'I32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(values);
  }
}

export function floatToBf16(v: number): number {
  const bits = new Uint32Array(Float32Array.of(v).buffer)[0]!;
  if (Number.isNaN(v)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE binary16, round to nearest even, with subnormals, inf and nan. */
export function floatToHalf(v: number): number {
  const f = Float32Array.of(v)[0]!;
  const bits = new Uint32Array(Float32Array.of(f).buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}
