/**
 * The dense products of the correlation analysis, run as tiny ONNX graphs on onnxruntime (CPU):
 * MLAS's GEMMs are several times faster than anything in JS. One `Gemm` owns a small cache of
 * sessions, one per graph shape (token counts stay dynamic). onnxruntime-node is imported on first
 * use, never at module load, so that the extension does not load ORT on activation.
 *
 * fp32 products take their operands as they come ([tokens × columns], row-major) and let MLAS
 * transpose while packing (Gemm transA=1), so m's activations are never copied; running sums
 * (Xᵀ·Y, the per-layer Yᵀ·Y blocks) are updated in place. Also here: float64 A·Bᵀ for the
 * end-of-run algebra, and fast mode's sampled dense-dense products on WebAssembly SIMD
 * (kernels/assembly/sddmm.ts).
 */
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { EngineError } from '../errors';
import { KernelMemory } from '../kernels';
import { columnRange, kernelPool, partsFor } from '../kernels/pool';
import { OnnxGraph } from '../onnx';
import { sessionProviders } from '../provider';

type OrtModule = typeof import('onnxruntime-node');

let ortModule: OrtModule | undefined;

/**
 * onnxruntime-node, loaded on first use. `require`, not `import()`: the bundles are CommonJS, and
 * tsx cannot resolve a bare specifier from a dynamic import in a file it compiled to CommonJS.
 */
export function loadOrt(): OrtModule {
  if (!ortModule) {
    try {
      ortModule = require('onnxruntime-node') as OrtModule;
    } catch (e) {
      throw new EngineError(`onnxruntime-node could not be loaded: ${(e as Error).message}`);
    }
  }
  return ortModule;
}

export interface GemmOptions {
  /** ORT intra-op threads (default: one per core, at most 8, as the forward pass). */
  threads?: number;
}

const OPSET = 17;

function check(data: ArrayLike<number>, n: number, what: string): void {
  if (data.length !== n) throw new EngineError(`gemm: ${what} has ${data.length} values, expected ${n}`);
}

/**
 * fp32 and fp64 products on a cached set of ORT sessions. Not thread-safe in the JS sense: await
 * each call before the next (the analysis is sequential anyway; the CPU cores are ORT's).
 */
export class Gemm {
  private readonly sessions = new Map<string, Promise<Ort.InferenceSession>>();
  private released = false;

  constructor(readonly opts: GemmOptions = {}) {}

  private threads(): number {
    const t = this.opts.threads;
    return t && t > 0 ? Math.floor(t) : Math.max(1, Math.min(availableParallelism(), 8));
  }

