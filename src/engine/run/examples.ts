/**
 * `examples.json` (the index) + `examples.bin` (the arrays): every model's TopExamplesResult
 * (analysis/examples.ts), written by the pipeline. Every array is fixed-stride per neuron, so a
 * reader can slice one neuron without parsing the rest (the file is hundreds of MB for
 * GPT2-small): the neuron pages read `readNeuronExamples`; `readExamples` reads everything back
 * (tests, tools). The writing host is little-endian (every platform onnxruntime-node ships for);
 * the index says so.
 */
import * as fs from 'node:fs';
import { EngineError } from '../errors';
import { writeFileAtomic, writeJsonAtomic } from '../store';
import { SLOT_FIELDS, TopExamplesResult, type ExampleSlots } from '../analysis/examples';
import { runFile } from './files';

export const EXAMPLES_FORMAT = 'universal-neurons-examples';

type DTypeName = 'f32' | 'f64' | 'i32' | 'u32';
type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array;

export interface ArrayRef {
  dtype: DTypeName;
  /** Element count. */
  length: number;
  /** Byte offset into examples.bin (a multiple of 8). */
  offset: number;
}

export interface ExamplesModelIndex {
  model: number;
  nNeurons: number;
  k: number;
  before: number;
  after: number;
  window: number;
  intervals: number;
  perInterval: number;
  bins: number;
  arrays: Record<string, ArrayRef>;
}

export interface ExamplesIndex {
  format: typeof EXAMPLES_FORMAT;
  version: 1;
  /** Every array is little-endian. */
  littleEndian: true;
  models: ExamplesModelIndex[];
}

