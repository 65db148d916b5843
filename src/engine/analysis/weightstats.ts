/**
 * Weight statistics per neuron (docs/method-notes.md "Weight statistics"), on weights processed as
 * TransformerLens loads them by default:
 *   W_in' = diag(γ₂)·W_in, b_in' = b_in + β₂·W_in, then W_in' centred over d_model per neuron;
 *   W_out rows centred over d_model;
 *   W_U' = diag(γ_f)·W_U, centred over d_model per token, then its mean over the vocab removed.
 * (W_U is the unembedding the engine's forward uses: GPT-2's wteᵀ when tied, else lm_headᵀ;
 * GPT-NeoX's embed_outᵀ. The MLP's LayerNorm is GPT-2's ln_2, GPT-NeoX's post_attention_layernorm,
 * which both residual forms apply right before the MLP, so the fold is the same; arch/index.ts
 * gives every architecture's tensors in one layout.)
 *
 * Processing runs in float64. The vocab composition c = ŵ_out·Ŵ_U (Ŵ_U with unit columns) is one
 * [N × d]·[d × V] product — 26 GFLOP for the tiny family, 2.8 TFLOP for GPT2-small — so it runs on onnxruntime's float32 GEMM in blocks of neurons; each block's [nb × V] result is
 * reduced at once (float64 moments, top/bottom tokens) and dropped, never the whole [N × V].
 */
import { EngineError, throwIfCancelled, type CancellationSignal } from '../errors';
import { loadCheckpoint } from '../checkpoint';
import type { ResolvedWeights } from '../arch/common';
import { type ArchWeights, mlpTensors, unembedTensors } from '../arch/index';
import { checkpointWeights } from '../validate';
import { OnnxGraph } from '../onnx';
import { sessionProviders } from '../provider';
import { resolveThreads } from '../threads';
import { momentsFromCentral } from './actstats';
import { KernelMemory } from '../kernels';
import { kernelPool } from '../kernels/pool';

export interface WeightStats {
  nLayers: number;
  dMlp: number;
  /** L·d_mlp; neuron (l, n) is index l·d_mlp + n of every array. */
  nNeurons: number;
  w_in_norm: Float64Array;
  input_bias: Float64Array;
  w_out_norm: Float64Array;
  in_out_sim: Float64Array;
  l2_penalty: Float64Array;
  /** Population moments of c over the vocab; kurt non-excess (Gaussian 3). */
  vocab_mean: Float64Array;
  vocab_var: Float64Array;
  vocab_skew: Float64Array;
  vocab_kurt: Float64Array;
  /** Tokens per neuron in topTokens / bottomTokens. */
  topK: number;
  /** [N × topK] token ids with the largest composition c, largest first (ties: lower id). */
  topTokens: Int32Array;
  topValues: Float32Array;
  /** [N × topK] token ids with the smallest c, smallest first. */
  bottomTokens: Int32Array;
  bottomValues: Float32Array;
}

export interface WeightStatsOptions {
  /** Top/bottom tokens per neuron (default 10). */
  topK?: number;
  /** `ort` (default): onnxruntime GEMM. `js`: a plain loop, for tiny models and tests. */
  gemm?: 'ort' | 'js';
  /** ORT intra-op threads (default: every core, threads.ts). */
  threads?: number;
  /** Neurons per GEMM block (default: what keeps a block's output near 64 MB). */
  blockNeurons?: number;
  /**
   * Each composition row's moments and top/bottom tokens by the WebAssembly kernel on every core
   * (default), or by the JS loop (`false`: the reference, bit-identical).
   */
  kernel?: boolean;
  /** Checked per layer and per GEMM block (CancelledError). */
  signal?: CancellationSignal;
}

/** MLP weights after TransformerLens processing, float64. */
export interface ProcessedMlp {
  nLayers: number;
  dModel: number;
  dMlp: number;
  /** Per layer, [d_model × d_mlp] (Conv1D layout: neuron n is column n). */
  wIn: Float64Array[];
  /** Per layer, [d_mlp] */
  bIn: Float64Array[];
  /** Per layer, [d_mlp × d_model] (neuron n is row n). */
  wOut: Float64Array[];
}

/** A weight as stored (float32), by its HF name without prefix. */
export function readTensor(w: ResolvedWeights, name: string): Float32Array {
  const stored = w.stored.get(name);
  if (stored === undefined) throw new EngineError(`weight ${name} was not resolved`, undefined, name);
  return w.source.read(stored);
}