  private session(key: string, build: () => Uint8Array): Promise<Ort.InferenceSession> {
    if (this.released) throw new EngineError('gemm: used after release()');
    let s = this.sessions.get(key);
    if (!s) {
      s = Promise.resolve().then(() =>
        loadOrt().InferenceSession.create(build(), {
          executionProviders: sessionProviders(),
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          intraOpNumThreads: this.threads(),
          interOpNumThreads: 1,
          // Outputs are copied out to JS; an arena would only keep the largest run's memory.
          enableCpuMemArena: false,
          enableMemPattern: false,
          // Runs are large and back to back with other sessions' (the forward pass): idle workers
          // should sleep rather than spin on a shared 2-core machine.
          extra: { session: { intra_op: { allow_spinning: '0' } } },
        }),
      );
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  private async run(key: string, build: () => Uint8Array, feeds: Record<string, Ort.Tensor>): Promise<Ort.InferenceSession.OnnxValueMapType> {
    const s = await this.session(key, build);
    return s.run(feeds);
  }

  /** Xᵀ·Y for X [t×a] and Y [t×b] (fp32, row-major): [a×b] fp32. Keep t bounded: one fp32 sum. */
  async xty(x: Float32Array, y: Float32Array, t: number, a: number, b: number): Promise<Float32Array> {
    check(x, t * a, 'X');
    check(y, t * b, 'Y');
    if (t === 0) return new Float32Array(a * b);
    const ort = loadOrt();
    const key = `xty:${a}:${b}`;
    const out = await this.run(
      key,
      () => {
        const g = new OnnxGraph('xty', OPSET);
        g.input('X', 'float', ['t', a]);
        g.input('Y', 'float', ['t', b]);
        g.op('Gemm', ['X', 'Y'], { transA: { i: 1 } }, 'C');
        g.output('C', 'float', [a, b]);
        return g.toBytes();
      },
      { X: new ort.Tensor('float32', x, [t, a]), Y: new ort.Tensor('float32', y, [t, b]) },
    );
    return out.C!.data as Float32Array;
  }

  /**
   * One streaming step of exact mode, in one ORT run. `x` is the reference block (shifted),
   * [t × a]. Updated in place (Gemm with C = the running partial, beta = 1; the output is bound to
   * the same buffer): `xy` [a × b] += xᵀ·Y and, when `gram` is given, each block of the
   * within-group Gram matrices of Y (see `gramLayout`; their diagonals are Σ y²). Returns the
   * step's Σ y (fp32, [b]).
   */
  async crossStep(args: {
    x: Float32Array;
    y: Float32Array;
    t: number;
    a: number;
    b: number;
    xy: Float32Array;
    gram?: { layout: GramLayout; parts: Float32Array[] };
  }): Promise<Float32Array> {
    const { x, y, t, a, b, xy, gram } = args;
    check(x, t * a, 'X');
    check(y, t * b, 'Y');
    check(xy, a * b, 'the Xᵀ·Y partial');
    const blocks = gram?.layout.blocks ?? [];
    if (gram) {
      if (gram.layout.groups * gram.layout.width !== b) throw new EngineError(`gemm: Gram groups of ${gram.layout.width} do not tile ${b} columns`);
      blocks.forEach((blk, i) => check(gram.parts[i]!, blk.rows * blk.cols, `Gram block ${i}`));
    }
    const ort = loadOrt();
    const key = `cross:${a}:${b}:${gram ? gram.layout.key : '-'}`;
    const feeds: Record<string, Ort.Tensor> = {
      X: new ort.Tensor('float32', x, [t, a]),
      Y: new ort.Tensor('float32', y, [t, b]),
      P: new ort.Tensor('float32', xy, [a, b]),
    };
    const fetches: Record<string, Ort.Tensor | null> = { XY: new ort.Tensor('float32', xy, [a, b]), SY: null };
    blocks.forEach((blk, i) => {
      const buf = gram!.parts[i]!;
      feeds[`Gp${i}`] = new ort.Tensor('float32', buf, [blk.rows, blk.cols]);
      fetches[`G${i}`] = new ort.Tensor('float32', buf, [blk.rows, blk.cols]);
    });
    const s = await this.session(key, () => crossGraph(a, b, blocks));
    const out = await s.run(feeds, fetches);
    return out.SY!.data as Float32Array;
  }

  /**
   * One batch's Gram blocks of X [t × n], and its column sums when `sums` is given, in one ORT
   * run, no running partial: each of `blocks` (of a `gramLayout` over X's columns, any subset,
   * e.g. one group's) is written into `parts[i]`, and Σ_t x into `sums` [n] (fp32, both).
   */
  async gramStep(args: { x: Float32Array; t: number; n: number; blocks: readonly GramBlock[]; key: string; parts: Float32Array[]; sums?: Float32Array }): Promise<void> {
    const { x, t, n, blocks, key, parts, sums } = args;
    check(x, t * n, 'X');
    if (sums) check(sums, n, 'the column sums');
    blocks.forEach((blk, i) => {
      check(parts[i]!, blk.rows * blk.cols, `Gram block ${i}`);
      if (blk.offset + blk.c0 + blk.cols > n) throw new EngineError(`gemm: Gram block ${i} reaches column ${blk.offset + blk.c0 + blk.cols} of ${n}`);
    });
    const ort = loadOrt();
    const fetches: Record<string, Ort.Tensor> = sums ? { SX: new ort.Tensor('float32', sums, [n]) } : {};
    blocks.forEach((blk, i) => (fetches[`G${i}`] = new ort.Tensor('float32', parts[i]!, [blk.rows, blk.cols])));
    const s = await this.session(`gram:${n}:${key}:${sums ? 'sums' : '-'}`, () => gramGraph(n, blocks, !!sums));
    await s.run({ X: new ort.Tensor('float32', x, [t, n]) }, fetches);
  }

  /**
   * One step of fast mode's candidate accumulation: m's rotated activations R_l·Y_lᵀ per layer,
   * stacked ([b × t], row-major), written into `rt`. Gemm with transB straight from the
   * token-major Y (MLAS transposes while packing), so no transposed copy of Y is made. `rot.R` are
   * the per-layer d×d matrices (fp32, constants of the graph); `rot.key` names them in the
   * session cache.
   */
  async rotateStep(args: { y: Float32Array; t: number; b: number; rot: { layers: number; d: number; R: () => Float32Array[]; key: string }; rt: Float32Array }): Promise<void> {
    const { y, t, b, rot, rt } = args;
    check(y, t * b, 'Y');
    check(rt, b * t, '(RV)ᵀ');
    if (rot.layers * rot.d !== b) throw new EngineError(`gemm: ${rot.layers} rotations of ${rot.d} do not cover ${b} columns`);
    const ort = loadOrt();
    const s = await this.session(`rotate:${b}:${rot.layers}x${rot.d}:${rot.key}`, () => rotateGraph(b, rot.layers, rot.d, rot.R()));
    const fetches: Record<string, Ort.Tensor> = {};
    for (let l = 0; l < rot.layers; l++) fetches[`RT${l}`] = new ort.Tensor('float32', rt.subarray(l * rot.d * t, (l + 1) * rot.d * t), [rot.d, t]);
    await s.run({ Y: new ort.Tensor('float32', y, [t, b]) }, fetches);
  }

  /**
   * A·Bᵀ in float64: A [m×k], B [n×k], row-major: [m×n], written into `out` when given (a reused
   * buffer: on the 2-core VM a fresh 32 MB output costs ~0.1 s of page faults on first touch).
   */
  async abt64(a: Float64Array, b: Float64Array, m: number, k: number, n: number, out?: Float64Array): Promise<Float64Array> {
    check(a, m * k, 'A');
    check(b, n * k, 'B');
    if (out) check(out, m * n, 'C');
    if (m === 0 || n === 0 || k === 0) return out ? out.fill(0) : new Float64Array(m * n);
    const ort = loadOrt();
    const feeds = {
      A: new ort.Tensor('float64', a, [m, k]),
      B: new ort.Tensor('float64', b, [n, k]),
    };
    const s = await this.session('abt64', abt64Graph);
    if (out) {
      await s.run(feeds, { C: new ort.Tensor('float64', out, [m, n]) });
      return out;
    }
    return (await s.run(feeds)).C!.data as Float64Array;
  }

  /**
   * A·Bᵀ in fp32 (MLAS SGEMM): A [m×k], B [n×k], row-major: [m×n], written into `out` when given
   * (no allocation per call). Accumulation is fp32: each element is within
   * γ_k·Σ_j |a_j||b_j| (γ_k = k·2⁻²⁴/(1 − k·2⁻²⁴)) of the exact sum, whatever order MLAS sums in.
   */
  async abt32(a: Float32Array, b: Float32Array, m: number, k: number, n: number, out?: Float32Array): Promise<Float32Array> {
    check(a, m * k, 'A');
    check(b, n * k, 'B');
    if (out) check(out, m * n, 'C');
    if (m === 0 || n === 0 || k === 0) return out ? out.fill(0) : new Float32Array(m * n);
    const ort = loadOrt();
    const s = await this.session('abt32', () => {
      const g = new OnnxGraph('abt32', OPSET);
      g.input('A', 'float', ['m', 'k']);
      g.input('B', 'float', ['n', 'k']);
      g.op('Gemm', ['A', 'B'], { transB: { i: 1 } }, 'C');
      g.output('C', 'float', ['m', 'n']);
      return g.toBytes();
    });
    const feeds = { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [n, k]) };
    if (out) {
      await s.run(feeds, { C: new ort.Tensor('float32', out, [m, n]) });
      return out;
    }
    return (await s.run(feeds)).C!.data as Float32Array;
  }

  /** Releases every session (their memory); the object cannot be used afterwards. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) {
      try {
        await (await s).release();
      } catch {
        // A session that failed to load has nothing to release.
      }
    }
  }
}

/** One block of a Gram matrix: rows r0.. and columns c0.. of group `group` (indices within the group). */
export interface GramBlock {
  group: number;
  /** The group's first column in Y. */
  offset: number;
  r0: number;
  rows: number;
  c0: number;
  cols: number;
}

/**
 * The upper block triangle of each group's Gram matrix Y_gᵀ·Y_g (a SYRK done with GEMMs): the
 * group's `width` columns are cut into `split` row blocks of w = width/split, and block i is
 * Y_{g,i}ᵀ · Y_g[:, i·w : width], w × (width − i·w). That is (split+1)/(2·split) of the full
 * product's flops; split = 1 is the full product.
 */
export interface GramLayout {
  groups: number;
  width: number;
  split: number;
  blocks: GramBlock[];
  key: string;
}

export function gramLayout(groups: number, width: number, split: number): GramLayout {
  if (!Number.isInteger(split) || split < 1 || width % split !== 0) {
    throw new EngineError(`gemm: ${split} row blocks do not divide a group width of ${width}`);
  }
  const w = width / split;
  const blocks: GramBlock[] = [];
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < split; i++) blocks.push({ group: g, offset: g * width, r0: i * w, rows: w, c0: i * w, cols: width - i * w });
  }
  return { groups, width, split, blocks, key: `${groups}x${width}/${split}` };
}

