/**
 * The exact finish's per-element passes over a block's B × N_m sums as WebAssembly kernels on the
 * worker pool (kernels/assembly/finish.ts): the partner maximum (finishExact), the centred
 * covariances of a layer's rows (rotatedMax) and the screen's pass (screenRefine). Each does the
 * JS loop's float64 operations in the same order, so the results are bit-identical.
 *
 * Why: at GPT-2-small size a block is 8,018 × 36,864 = 3·10⁸ elements, each pass ~2.5–3 s of
 * the main thread while the other core idled, and a 1,024-token run has 21 blocks (BENCHMARKS.md).
 * The sums live in JS arrays (onnxruntime writes them, and it refuses shared memory), so each
 * call copies its rows into the kernels' shared memory in chunks of at most CHUNK_BYTES.
 */
import { throwIfCancelled, type CancellationSignal } from '../../errors';
import { KernelMemory } from '../../kernels';
import { kernelPool } from '../../kernels/pool';

/** Bytes of sums copied into kernel memory per call. */
const CHUNK_BYTES = 32 * 1024 * 1024;

/**
 * The last kernel memory made for each use, kept for the next call of the same shape: a memory
 * the pool's workers have seen lives until their own garbage collection, which a worker that
 * allocates almost nothing rarely runs; a fresh memory per block grew a GPT-2-small-size run by
 * ~50 MB per pass (measured: 8.44 GB in the cross passes against 7.26).
 */
const cache = new Map<string, { key: string; value: unknown }>();

function reused<T>(key: string, make: () => T): T {
  const use = key.slice(0, key.indexOf(':'));
  const hit = cache.get(use);
  if (hit && hit.key === key) return hit.value as T;
  const value = make();
  cache.set(use, { key, value });
  return value;
}

/** A kernel memory holding one array of each named size (bytes), and their offsets. */
function layout<K extends string>(sizes: Record<K, number>): { mem: KernelMemory; at: Record<K, number> } {
  const names = Object.keys(sizes) as K[];
  // alloc rounds each up to 64 bytes.
  const mem = new KernelMemory(names.reduce((t, k) => t + Math.ceil(sizes[k] / 64) * 64, 1024));
  const at = {} as Record<K, number>;
  for (const k of names) at[k] = mem.alloc(sizes[k]);
  return { mem, at };
}

/** [r0, r1) of part p of `rows` rows in `parts` parts. */
function rowRange(rows: number, parts: number, p: number): [number, number] {
  return [Math.floor((p * rows) / parts), Math.floor(((p + 1) * rows) / parts)];
}

function partsOf(rows: number): number {
  return Math.max(1, Math.min(kernelPool().threads, rows));
}

/**
 * finishExact's partner maximum: for each row i of the [B × Nm] sums with ix[i] ≠ 0,
 * best[i]/arg[i] = the largest clamp((sxy[i,j] − sx[i]·my[j])·ix[i]·iy[j]) and its first j.
 */
export function partnerMax(
  sxy: Float32Array | Float64Array,
  B: number,
  Nm: number,
  sx: Float64Array,
  ix: Float64Array,
  my: Float64Array,
  iy: Float64Array,
  best: Float64Array,
  arg: Int32Array,
  signal?: CancellationSignal,
): void {
  const wide = sxy instanceof Float64Array ? 1 : 0;
  const bytes = wide ? 8 : 4;
  const chunk = Math.max(1, Math.min(B, Math.floor(CHUNK_BYTES / (Nm * bytes))));
  const { mem, at } = reused(`partnerMax:${chunk}:${Nm}:${bytes}`, () => {
    return layout({ s: chunk * Nm * bytes, my: 8 * Nm, iy: 8 * Nm, sx: 8 * chunk, ix: 8 * chunk, best: 8 * chunk, arg: 4 * chunk });
  });
  mem.f64(at.my, Nm).set(my);
  mem.f64(at.iy, Nm).set(iy);
  const pool = kernelPool();
  for (let i0 = 0; i0 < B; i0 += chunk) {
    throwIfCancelled(signal);
    const rows = Math.min(chunk, B - i0);
    (wide ? mem.f64(at.s, rows * Nm) : mem.f32(at.s, rows * Nm)).set(sxy.subarray(i0 * Nm, (i0 + rows) * Nm));
    mem.f64(at.sx, rows).set(sx.subarray(i0, i0 + rows));
    mem.f64(at.ix, rows).set(ix.subarray(i0, i0 + rows));
    const b = mem.f64(at.best, rows);
    const a = mem.i32(at.arg, rows);
    b.set(best.subarray(i0, i0 + rows));
    a.set(arg.subarray(i0, i0 + rows));
    const parts = partsOf(rows);
    pool.run(mem, 'finish', 'partnerMax', parts, (p) => [at.s, wide, Nm, ...rowRange(rows, parts, p), at.sx, at.ix, at.my, at.iy, at.best, at.arg]);
    best.set(b, i0);
    arg.set(a, i0);
  }
}