/** Folds ln_2 into W_in/b_in and centres W_in columns and W_out rows over d_model, every layer. */
export function processMlpWeights(w: ResolvedWeights): ProcessedMlp {
  const { nLayer: L, nEmbd: d, dMlp: m } = w.config;
  const out: ProcessedMlp = { nLayers: L, dModel: d, dMlp: m, wIn: [], bIn: [], wOut: [] };
  for (let l = 0; l < L; l++) {
    const p = processLayer(w, l);
    out.wIn.push(p.wIn);
    out.bIn.push(p.bIn);
    out.wOut.push(p.wOut);
  }
  return out;
}

/** One layer of processMlpWeights (weightStats goes layer by layer: float64 copies of every layer add up). */
function processLayer(w: ResolvedWeights, l: number): { wIn: Float64Array; bIn: Float64Array; wOut: Float64Array } {
  const { nEmbd: d, dMlp: m } = w.config;
  const t = mlpTensors(w, l);
  const g = t.lnWeight;
  const beta = t.lnBias;
  const W = t.wIn; // [d, m]
  const b = t.bIn;
  const Wo = t.wOut; // [m, d]
  const wIn = new Float64Array(d * m);
  const bIn = Float64Array.from(b);
  const colMean = new Float64Array(m);
  for (let i = 0; i < d; i++) {
    const gi = g[i]!;
    const bi = beta[i]!;
    for (let n = 0; n < m; n++) {
      const x = W[i * m + n]!;
      const y = gi * x;
      wIn[i * m + n] = y;
      colMean[n] += y;
      bIn[n] += bi * x; // β·W_in with the unscaled W_in
    }
  }
  for (let n = 0; n < m; n++) colMean[n]! /= d;
  for (let i = 0; i < d; i++) for (let n = 0; n < m; n++) wIn[i * m + n]! -= colMean[n]!;
  const wOut = Float64Array.from(Wo);
  for (let n = 0; n < m; n++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += wOut[n * d + i]!;
    s /= d;
    for (let i = 0; i < d; i++) wOut[n * d + i]! -= s;
  }
  return { wIn, bIn, wOut };
}

/**
 * The processed unembedding with unit columns, stored transposed: row v of the result
 * ([V × d_model], float32) is Ŵ_U[:, v]. Zero columns stay zero.
 */
export function unitUnembedRows(w: ResolvedWeights): Float32Array {
  const { nEmbd: d, vocabSize: V } = w.config;
  const { rows: E, lnWeight: g } = unembedTensors(w); // E: [V, d]
  const u = new Float64Array(d);
  // Column v of diag(γ)·W_U, centred over d_model, into u.
  const column = (v: number): void => {
    let s = 0;
    for (let i = 0; i < d; i++) s += (u[i] = E[v * d + i]! * g[i]!);
    s /= d;
    for (let i = 0; i < d; i++) u[i]! -= s;
  };
  const vocabMean = new Float64Array(d);
  for (let v = 0; v < V; v++) {
    column(v);
    for (let i = 0; i < d; i++) vocabMean[i] += u[i]!;
  }
  for (let i = 0; i < d; i++) vocabMean[i]! /= V;
  const out = new Float32Array(V * d);
  for (let v = 0; v < V; v++) {
    column(v);
    let ss = 0;
    for (let i = 0; i < d; i++) {
      u[i]! -= vocabMean[i]!;
      ss += u[i]! * u[i]!;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let i = 0; i < d; i++) out[v * d + i] = u[i]! * inv;
  }
  return out;
}

type Gemm = (a: Float32Array, rows: number) => Promise<Float32Array>;

/** C = A·Uᵀ for A [rows × d], U [V × d]: ORT's Gemm with transB, so U is used as stored. */
async function ortGemm(U: Float32Array, V: number, d: number, threads: number): Promise<{ gemm: Gemm; close: () => Promise<void> }> {
  const ort = await import('onnxruntime-node'); // lazily: the native addon
  const g = new OnnxGraph('composition', 13);
  const a = g.input('a', 'float', ['n', d]);
  const u = g.input('u', 'float', [V, d]);
  g.op('Gemm', [a, u], { transB: { i: 1 } }, 'c');
  g.output('c', 'float', ['n', V]);
  const session = await ort.InferenceSession.create(g.toBytes(), {
    executionProviders: sessionProviders(),
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const uT = new ort.Tensor('float32', U, [V, d]);
  return {
    gemm: async (A, rows) => {
      const res = await session.run({ a: new ort.Tensor('float32', A.subarray(0, rows * d), [rows, d]), u: uT }, ['c']);
      return res['c']!.data as Float32Array;
    },
    close: () => session.release(),
  };
}

function jsGemm(U: Float32Array, V: number, d: number): Gemm {
  return async (A, rows) => {
    const C = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += A[r * d + i]! * U[v * d + i]!;
        C[r * V + v] = s;
      }
    }
    return C;
  };
}