function crossGraph(a: number, b: number, blocks: readonly GramBlock[]): Uint8Array {
  const g = new OnnxGraph('cross', OPSET);
  g.input('X', 'float', ['t', a]);
  g.input('Y', 'float', ['t', b]);
  g.input('P', 'float', [a, b]);
  g.op('Gemm', ['X', 'Y', 'P'], { transA: { i: 1 }, beta: { f: 1 } }, 'XY');
  g.output('XY', 'float', [a, b]);
  // Σy here, not as a ones column of X: an M of 2049 instead of 2048 costs MLAS ~10%.
  g.op('ReduceSum', ['Y', g.constI64([0])], { keepdims: { i: 0 } }, 'SY');
  g.output('SY', 'float', [b]);
  const axis1 = blocks.length ? g.constI64([1]) : '';
  blocks.forEach((blk, i) => {
    const base = blk.offset;
    const right = g.op('Slice', ['Y', g.constI64([base + blk.c0]), g.constI64([base + blk.c0 + blk.cols]), axis1]);
    const left =
      blk.rows === blk.cols ? right : g.op('Slice', ['Y', g.constI64([base + blk.r0]), g.constI64([base + blk.r0 + blk.rows]), axis1]);
    g.input(`Gp${i}`, 'float', [blk.rows, blk.cols]);
    g.op('Gemm', [left, right, `Gp${i}`], { transA: { i: 1 }, beta: { f: 1 } }, `G${i}`);
    g.output(`G${i}`, 'float', [blk.rows, blk.cols]);
  });
  return g.toBytes();
}