/** Bytes of a ScreenKernels' memory: sub-chunks of rows are copied in and out. */
const SCREEN_BYTES = 16 * 1024 * 1024;

/**
 * rotatedMax's and screenRefine's per-element passes for one layer's rows, `sub` rows per kernel
 * call, with the kernel memory reused from call to call (one per block's finish). Results are
 * copied out into the caller's arrays, so the memory stays a few MB whatever the block.
 */
export class ScreenKernels {
  readonly mem: KernelMemory;
  /** Rows per kernel call. */
  readonly sub: number;
  private readonly at: Record<'s' | 'cov' | 'cov32' | 'P' | 'cand' | 'nc' | 'lbMax' | 'seed' | 'sx' | 'syl' | 'cy' | 'sumSq' | 'ix' | 'e' | 'irv' | 'best', number>;

  constructor(
    readonly d: number,
    readonly wide: boolean,
    /** The memory's size, which sets the rows per call (tests make it small). */
    bytes = SCREEN_BYTES,
  ) {
    const sb = wide ? 8 : 4;
    const sub = Math.max(1, Math.floor(bytes / (d * (sb + 8 + 4 + 4 + 4))));
    this.sub = sub;
    const n = sub * d;
    ({ mem: this.mem, at: this.at } = layout({
      s: n * sb, cov: 8 * n, cov32: 4 * n, P: 4 * n, cand: 4 * n,
      nc: 4 * sub, lbMax: 8 * sub, seed: 4 * sub, sx: 8 * sub, syl: 8 * d, cy: d, sumSq: 8 * sub, ix: 8 * sub, e: 8 * sub, irv: 8 * d, best: 8 * sub,
    }));
  }

  /** The instance for this shape, reused from block to block (see `reused`). */
  static for(d: number, wide: boolean): ScreenKernels {
    return reused(`screen:${d}:${wide}`, () => new ScreenKernels(d, wide));
  }

  /** This layer's Σy and constant-neuron flags (rotatedMax's syl, cy). */
  setLayer(syl: Float64Array, cy: Uint8Array): void {
    this.mem.f64(this.at.syl, this.d).set(syl);
    this.mem.u8(this.at.cy, this.d).set(cy);
  }

  /**
   * covRows for `rows` rows, row r's sums at sxy[(i0 + r)·Nm + off …+ d): the float64
   * covariances into `cov`, their fp32 copy into `cov32`, Σ v² per row into `sumSq`.
   */
  cov(sxy: Float32Array | Float64Array, Nm: number, off: number, i0: number, rows: number, sx: Float64Array, n: number, out: { cov: Float64Array; cov32: Float32Array; sumSq: Float64Array }): void {
    const { mem, at, d, sub } = this;
    for (let q0 = 0; q0 < rows; q0 += sub) {
      const qn = Math.min(sub, rows - q0);
      const s = this.wide ? mem.f64(at.s, qn * d) : mem.f32(at.s, qn * d);
      for (let r = 0; r < qn; r++) {
        const src = (i0 + q0 + r) * Nm + off;
        s.set(sxy.subarray(src, src + d), r * d);
      }
      mem.f64(at.sx, qn).set(sx.subarray(i0 + q0, i0 + q0 + qn));
      const parts = partsOf(qn);
      kernelPool().run(mem, 'finish', 'covRows', parts, (p) => [at.s, this.wide ? 1 : 0, d, ...rowRange(qn, parts, p), at.sx, at.syl, at.cy, n, at.cov, at.cov32, at.sumSq]);
      out.cov.set(mem.f64(at.cov, qn * d), q0 * d);
      out.cov32.set(mem.f32(at.cov32, qn * d), q0 * d);
      out.sumSq.set(mem.f64(at.sumSq, qn), q0);
    }
  }

