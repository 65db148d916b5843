/**
 * "Is the basis privileged?" (issue #14 item 6): per layer of the reference model, the share of
 * the activation variance that the top-5 principal components carry. A layer whose variance sits in
 * a few directions makes any direction, a random one included, correlate well across models; the
 * rotated baseline is then high, and the neurons have less room to beat it.
 *
 * The accumulator sums, per layer, Σ x and the Gram Σ x xᵀ of the post-activations (hook_post, the
 * activations the correlations use) over kept tokens: per layer, one ORT run (gemm.ts gramStep:
 * the layer sliced in the graph, the upper block triangle only, 3/4 of a full Gram's flops; the
 * first run also sums the columns) gives the batch's fp32 blocks, added into float64, so batch
 * splits and a resume give bit-identical sums. One layer's blocks at a time: at GPT-2-small size
 * all twelve would be 340 MB more. At the end the covariance's top eigenvalues come from subspace iteration (topEigenvalues),
 * its trace is the total variance.
 *
 * Memory: L·d(d+1)/2 float64 (GPT-2 small: 453 MB). A model whose triangle would exceed
 * COVARIANCE_MAX_BYTES gets no covariance (plan.ts leaves the accumulator out; the views say
 * "not in this run").
 */
import { EngineError, throwIfCancelled, type CancellationSignal } from '../errors';
import { Gemm, gramLayout, type GramLayout } from './gemm';
import type { Accumulator, AccumulatorState, ActivationBatch } from './types';

const KIND = 'layercov/1';

/** Principal components whose share is reported. */
export const PCA_TOP = 5;

/** The largest covariance state the plan accumulates (bytes). */
export const COVARIANCE_MAX_BYTES = 512 * 2 ** 20;

export interface LayerCovOptions {
  nLayers: number;
  dMlp: number;
  /** onnxruntime threads of the GEMMs. */
  threads?: number;
}

export interface LayerPca {
  layer: number;
  /** Kept tokens summed. */
  tokens: number;
  /** Trace of the covariance: the sum of the neurons' variances. */
  totalVariance: number;
  /** The top PCA_TOP eigenvalues of the covariance, descending. */
  eigenvalues: number[];
  /** Σ eigenvalues / totalVariance (NaN when the layer has no variance). */
  topShare: number;
}

const triLen = (d: number) => (d * (d + 1)) / 2;

export class LayerCovariance implements Accumulator<LayerPca[]> {
  /** Per layer, Σ x [d]. */
  readonly sum: Float64Array;
  /** Per layer, the upper triangle of Σ x xᵀ, row-major (a ≤ b). */
  readonly gram: Float64Array;
  n = 0;
  private gemm: Gemm | undefined;
  /** The layers' Gram blocks: the upper block triangle in two row blocks where d is even. */
  private readonly layout: GramLayout;
  /** One layer's fp32 blocks of a batch, and the batch's column sums (reused). */
  private step: { parts: Float32Array[]; sums: Float32Array } | undefined;

  constructor(readonly opts: LayerCovOptions) {
    const { nLayers: L, dMlp: d } = opts;
    if (!(Number.isInteger(L) && L > 0 && Number.isInteger(d) && d > 0)) throw new EngineError(`LayerCovariance: bad shape ${L} × ${d}`);
    this.sum = new Float64Array(L * d);
    this.gram = new Float64Array(L * triLen(d));
    this.layout = gramLayout(L, d, d % 2 === 0 ? 2 : 1);
  }

  /** Bytes held, for the memory planner. */
  static bytes(o: { nLayers: number; dMlp: number }): number {
    // float64 sums and triangles; one layer's fp32 blocks (≤ d²) and a batch's column sums.
    return 8 * o.nLayers * (o.dMlp + triLen(o.dMlp)) + 4 * (o.dMlp * o.dMlp + o.nLayers * o.dMlp);
  }

  private mm(): Gemm {
    return (this.gemm ??= new Gemm(this.opts.threads ? { threads: this.opts.threads } : {}));
  }