function gramGraph(n: number, blocks: readonly GramBlock[], sums: boolean): Uint8Array {
  const g = new OnnxGraph('gram', OPSET);
  g.input('X', 'float', ['t', n]);
  if (sums) {
    g.op('ReduceSum', ['X', g.constI64([0])], { keepdims: { i: 0 } }, 'SX');
    g.output('SX', 'float', [n]);
  }
  const axis1 = g.constI64([1]);
  blocks.forEach((blk, i) => {
    const base = blk.offset;
    const right = g.op('Slice', ['X', g.constI64([base + blk.c0]), g.constI64([base + blk.c0 + blk.cols]), axis1]);
    const left = blk.rows === blk.cols ? right : g.op('Slice', ['X', g.constI64([base + blk.r0]), g.constI64([base + blk.r0 + blk.rows]), axis1]);
    g.op('Gemm', [left, right], { transA: { i: 1 } }, `G${i}`);
    g.output(`G${i}`, 'float', [blk.rows, blk.cols]);
  });
  return g.toBytes();
}

function rotateGraph(b: number, layers: number, d: number, R: readonly Float32Array[]): Uint8Array {
  const g = new OnnxGraph('rotate', OPSET);
  g.input('Y', 'float', ['t', b]);
  const axis1 = g.constI64([1]);
  for (let l = 0; l < layers; l++) {
    const yl = g.op('Slice', ['Y', g.constI64([l * d]), g.constI64([(l + 1) * d]), axis1]);
    const r = g.initializer(`R${l}`, 'float', [d, d], R[l]!);
    g.op('Gemm', [r, yl], { transB: { i: 1 } }, `RT${l}`);
    g.output(`RT${l}`, 'float', [d, 't']);
  }
  return g.toBytes();
}

/** `OnnxGraph` speaks float and int64 only; this one-node double graph is written out by hand. */
function abt64Graph(): Uint8Array {
  const D = onnx.TensorProto.DataType.DOUBLE;
  const vi = (name: string, dims: string[]): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: D, shape: { dim: dims.map((d) => ({ dimParam: d })) } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'universal-neurons',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: 'abt64',
      node: [
        {
          opType: 'Gemm',
          domain: '',
          name: 'Gemm_0',
          input: ['A', 'B'],
          output: ['C'],
          attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
        },
      ],
      input: [vi('A', ['m', 'k']), vi('B', ['n', 'k'])],
      output: [vi('C', ['m', 'n'])],
    },
  }).finish();
}

// ---- sampled dense-dense products (fast mode) ------------------------------------------------