  /**
   * screenScan over rows [q0, q0 + qn) of the screen P ([rows × d]): per row (index r − q0) its
   * candidates, their count, the largest lower bound and its k. Views, valid until the next call.
   */
  scan(P: Float32Array, q0: number, qn: number, ix: Float64Array, e: Float64Array, irv: Float64Array, best: Float64Array): { cand: Int32Array; nc: Int32Array; lbMax: Float64Array; seed: Int32Array } {
    const { mem, at, d } = this;
    mem.f32(at.P, qn * d).set(P.subarray(q0 * d, (q0 + qn) * d));
    mem.f64(at.ix, qn).set(ix.subarray(q0, q0 + qn));
    mem.f64(at.e, qn).set(e.subarray(q0, q0 + qn));
    mem.f64(at.irv, d).set(irv);
    mem.f64(at.best, qn).set(best.subarray(q0, q0 + qn));
    const parts = partsOf(qn);
    kernelPool().run(mem, 'finish', 'screenScan', parts, (p) => [at.P, d, ...rowRange(qn, parts, p), at.ix, at.e, at.irv, at.best, at.cand, at.nc, at.lbMax, at.seed]);
    return { cand: mem.i32(at.cand, qn * d), nc: mem.i32(at.nc, qn), lbMax: mem.f64(at.lbMax, qn), seed: mem.i32(at.seed, qn) };
  }
}

/** One screen's sums for pickPartners: Σ x'y per row ([B × Nm]), Σx and 1/σ_x per row, Σy and 1/σ_y per neuron, n. */
export interface ScreenSums {
  xy: Float32Array | Float64Array;
  sx: Float64Array;
  ix: Float64Array;
  sy: Float64Array;
  iy: Float64Array;
  n: number;
}

/** Bytes of sub-screen (or pooled) rows copied into kernel memory per call. */
const PICK_BYTES = 24 * 1024 * 1024;

/**
 * Fast mode's partner candidates of every reference row (cross/fast.ts pickCandidates), on the
 * pool (kernels/assembly/pick.ts): with sub-screens, `pooled.xy` is unused and the pooled sums
 * are theirs added in float64; a sub-screen whose 1/σ_x is 0 for a row (or that is not `live`
 * at all) does not count for it. Returns each row's candidates, best first (every neuron of m
 * for a row with ix = 0), and z·√2·σ per row. Bit-identical to the JS loop it replaced.
 */
export function pickPartners(
  B: number,
  Nm: number,
  pooled: ScreenSums,
  subs: readonly (ScreenSums & { live: boolean })[],
  o: { margin: number; z: number; low: number; cap: number },
  signal?: CancellationSignal,
): { cand: Int32Array[]; noise: Float64Array } {
  const S = subs.length;
  const outCap = Math.max(1, Math.min(o.cap, Nm));
  const rowBytes = S ? 4 * S * Nm : 8 * Nm;
  const qn = Math.max(1, Math.min(B, Math.floor(PICK_BYTES / rowBytes)));
  const threads = kernelPool().threads;
  const workBytes = (S + 5) * 8 * Nm + 4 * Nm + 8 * S + 8 * 16 + 4 * 16;
  // One work area per part, at 64-byte multiples.
  const workStride = Math.ceil(workBytes / 64) * 64;
  const { mem, at } = reused(`pick:${S}:${Nm}:${qn}:${outCap}:${threads}`, () =>
    layout({
      rows: qn * rowBytes, subSx: 8 * S * qn, subIx: 8 * S * qn, subSy: 8 * S * Nm, subIy: 8 * S * Nm, subN: 8 * S,
      sx: 8 * qn, ix: 8 * qn, sy: 8 * Nm, iy: 8 * Nm, work: threads * workStride, out: 4 * qn * outCap, count: 4 * qn, noise: 8 * qn,
    }),
  );
  mem.f64(at.sy, Nm).set(pooled.sy);
  mem.f64(at.iy, Nm).set(pooled.iy);
  subs.forEach((u, s) => {
    mem.f64(at.subSy + 8 * s * Nm, Nm).set(u.sy);
    mem.f64(at.subIy + 8 * s * Nm, Nm).set(u.live ? u.iy : new Float64Array(Nm));
  });
  mem.f64(at.subN, S).set(subs.map((u) => u.n));
  const cand: Int32Array[] = [];
  const noise = new Float64Array(B);
  let all: Int32Array | undefined;
  const pool = kernelPool();
  for (let i0 = 0; i0 < B; i0 += qn) {
    throwIfCancelled(signal);
    const rows = Math.min(qn, B - i0);
    if (S) {
      subs.forEach((u, s) => {
        mem.f32(at.rows + 4 * s * qn * Nm, rows * Nm).set(u.xy.subarray(i0 * Nm, (i0 + rows) * Nm));
        mem.f64(at.subSx + 8 * s * qn, rows).set(u.sx.subarray(i0, i0 + rows));
        const ixs = mem.f64(at.subIx + 8 * s * qn, rows);
        if (u.live) ixs.set(u.ix.subarray(i0, i0 + rows));
        else ixs.fill(0);
      });
    } else {
      mem.f64(at.rows, rows * Nm).set(pooled.xy.subarray(i0 * Nm, (i0 + rows) * Nm));
    }
    mem.f64(at.sx, rows).set(pooled.sx.subarray(i0, i0 + rows));
    mem.f64(at.ix, rows).set(pooled.ix.subarray(i0, i0 + rows));
    const parts = partsOf(rows);
    pool.run(mem, 'pick', 'pickPartners', parts, (p) => [
      S, Nm, qn, ...rowRange(rows, parts, p),
      at.rows, at.subSx, at.subIx, at.subSy, at.subIy, at.subN,
      at.rows, at.sx, at.ix, at.sy, at.iy, pooled.n,
      o.margin, o.z, o.low, o.cap, outCap,
      at.work + p * workStride, at.out, at.count, at.noise,
    ]);
    const count = mem.i32(at.count, rows);
    const out = mem.i32(at.out, rows * outCap);
    noise.set(mem.f64(at.noise, rows), i0);
    for (let r = 0; r < rows; r++) {
      const k = count[r]!;
      if (k < 0) cand.push((all ??= Int32Array.from({ length: Nm }, (_, j) => j)));
      else cand.push(out.slice(r * outCap, r * outCap + k));
    }
  }
  return { cand, noise };
}