const DTYPE: Record<DTypeName, { bytes: number; make: (b: ArrayBuffer, off: number, n: number) => TypedArray }> = {
  f32: { bytes: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  f64: { bytes: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  i32: { bytes: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  u32: { bytes: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
};

function dtypeOf(a: TypedArray): DTypeName {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Int32Array) return 'i32';
  return 'u32';
}

function resultArrays(r: TopExamplesResult): Record<string, TypedArray> {
  const out: Record<string, TypedArray> = { topCount: r.topCount, scale: r.scale, seen: r.seen, fill: r.fill };
  for (const f of SLOT_FIELDS) {
    out['top.' + f] = r.top[f];
    out['samples.' + f] = r.samples[f];
  }
  out['hist.lo'] = r.hist.lo;
  out['hist.hi'] = r.hist.hi;
  out['hist.counts'] = r.hist.counts;
  out['hist.min'] = r.hist.min;
  out['hist.max'] = r.hist.max;
  return out;
}

/** One index plus one binary for the run folder. */
export function serializeExamples(results: TopExamplesResult[]): { json: ExamplesIndex; binary: Uint8Array } {
  const models: ExamplesModelIndex[] = [];
  const parts: { a: TypedArray; offset: number }[] = [];
  let at = 0;
  for (const r of results) {
    const arrays: Record<string, ArrayRef> = {};
    for (const [name, a] of Object.entries(resultArrays(r))) {
      at = Math.ceil(at / 8) * 8;
      arrays[name] = { dtype: dtypeOf(a), length: a.length, offset: at };
      parts.push({ a, offset: at });
      at += a.byteLength;
    }
    models.push({
      model: r.model,
      nNeurons: r.nNeurons,
      k: r.k,
      before: r.before,
      after: r.after,
      window: r.window,
      intervals: r.intervals,
      perInterval: r.perInterval,
      bins: r.hist.bins,
      arrays,
    });
  }
  const binary = new Uint8Array(at);
  for (const { a, offset } of parts) binary.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
  return { json: { format: EXAMPLES_FORMAT, version: 1, littleEndian: true, models }, binary };
}

/** Writes examples.bin, then examples.json (the index last: a reader never sees an index without its arrays). */
export function writeExamples(dir: string, results: TopExamplesResult[]): void {
  const ex = serializeExamples(results);
  writeFileAtomic(runFile(dir, 'examplesData'), ex.binary);
  writeJsonAtomic(runFile(dir, 'examplesIndex'), ex.json);
}

/** Reads what serializeExamples wrote; arrays are views into `binary` when it is 8-byte aligned. */
export function readExamples(json: unknown, binary: Uint8Array): TopExamplesResult[] {
  const idx = json as ExamplesIndex;
  if (!idx || idx.format !== EXAMPLES_FORMAT || idx.version !== 1) {
    throw new EngineError(`not an examples index (format ${JSON.stringify((idx as { format?: unknown })?.format)}, version ${JSON.stringify((idx as { version?: unknown })?.version)})`);
  }
  // Typed-array views need aligned offsets; copy once if the caller's buffer is not aligned.
  const bin = binary.byteOffset % 8 === 0 ? binary : binary.slice();
  return idx.models.map((m) => {
    const get = <T extends TypedArray>(name: string, want: DTypeName, length: number): T => {
      const ref = m.arrays[name];
      if (!ref) throw new EngineError(`examples index: array ${name} is missing`);
      const d = DTYPE[ref.dtype];
      if (ref.dtype !== want || ref.length !== length || !d || ref.offset % 8 !== 0 || ref.offset + ref.length * d.bytes > bin.byteLength) {
        throw new EngineError(`examples index: array ${name} (${ref.dtype}[${ref.length}] at ${ref.offset}) does not fit this file or model`);
      }
      return d.make(bin.buffer as ArrayBuffer, bin.byteOffset + ref.offset, ref.length) as T;
    };
    const { nNeurons: N, k: K, window: W, intervals: F, perInterval: R, bins: B } = m;
    const slots = (p: string, n: number): ExampleSlots => ({
      value: get(p + 'value', 'f32', n),
      row: get(p + 'row', 'i32', n),
      pos: get(p + 'pos', 'i32', n),
      start: get(p + 'start', 'i32', n),
      len: get(p + 'len', 'i32', n),
      ids: get(p + 'ids', 'i32', n * W),
      acts: get(p + 'acts', 'f32', n * W),
    });
    return new TopExamplesResult(
      m.model,
      N,
      K,
      m.before,
      m.after,
      F,
      R,
      get('topCount', 'i32', N),
      slots('top.', N * K),
      get('scale', 'f64', N),
      get('seen', 'f64', N * F),
      get('fill', 'i32', N * F),
      slots('samples.', N * F * R),
      {
        bins: B,
        lo: get('hist.lo', 'f64', N),
        hi: get('hist.hi', 'f64', N),
        counts: get('hist.counts', 'u32', N * (B + 2)),
        min: get('hist.min', 'f64', N),
        max: get('hist.max', 'f64', N),
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// One neuron at a time (the neuron pages)

/** The reference model's entry of the index, as far as the per-neuron reader needs it. */
export interface ExamplesRef {
  model: number;
  nNeurons: number;
  k: number;
  window: number;
  bins: number;
  arrays: Record<string, ArrayRef>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The reference model's index entry, when the run has examples.json and examples.bin and the
 * index covers `nNeurons` neurons; else null and a note saying why.
 */
export function readExamplesIndex(dir: string, nNeurons: number): { model: ExamplesRef | null; note?: string } {
  const path = runFile(dir, 'examplesIndex');
  if (!fs.existsSync(path) || !fs.existsSync(runFile(dir, 'examplesData'))) return { model: null };
  let j: unknown;
  try {
    j = JSON.parse(fs.readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new EngineError(`${path} is unreadable or not valid JSON (${(e as Error).message})`, path);
  }
  if (!isObj(j) || j.format !== EXAMPLES_FORMAT || j.version !== 1 || j.littleEndian !== true || !Array.isArray(j.models)) {
    return { model: null, note: `${path} is not an examples index this version reads` };
  }
  const m = j.models.find((x) => isObj(x) && x.model === 0);
  if (!isObj(m) || !nat(m.nNeurons) || !nat(m.k) || !nat(m.window) || !nat(m.bins) || !isObj(m.arrays)) {
    return { model: null, note: `${path} has no examples for the reference model` };
  }
  if (m.nNeurons !== nNeurons) return { model: null, note: `${path} covers ${m.nNeurons} neurons, the run ${nNeurons}` };
  const arrays: Record<string, ArrayRef> = {};
  for (const [k, v] of Object.entries(m.arrays)) {
    if (isObj(v) && (v.dtype === 'f32' || v.dtype === 'f64' || v.dtype === 'i32' || v.dtype === 'u32') && nat(v.length) && nat(v.offset)) {
      arrays[k] = { dtype: v.dtype, length: v.length, offset: v.offset };
    }
  }
  return { model: { model: 0, nNeurons: m.nNeurons, k: m.k, window: m.window, bins: m.bins, arrays } };
}

/** One neuron's stored examples, as numbers (the view turns ids into text). */
export interface NeuronExamples {
  /** Valid top examples (≤ k). */
  count: number;
  k: number;
  window: number;
  /** [k] each: the max value, its corpus row, position, window start and length. */
  value: Float64Array;
  row: Float64Array;
  pos: Float64Array;
  start: Float64Array;
  len: Float64Array;
  /** [k × window] token ids (−1 past the window's end) and the neuron's activation on each. */
  ids: Float64Array;
  acts: Float64Array;
  /** Post-activation histogram: `bins` bins over [lo, hi], counts with under- and overflow first and last. */
  hist: { bins: number; lo: number; hi: number; counts: Float64Array; min: number; max: number } | null;
}

const WIDTH = { f32: 4, f64: 8, i32: 4, u32: 4 } as const;

function readSlice(fd: number, ex: ExamplesRef, name: string, from: number, count: number): Float64Array {
  const ref = ex.arrays[name];
  if (!ref) throw new EngineError(`examples index has no array ${name}`);
  if (from < 0 || from + count > ref.length) throw new EngineError(`examples array ${name} is shorter than the index says`);
  const w = WIDTH[ref.dtype];
  const buf = Buffer.alloc(count * w);
  const got = fs.readSync(fd, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), 0, buf.byteLength, ref.offset + from * w);
  if (got !== buf.byteLength) throw new EngineError(`examples.bin is truncated (array ${name})`);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * w;
    out[i] =
      ref.dtype === 'f32' ? buf.readFloatLE(o) : ref.dtype === 'f64' ? buf.readDoubleLE(o) : ref.dtype === 'i32' ? buf.readInt32LE(o) : buf.readUInt32LE(o);
  }
  return out;
}

/** Neuron column `j`'s examples and histogram, read by slicing examples.bin. */
export function readNeuronExamples(dir: string, ex: ExamplesRef, j: number): NeuronExamples {
  const { k: K, window: W, bins: B } = ex;
  const fd = fs.openSync(runFile(dir, 'examplesData'), 'r');
  try {
    const count = Math.min(K, readSlice(fd, ex, 'topCount', j, 1)[0]!);
    const s = j * K;
    const out: NeuronExamples = {
      count,
      k: K,
      window: W,
      value: readSlice(fd, ex, 'top.value', s, K),
      row: readSlice(fd, ex, 'top.row', s, K),
      pos: readSlice(fd, ex, 'top.pos', s, K),
      start: readSlice(fd, ex, 'top.start', s, K),
      len: readSlice(fd, ex, 'top.len', s, K),
      ids: readSlice(fd, ex, 'top.ids', s * W, K * W),
      acts: readSlice(fd, ex, 'top.acts', s * W, K * W),
      hist: null,
    };
    if (ex.arrays['hist.counts'] && B > 0) {
      out.hist = {
        bins: B,
        lo: readSlice(fd, ex, 'hist.lo', j, 1)[0]!,
        hi: readSlice(fd, ex, 'hist.hi', j, 1)[0]!,
        counts: readSlice(fd, ex, 'hist.counts', j * (B + 2), B + 2),
        min: readSlice(fd, ex, 'hist.min', j, 1)[0]!,
        max: readSlice(fd, ex, 'hist.max', j, 1)[0]!,
      };
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