/**
 * A fixed-size arena for fast mode: the transposed activations, the candidate lists and the
 * candidate totals live here, on a shared kernel memory, so that the SDDMM kernel runs over row
 * ranges on every core (kernels/pool.ts). onnxruntime-node refuses to write into a
 * SharedArrayBuffer, so what ORT computes (the rotated activations) is copied in; x and y are
 * copied in token-major and transposed by the kernel (`transpose`). Allocate everything first (`alloc`), then `seal()`; views stay valid for the
 * arena's life. Without WebAssembly SIMD the same products run in plain JS (float64 sums).
 */
export class SddmmArena {
  private size = 0;
  private mem?: KernelMemory;
  /** Where the arena starts in `mem` (offsets handed out by alloc() are relative to it). */
  private base = 0;
  private buf?: ArrayBufferLike;
  private fn?: boolean;

  /** Reserves `bytes` (16-aligned); returns its offset. */
  alloc(bytes: number): number {
    if (this.buf) throw new EngineError('SddmmArena: alloc() after seal()');
    const off = this.size;
    this.size += Math.ceil(bytes / 16) * 16;
    return off;
  }

  /** Creates the memory. `forceJs` skips WebAssembly (tests compare the two). */
  seal(forceJs = false): void {
    if (!forceJs) {
      if (this.size > 2 ** 31) throw new EngineError(`SddmmArena: ${this.size} bytes exceed the 2 GiB this kernel uses; use a smaller block or step`);
      this.mem = new KernelMemory(this.size + 64);
      this.base = this.mem.alloc(this.size);
      this.fn = true;
      this.buf = this.mem.buffer;
    } else {
      this.buf = new ArrayBuffer(this.size);
    }
  }

  get simd(): boolean {
    return !!this.fn;
  }

  f32(off: number, n: number): Float32Array {
    return new Float32Array(this.buf!, this.base + off, n);
  }

  f64(off: number, n: number): Float64Array {
    return new Float64Array(this.buf!, this.base + off, n);
  }

  i32(off: number, n: number): Int32Array {
    return new Int32Array(this.buf!, this.base + off, n);
  }

  /**
   * dst[j·n + k] = src[k·cols + j]: n token-major rows of `cols` values (at `src`) to [cols × n]
   * (at `dst`), over column ranges on the pool's threads. Exact (moves values only).
   */
  transpose(src: number, n: number, cols: number, dst: number): void {
    if (this.fn) {
      const b = this.base;
      const parts = partsFor(cols, n);
      kernelPool().run(this.mem!, 'sddmm', 'transpose', parts, (p) => {
        const [j0, j1] = columnRange(cols, parts, p);
        return [b + src, n, cols, j0, j1, b + dst];
      });
      return;
    }
    const S = this.f32(src, n * cols);
    const D = this.f32(dst, n * cols);
    for (let k = 0; k < n; k++) for (let j = 0; j < cols; j++) D[j * n + k] = S[k * cols + j]!;
  }

  /** out[c] += Σ_k x[i·t+k]·y[cols[c]·t+k] for rows i < nrows and their candidates c (CSR). */
  sddmm(x: number, y: number, t: number, rowptr: number, cols: number, nrows: number, out: number): void {
    if (this.fn) {
      // Row ranges on the pool's threads, cut at equal numbers of candidates (a reference neuron
      // constant on the screen lists every neuron); each row's candidates and outputs are its own.
      const b = this.base;
      const rp = this.i32(rowptr, nrows + 1);
      const nnz = rp[nrows]! - rp[0]!;
      const parts = Math.max(1, Math.min(partsFor(t, nrows), nrows));
      const cuts = [0];
      for (let p = 1, i = 0; p < parts; p++) {
        const goal = rp[0]! + (nnz * p) / parts;
        while (i < nrows && rp[i]! < goal) i++;
        cuts.push(i);
      }
      cuts.push(nrows);
      kernelPool().run(this.mem!, 'sddmm', 'sddmm', parts, (p) => [b + x, b + y, t, b + rowptr, b + cols, cuts[p]!, cuts[p + 1]!, b + out]);
      return;
    }
    const X = this.f32(x, nrows * t);
    const rp = this.i32(rowptr, nrows + 1);
    const cl = this.i32(cols, rp[nrows]!);
    const o = this.f64(out, rp[nrows]!);
    const F = new Float32Array(this.buf!);
    const y0 = y / 4;
    for (let i = 0; i < nrows; i++) {
      const xo = i * t;
      for (let c = rp[i]!; c < rp[i + 1]!; c++) {
        const yo = y0 + cl[c]! * t;
        let s = 0;
        for (let k = 0; k < t; k++) s += X[xo + k]! * F[yo + k]!;
        o[c]! += s;
      }
    }
  }
}