/** Statistics for every neuron of one resolved checkpoint (any architecture of arch/index.ts). */
export async function weightStats(w: ResolvedWeights, opts: WeightStatsOptions = {}): Promise<WeightStats> {
  const { nEmbd: d, vocabSize: V } = w.config;
  const topK = opts.topK ?? 10;
  if (!Number.isInteger(topK) || topK < 1 || topK > V) throw new EngineError(`topK must be an integer in 1..${V}, got ${topK}`);
  const { nLayer: L, dMlp: m } = w.config;
  const N = L * m;
  const s: WeightStats = {
    nLayers: L,
    dMlp: m,
    nNeurons: N,
    w_in_norm: new Float64Array(N),
    input_bias: new Float64Array(N),
    w_out_norm: new Float64Array(N),
    in_out_sim: new Float64Array(N),
    l2_penalty: new Float64Array(N),
    vocab_mean: new Float64Array(N),
    vocab_var: new Float64Array(N),
    vocab_skew: new Float64Array(N),
    vocab_kurt: new Float64Array(N),
    topK,
    topTokens: new Int32Array(N * topK),
    topValues: new Float32Array(N * topK),
    bottomTokens: new Int32Array(N * topK),
    bottomValues: new Float32Array(N * topK),
  };
  // Unit w_out rows for the GEMM, float32 [N × d].
  const A = new Float32Array(N * d);
  for (let l = 0; l < L; l++) {
    throwIfCancelled(opts.signal);
    const { wIn, bIn, wOut } = processLayer(w, l);
    for (let n = 0; n < m; n++) {
      const j = l * m + n;
      let ii = 0;
      let oo = 0;
      let io = 0;
      for (let i = 0; i < d; i++) {
        const a = wIn[i * m + n]!;
        const b = wOut[n * d + i]!;
        ii += a * a;
        oo += b * b;
        io += a * b;
      }
      const ni = Math.sqrt(ii);
      const no = Math.sqrt(oo);
      s.w_in_norm[j] = ni;
      s.w_out_norm[j] = no;
      s.input_bias[j] = bIn[n]!;
      s.in_out_sim[j] = ni > 0 && no > 0 ? io / (ni * no) : 0;
      s.l2_penalty[j] = ii + oo;
      const inv = no > 0 ? 1 / no : 0;
      for (let i = 0; i < d; i++) A[j * d + i] = wOut[n * d + i]! * inv;
    }
  }
  const U = unitUnembedRows(w);
  const block = Math.max(1, Math.min(N, opts.blockNeurons ?? Math.floor((64 * 1024 * 1024) / (4 * V))));
  let gemm: Gemm;
  let close = async (): Promise<void> => {};
  if ((opts.gemm ?? 'ort') === 'ort') {
    const threads = resolveThreads(opts.threads);
    ({ gemm, close } = await ortGemm(U, V, d, threads));
  } else gemm = jsGemm(U, V, d);
  try {
    const Ablock = new Float32Array(block * d);
    const rowsKernel = opts.kernel === false ? undefined : new VocabRows(block, V, topK);
    for (let j0 = 0; j0 < N; j0 += block) {
      throwIfCancelled(opts.signal);
      const rows = Math.min(block, N - j0);
      Ablock.set(A.subarray(j0 * d, (j0 + rows) * d));
      const C = await gemm(Ablock, rows);
      if (rowsKernel) rowsKernel.reduce(C, rows, j0, s);
      else for (let r = 0; r < rows; r++) reduceRow(C, r * V, V, j0 + r, s);
    }
  } finally {
    await close();
  }
  return s;
}

/**
 * `reduceRow` for a block of rows at once, by the vocab kernel (kernels/assembly/vocab.ts) over
 * row ranges on the worker pool: the same operations per row, so the same bits. At GPT-2-small
 * size that is 36,864 rows × 50,257 tokens, ~19 s in the JS loop on this VM.
 */
class VocabRows {
  private readonly mem: KernelMemory;
  private readonly at: Record<'c' | 'mean' | 'm2' | 'm3' | 'm4' | 'tv' | 'ti' | 'bv' | 'bi', number>;

  constructor(
    block: number,
    private readonly V: number,
    private readonly K: number,
  ) {
    const n = block * V;
    this.mem = new KernelMemory(4 * n + 32 * block + 16 * block * K + 1024);
    const m = this.mem;
    this.at = {
      c: m.alloc(4 * n),
      mean: m.alloc(8 * block),
      m2: m.alloc(8 * block),
      m3: m.alloc(8 * block),
      m4: m.alloc(8 * block),
      tv: m.alloc(4 * block * K),
      ti: m.alloc(4 * block * K),
      bv: m.alloc(4 * block * K),
      bi: m.alloc(4 * block * K),
    };
  }