  async add(batch: ActivationBatch): Promise<void> {
    const { nLayers: L, dMlp: d } = this.opts;
    const N = L * d;
    const x = batch.models[0]?.keptPost;
    if (!x) throw new EngineError(`LayerCovariance: batch ${batch.batchIndex} has no reference keptPost`);
    const T = batch.nKept;
    if (x.length !== T * N) throw new EngineError(`LayerCovariance: reference keptPost has ${x.length} values, expected nKept·N = ${T}·${N}`);
    if (T === 0) return;
    const tri = triLen(d);
    for (let l = 0; l < L; l++) {
      const blocks = this.layout.blocks.filter((b) => b.group === l);
      // The blocks of every layer have the same shapes: one set of buffers serves them all.
      const step = (this.step ??= { parts: blocks.map((b) => new Float32Array(b.rows * b.cols)), sums: new Float32Array(N) });
      await this.mm().gramStep({ x, t: T, n: N, blocks, key: `${this.layout.key}#${l}`, parts: step.parts, ...(l === 0 ? { sums: step.sums } : {}) });
      if (l === 0) for (let k = 0; k < N; k++) this.sum[k]! += step.sums[k]!;
      // Block i holds rows r0.. of the layer against columns c0 = r0 … d−1: row a's entries b ≥ a.
      const G = this.gram.subarray(l * tri, (l + 1) * tri);
      blocks.forEach((blk, i) => {
        const part = step.parts[i]!;
        for (let r = 0; r < blk.rows; r++) {
          const a = blk.r0 + r;
          const row = a * d - (a * (a - 1)) / 2; // the triangle's offset of (a, a)
          for (let b = a; b < d; b++) G[row + b - a]! += part[r * blk.cols + b - blk.c0]!;
        }
      });
    }
    this.n += T;
  }

  state(): AccumulatorState {
    return { kind: KIND, nLayers: this.opts.nLayers, dMlp: this.opts.dMlp, n: this.n, sum: this.sum, gram: this.gram };
  }

  static restore(st: AccumulatorState, opts: LayerCovOptions): LayerCovariance {
    if (st.kind !== KIND) throw new EngineError(`checkpoint state is ${String(st.kind)}, expected ${KIND}`);
    if (st.nLayers !== opts.nLayers || st.dMlp !== opts.dMlp) {
      throw new EngineError(`checkpoint layer covariance is ${String(st.nLayers)} × ${String(st.dMlp)}, the run ${opts.nLayers} × ${opts.dMlp}`);
    }
    const c = new LayerCovariance(opts);
    if (!(st.sum instanceof Float64Array) || st.sum.length !== c.sum.length) throw new EngineError('checkpoint layer covariance sums are malformed');
    if (!(st.gram instanceof Float64Array) || st.gram.length !== c.gram.length) throw new EngineError('checkpoint layer covariance Gram is malformed');
    if (typeof st.n !== 'number' || !Number.isSafeInteger(st.n) || st.n < 0) throw new EngineError('checkpoint layer covariance count is malformed');
    c.sum.set(st.sum);
    c.gram.set(st.gram);
    c.n = st.n;
    return c;
  }

  /** Layer l's covariance (population, 1/n), full d×d. */
  covariance(l: number): Float64Array {
    const d = this.opts.dMlp;
    const n = this.n;
    const tri = triLen(d);
    const G = this.gram.subarray(l * tri, (l + 1) * tri);
    const s = this.sum.subarray(l * d, (l + 1) * d);
    const C = new Float64Array(d * d);
    let k = 0;
    for (let a = 0; a < d; a++) {
      for (let b = a; b < d; b++) {
        const v = n > 0 ? (G[k++]! - (s[a]! * s[b]!) / n) / n : 0;
        C[a * d + b] = v;
        C[b * d + a] = v;
      }
    }
    return C;
  }