/**
 * Fast mode's rotated-neuron candidates of one layer from the fp32 products of a chunk of rows
 * with R_l (kernels/assembly/pick.ts rotatedKeep), `sub` rows per kernel call: each row's maximum
 * so far is raised to the layer's largest ρ, and the ρ within the row's widening of it are handed
 * to `take` (the same operations as the JS loop it replaced: candidates bit-identical).
 */
export class RotatedKeep {
  readonly mem: KernelMemory;
  readonly sub: number;
  private readonly at: Record<'P' | 'ix' | 'irv' | 'best' | 'widen' | 'k' | 'v' | 'nc', number>;

  constructor(
    readonly d: number,
    bytes = SCREEN_BYTES,
  ) {
    const sub = Math.max(1, Math.floor(bytes / (d * (4 + 4 + 8))));
    this.sub = sub;
    ({ mem: this.mem, at: this.at } = layout({ P: 4 * sub * d, ix: 8 * sub, irv: 8 * d, best: 8 * sub, widen: 8 * sub, k: 4 * sub * d, v: 8 * sub * d, nc: 4 * sub }));
  }

  static for(d: number): RotatedKeep {
    return reused(`rotatedKeep:${d}`, () => new RotatedKeep(d));
  }

  /**
   * Rows [0, rows) of P ([rows × d]); ix, best (updated) and widen are the chunk's rows. `take(r,
   * k, v, count)`: row r's kept neurons and their ρ, views valid during the call.
   */
  keep(P: Float32Array, rows: number, ix: Float64Array, irv: Float64Array, best: Float64Array, widen: Float64Array, take: (r: number, k: Int32Array, v: Float64Array, count: number) => void): void {
    const { mem, at, d, sub } = this;
    mem.f64(at.irv, d).set(irv);
    for (let q0 = 0; q0 < rows; q0 += sub) {
      const qn = Math.min(sub, rows - q0);
      mem.f32(at.P, qn * d).set(P.subarray(q0 * d, (q0 + qn) * d));
      mem.f64(at.ix, qn).set(ix.subarray(q0, q0 + qn));
      mem.f64(at.best, qn).set(best.subarray(q0, q0 + qn));
      mem.f64(at.widen, qn).set(widen.subarray(q0, q0 + qn));
      const parts = partsOf(qn);
      kernelPool().run(mem, 'pick', 'rotatedKeep', parts, (p) => [at.P, d, ...rowRange(qn, parts, p), at.ix, at.irv, at.best, at.widen, at.k, at.v, at.nc]);
      best.set(mem.f64(at.best, qn), q0);
      const nc = mem.i32(at.nc, qn);
      const ks = mem.i32(at.k, qn * d);
      const vs = mem.f64(at.v, qn * d);
      for (let r = 0; r < qn; r++) take(q0 + r, ks.subarray(r * d, r * d + nc[r]!), vs.subarray(r * d, r * d + nc[r]!), nc[r]!);
    }
  }
}