  reduce(C: Float32Array, rows: number, j0: number, s: WeightStats): void {
    const { mem, at, V, K } = this;
    mem.f32(at.c, rows * V).set(C.subarray(0, rows * V));
    const pool = kernelPool();
    const parts = Math.max(1, Math.min(pool.threads, rows));
    const range = (p: number): [number, number] => [Math.floor((p * rows) / parts), Math.floor(((p + 1) * rows) / parts)];
    const found = pool.run(mem, 'vocab', 'vocabRows', parts, (p) => [at.c, V, ...range(p), at.mean, at.m2, at.m3, at.m4, at.tv, at.ti, at.bv, at.bi, K]);
    const bad = found.filter((r) => r >= 0);
    if (bad.length) throw new EngineError(`vocab composition of neuron column ${j0 + Math.min(...bad)} is not finite (NaN or Infinity in the weights?)`);
    const mean = mem.f64(at.mean, rows);
    const m2 = mem.f64(at.m2, rows);
    const m3 = mem.f64(at.m3, rows);
    const m4 = mem.f64(at.m4, rows);
    for (let r = 0; r < rows; r++) {
      const j = j0 + r;
      const mo = momentsFromCentral(V, m2[r]!, m3[r]!, m4[r]!);
      s.vocab_mean[j] = mean[r]!;
      s.vocab_var[j] = mo.var;
      s.vocab_skew[j] = mo.skew;
      s.vocab_kurt[j] = mo.kurt;
    }
    s.topValues.set(mem.f32(at.tv, rows * K), j0 * K);
    s.topTokens.set(mem.i32(at.ti, rows * K), j0 * K);
    s.bottomValues.set(mem.f32(at.bv, rows * K), j0 * K);
    s.bottomTokens.set(mem.i32(at.bi, rows * K), j0 * K);
  }
}

/** Moments (float64, two-pass) and top/bottom tokens of one composition row c[0..V). */
function reduceRow(C: Float32Array, off: number, V: number, j: number, s: WeightStats): void {
  const K = s.topK;
  const tv = s.topValues.subarray(j * K, (j + 1) * K);
  const ti = s.topTokens.subarray(j * K, (j + 1) * K);
  const bv = s.bottomValues.subarray(j * K, (j + 1) * K);
  const bi = s.bottomTokens.subarray(j * K, (j + 1) * K);
  let nt = 0;
  let nb = 0;
  let sum = 0;
  for (let v = 0; v < V; v++) {
    const x = C[off + v]!;
    sum += x;
    // Sorted insert into the top list (desc) / bottom list (asc); strict compares keep lower ids on ties.
    if (nt < K || x > tv[K - 1]!) {
      let q = nt < K ? nt++ : K - 1;
      while (q > 0 && tv[q - 1]! < x) {
        tv[q] = tv[q - 1]!;
        ti[q] = ti[q - 1]!;
        q--;
      }
      tv[q] = x;
      ti[q] = v;
    }
    if (nb < K || x < bv[K - 1]!) {
      let q = nb < K ? nb++ : K - 1;
      while (q > 0 && bv[q - 1]! > x) {
        bv[q] = bv[q - 1]!;
        bi[q] = bi[q - 1]!;
        q--;
      }
      bv[q] = x;
      bi[q] = v;
    }
  }
  const mean = sum / V;
  if (!Number.isFinite(mean)) throw new EngineError(`vocab composition of neuron column ${j} is not finite (NaN or Infinity in the weights?)`);
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (let v = 0; v < V; v++) {
    const dd = C[off + v]! - mean;
    const d2 = dd * dd;
    m2 += d2;
    m3 += d2 * dd;
    m4 += d2 * d2;
  }
  const mo = momentsFromCentral(V, m2, m3, m4);
  s.vocab_mean[j] = mean;
  s.vocab_var[j] = mo.var;
  s.vocab_skew[j] = mo.skew;
  s.vocab_kurt[j] = mo.kurt;
}


/**
 * Opens a checkpoint just far enough for weight statistics: validated as for a forward
 * (validate.ts), with no ORT session. Close when done.
 */
export function openModelWeights(path: string): { weights: ArchWeights; close: () => void } {
  const ck = loadCheckpoint(path);
  try {
    // The same checks as opening the model for a forward (validate.ts): config, tensors both
    // ways, dtypes, finite weights.
    const weights = checkpointWeights(ck);
    return { weights, close: () => ck.weights.close() };
  } catch (e) {
    ck.weights.close();
    throw e;
  }
}

/** weightStats of the checkpoint at `path` (see openResolvedWeights). */
export async function weightStatsFromCheckpoint(path: string, opts: WeightStatsOptions = {}): Promise<WeightStats> {
  const { weights, close } = openModelWeights(path);
  try {
    return await weightStats(weights, opts);
  } finally {
    close();
  }
}