  async finish(signal?: CancellationSignal): Promise<LayerPca[]> {
    const { nLayers: L, dMlp: d } = this.opts;
    const out: LayerPca[] = [];
    try {
      for (let l = 0; l < L; l++) {
        throwIfCancelled(signal);
        const C = this.covariance(l);
        let trace = 0;
        for (let a = 0; a < d; a++) trace += C[a * d + a]!;
        const ev = await topEigenvalues(C, d, Math.min(PCA_TOP, d), (V, k) => this.mm().abt64(C, V, d, d, k));
        const top = ev.reduce((a, b) => a + b, 0);
        out.push({ layer: l, tokens: this.n, totalVariance: trace, eigenvalues: ev, topShare: trace > 0 ? top / trace : NaN });
      }
    } finally {
      await this.gemm?.release();
      this.gemm = undefined;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Top eigenvalues of a symmetric positive semi-definite matrix

/** C·V for V given as its transpose [k × d] (row i = vector i); returns [d × k]. */
type MulT = (Vt: Float64Array, k: number) => Float64Array | Promise<Float64Array>;

/** The plain product, for small matrices and tests. */
export const jsMul =
  (C: Float64Array, d: number): MulT =>
  (Vt, k) => {
    const out = new Float64Array(d * k);
    for (let a = 0; a < d; a++) {
      for (let i = 0; i < k; i++) {
        let acc = 0;
        for (let b = 0; b < d; b++) acc += C[a * d + b]! * Vt[i * d + b]!;
        out[a * k + i] = acc;
      }
    }
    return out;
  };

/**
 * Eigenvalues of a small symmetric matrix (cyclic Jacobi), descending; `A` [m × m] is destroyed.
 * Also returns the eigenvectors as columns of `V` [m × m] in the same order.
 */
export function jacobiEigen(A: Float64Array, m: number): { values: number[]; vectors: Float64Array } {
  const V = new Float64Array(m * m);
  for (let i = 0; i < m; i++) V[i * m + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < m; p++) for (let q = p + 1; q < m; q++) off += A[p * m + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < m; p++) {
      for (let q = p + 1; q < m; q++) {
        const apq = A[p * m + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * m + q]! - A[p * m + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < m; k++) {
          const akp = A[k * m + p]!;
          const akq = A[k * m + q]!;
          A[k * m + p] = c * akp - s * akq;
          A[k * m + q] = s * akp + c * akq;
        }
        for (let k = 0; k < m; k++) {
          const apk = A[p * m + k]!;
          const aqk = A[q * m + k]!;
          A[p * m + k] = c * apk - s * aqk;
          A[q * m + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < m; k++) {
          const vkp = V[k * m + p]!;
          const vkq = V[k * m + q]!;
          V[k * m + p] = c * vkp - s * vkq;
          V[k * m + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: m }, (_, i) => i).sort((i, j) => A[j * m + j]! - A[i * m + i]!);
  const vectors = new Float64Array(m * m);
  order.forEach((src, dst) => {
    for (let k = 0; k < m; k++) vectors[k * m + dst] = V[k * m + src]!;
  });
  return { values: order.map((i) => A[i * m + i]!), vectors };
}

/** Orthonormalises the rows of Vt [k × d] in place (modified Gram–Schmidt, twice for stability). */
function orthonormalRows(Vt: Float64Array, k: number, d: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < k; i++) {
      const vi = Vt.subarray(i * d, (i + 1) * d);
      for (let j = 0; j < i; j++) {
        const vj = Vt.subarray(j * d, (j + 1) * d);
        let dot = 0;
        for (let a = 0; a < d; a++) dot += vi[a]! * vj[a]!;
        for (let a = 0; a < d; a++) vi[a]! -= dot * vj[a]!;
      }
      let nrm = 0;
      for (let a = 0; a < d; a++) nrm += vi[a]! * vi[a]!;
      nrm = Math.sqrt(nrm);
      // A direction lost to rank deficiency is replaced by a fixed unit vector, then re-orthogonalised next pass.
      if (nrm < 1e-300) vi[(i * 7919) % d] = 1;
      else for (let a = 0; a < d; a++) vi[a]! /= nrm;
    }
  }
}

/**
 * The `top` largest eigenvalues (descending) of the symmetric PSD matrix C [d × d], by subspace
 * iteration on a block of `top + 10` vectors with Rayleigh–Ritz, until their sum changes by less
 * than 1e-12 of itself (at most 1000 iterations). `mul` computes C·V. Deterministic: the start
 * block is fixed.
 */
export async function topEigenvalues(C: Float64Array, d: number, top: number, mul: MulT = jsMul(C, d)): Promise<number[]> {
  if (d <= 64) {
    // Small: every eigenvalue directly.
    return jacobiEigen(Float64Array.from(C), d).values.slice(0, top).map((v) => Math.max(0, v));
  }
  const k = Math.min(d, top + 10);
  let Vt = new Float64Array(k * d);
  // A fixed, well-spread start: a cheap hash in [-1, 1).
  for (let i = 0; i < k * d; i++) Vt[i] = (((Math.imul(i + 1, 2654435761) >>> 0) % 2000003) / 1000001.5) - 1;
  orthonormalRows(Vt, k, d);
  let prev = NaN;
  let values: number[] = [];
  for (let it = 0; it < 1000; it++) {
    const W = await mul(Vt, k); // [d × k]: C·V
    // Rayleigh–Ritz: H = Vᵀ C V [k × k], its eigenvectors rotate the block.
    const H = new Float64Array(k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
      let acc = 0;
      for (let a = 0; a < d; a++) acc += Vt[i * d + a]! * W[a * k + j]!;
      H[i * k + j] = acc;
    }
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) H[i * k + j] = H[j * k + i] = (H[i * k + j]! + H[j * k + i]!) / 2;
    const e = jacobiEigen(H, k);
    values = e.values.slice(0, top);
    const sum = values.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - prev) <= 1e-12 * Math.abs(sum)) break;
    prev = sum;
    // Next block: (C·V)·Q, orthonormalised.
    const next = new Float64Array(k * d);
    for (let i = 0; i < k; i++) for (let a = 0; a < d; a++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += W[a * k + j]! * e.vectors[j * k + i]!;
      next[i * d + a] = acc;
    }
    orthonormalRows(next, k, d);
    Vt = next;
  }
  return values.map((v) => Math.max(0, v));
}
