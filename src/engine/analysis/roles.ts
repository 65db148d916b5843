/**
 * Functional roles from the weights (docs/method-notes.md "Families and roles"):
 * - prediction / suppression: vocab_kurt above a threshold (10), by the sign of vocab_skew;
 * - partition: vocab_var above that of every one of `directions` random unit directions;
 * - entropy candidates: the paper's query scaled to depth (GPT2-small: layer ≥ 10 of 12, l2 ≥ 3,
 *   vocab_kurt ≤ 10, kurt ≤ 10, ranked by vocab_var, smallest first; `EntropyQuery`): the last
 *   max(1, round(0.2·L)) layers, so layer 3 of 4 in the shipped family and 19..23 of 24 in
 *   GPT2-medium (whose anti-entropy neuron is in layer 22). The intervention in intervention.ts
 *   tests the top of the ranking;
 * - attention deactivation: h = ŵ_outᵀ·W_Qᵀ·k_BOS/√d_head for every later head. The listed pairs
 *   are the top `topPairs` by |h|, as the paper ranks them (h > 0: the neuron pushes the head onto
 *   BOS; h < 0: off it); the role needs h's z-score against random unit directions > `attentionZ`.
 *   With rotary keys (GPT-NeoX) h is the mean over the query positions of a run's rows
 *   (attentionScores).
 *
 * "Random direction" means a Gaussian vector in the residual stream, centred over d_model (as
 * processed W_out rows are) and normalised. A direction's vocab_var is uᵀMu − (u·μ)², with
 * M = mean_v ŵ_v ŵ_vᵀ and μ = mean_v ŵ_v over the unit unembedding columns ŵ_v, so the baseline
 * costs one d×d moment matrix rather than a [directions × vocab] product.
 */
import type { ResolvedWeights } from '../arch/common';
import { EngineError, throwIfCancelled, type CancellationSignal } from '../errors';
import { rotationMatrix } from '../rng';
import { attentionTensors, embedAtStart, mlpTensors, parallelResidual, type Rotary, rotaryOf } from '../arch/index';
import { processMlpWeights, unitUnembedRows, type WeightStats } from './weightstats';
import { KernelMemory } from '../kernels';
import { forgetMemory, kernelPool } from '../kernels/pool';

// The role names (in order of precedence) are the run folder's vocabulary: src/engine/run/families.ts.
import { ROLES, type Role } from '../run/families';
import { ROLE_SETTINGS } from '../run/roleSettings';

export { ROLES, type Role };

export interface RoleOptions {
  /** docs/method-notes.md: prediction/suppression need vocab_kurt above this. */
  vocabKurt?: number;
  /** Random unit directions for the partition, entropy and attention baselines (default 1024). */
  directions?: number;
  /** Attention-deactivation z-score threshold (default 5). */
  attentionZ?: number;
  /** The entropy-candidate query; unset fields keep DEFAULT_ENTROPY_QUERY. */
  entropy?: Partial<EntropyQuery>;
  seed?: number;
  /** Attention pairs listed, the top by |h| (default 20). */
  topPairs?: number;
  /** Checked in the long loops (CancelledError). */
  signal?: CancellationSignal;
  /** The tokenizer's BOS id, whose keys the attention scores read (default: GPT-2's 50256, GPT-2 only). */
  bos?: number;
  /**
   * Tokens per row of the run (n_ctx; default the model's context): with rotary keys the attention
   * score is the mean over query positions 1 … n_ctx−1 (attentionScores). Unused without rotary.
   */
  contextLength?: number;
}

/** The paper's entropy-neuron query (GPT2-small: layer ≥ 10 of 12, l2 ≥ 3, vocab_kurt ≤ 10, kurt ≤ 10). */
export interface EntropyQuery {
  /** Candidates come from the last max(1, round(layerFraction·L)) layers (0.2: layers 10, 11 of 12). */
  layerFraction: number;
  /** l2_penalty at least this. */
  l2: number;
  /** vocab_kurt at most this. */
  vocabKurt: number;
  /** Activation kurtosis (the paper's histogram `kurt` column) at most this. */
  kurt: number;
}

export const DEFAULT_ENTROPY_QUERY: Readonly<EntropyQuery> = {
  layerFraction: ROLE_SETTINGS.entropyLayers.default,
  l2: ROLE_SETTINGS.entropyL2.default,
  vocabKurt: ROLE_SETTINGS.entropyVocabKurt.default,
  kurt: ROLE_SETTINGS.entropyKurt.default,
};

/** The first layer the entropy query searches: the last max(1, round(fraction·L)) layers. */
export function entropyFirstLayer(nLayers: number, layerFraction: number): number {
  if (!(layerFraction > 0 && layerFraction <= 1)) throw new EngineError(`roles: the entropy query's layer fraction must be in (0, 1], got ${layerFraction}`);
  return nLayers - Math.min(nLayers, Math.max(1, Math.round(layerFraction * nLayers)));
}

export interface AttentionPair {
  layer: number;
  neuron: number;
  /** `L{layer}.H{head}` */
  head: string;
  /** z-score against random directions. */
  score: number;
  /** h itself. */
  raw: number;
}

/** What a rotary model's attention score averaged over (roles.json `attentionQuery`). */
export interface AttentionQuery {
  /** Query positions first … last (1 … n_ctx−1), each weighted equally; BOS at position 0. */
  positions: [number, number];
  /** Rotated dimensions of each head, and the rotary base. */
  rotaryDims: number;
  rotaryBase: number;
}

export interface NeuronRoles {
  /** Primary role per neuron, in ROLES order of precedence; '' for none. */
  role: string[];
  /** Every role, comma-separated. */
  roles: string[];
  /** Strongest attention-deactivation head per neuron (z-score, max over later heads; '' / NaN for the last layer). */
  attnHead: string[];
  attnScore: Float64Array;
  /**
   * The neurons of the query's layers: those that pass the query first, each group by vocab_var,
   * smallest first; `candidate` says whether it passes.
   */
  entropyRanking: { index: number; candidate: boolean }[];
  attention: AttentionPair[];
  /** With rotary keys: the query positions the attention score averages over (first, last) and the rotated dims; null without. */
  attentionQuery: AttentionQuery | null;
  /** The random-direction baselines actually used. */
  baseline: { directions: number; vocabVarMin: number; vocabVarMax: number; seed: number };
}

/** `directions` centred unit vectors in R^d, reproducible from the seed. */
export function randomDirections(seed: number, count: number, d: number): Float64Array {
  const out = new Float64Array(count * d);
  // rotationMatrix gives d Gaussian unit rows per key; keys 2^31+i stay clear of the baseline's layers.
  for (let k = 0; k * d < count; k++) {
    const R = rotationMatrix(seed, 2 ** 31 + k, d);
    out.set(R.subarray(0, Math.min(d, count - k * d) * d), k * d * d);
  }
  for (let r = 0; r < count; r++) {
    const u = out.subarray(r * d, (r + 1) * d);
    const mean = u.reduce((a, b) => a + b, 0) / d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += (u[i]! -= mean) ** 2;
    const inv = 1 / Math.sqrt(ss);
    for (let i = 0; i < d; i++) u[i]! *= inv;
  }
  return out;
}

/**
 * M = mean_v ŵ_v ŵ_vᵀ and μ = mean_v ŵ_v of the unit unembedding rows [V × d].
 *
 * Each element of M is summed over v in order, as the plain rank-1 loop does (`unembedMomentsPlain`,
 * the tests' reference: bit-identical), by the vocab kernel's `gramRows` on the worker pool: row
 * ranges of the upper triangle of equal area, in chunks so that a cancel is seen between them. At
 * GPT-2 size (d = 768, V = 50,257: 14.8·10⁹ products) the JS loop in cache-sized bands took
 * 26.7 s on this 2-core VM, 42 s of the roles step (BENCHMARKS.md).
 */
export function unembedMoments(U: Float32Array, d: number, signal?: CancellationSignal): { M: Float64Array; mu: Float64Array } {
  const V = U.length / d;
  const mu = new Float64Array(d);
  for (let v = 0; v < V; v++) for (let i = 0; i < d; i++) mu[i]! += U[v * d + i]!;
  const mem = new KernelMemory(4 * U.length + 8 * d * d + 256);
  const at = { U: mem.alloc(4 * U.length), M: mem.alloc(8 * d * d) };
  mem.f32(at.U, U.length).set(U);
  const pool = kernelPool();
  // Rows cut where the upper triangle's area reaches k/cuts of the whole: row i holds d − i elements.
  const chunks = Math.max(1, Math.min(d, 16));
  const cuts = Math.min(d, chunks * pool.threads);
  const bounds: number[] = [0];
  let area = 0;
  for (let i = 0, k = 1; i < d && k < cuts; i++) {
    area += d - i;
    if (area * cuts >= k * ((d * (d + 1)) / 2)) {
      bounds.push(i + 1);
      while (k < cuts && area * cuts >= k * ((d * (d + 1)) / 2)) k++;
    }
  }
  if (bounds[bounds.length - 1] !== d) bounds.push(d);
  const ranges = bounds.slice(1).map((b, r) => [bounds[r]!, b] as const);
  for (let r = 0; r < ranges.length; r += pool.threads) {
    throwIfCancelled(signal);
    const group = ranges.slice(r, r + pool.threads);
    pool.run(mem, 'vocab', 'gramRows', group.length, (p) => [at.U, V, d, group[p]![0], group[p]![1], at.M]);
  }
  const M = Float64Array.from(mem.f64(at.M, d * d));
  forgetMemory(mem);
  for (let i = 0; i < d; i++) {
    mu[i]! /= V;
    for (let j = i; j < d; j++) M[j * d + i] = M[i * d + j]! /= V;
  }
  return { M, mu };
}

/** The plain rank-1 loop: `unembedMoments`' reference in the tests. */
export function unembedMomentsPlain(U: Float32Array, d: number): { M: Float64Array; mu: Float64Array } {
  const V = U.length / d;
  const M = new Float64Array(d * d);
  const mu = new Float64Array(d);
  for (let v = 0; v < V; v++) {
    const o = v * d;
    for (let i = 0; i < d; i++) {
      const ui = U[o + i]!;
      mu[i]! += ui;
      const row = i * d;
      for (let j = i; j < d; j++) M[row + j]! += ui * U[o + j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    mu[i]! /= V;
    for (let j = i; j < d; j++) M[j * d + i] = M[i * d + j]! /= V;
  }
  return { M, mu };
}

/** vocab_var of the composition of unit direction u: uᵀMu − (u·μ)². */
export function directionVocabVar(u: ArrayLike<number>, M: Float64Array, mu: Float64Array): number {
  const d = mu.length;
  let q = 0;
  let m = 0;
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += M[i * d + j]! * u[j]!;
    q += u[i]! * s;
    m += u[i]! * mu[i]!;
  }
  return q - m * m;
}

/**
 * The role rules on given statistics; `attn` from attentionScores, `varRange` from random
 * directions, `kurt` the activation kurtosis per neuron (the paper's histogram column).
 */
export function applyRoleRules(
  ws: Pick<WeightStats, 'nLayers' | 'dMlp' | 'vocab_kurt' | 'vocab_skew' | 'vocab_var' | 'l2_penalty'>,
  kurt: ArrayLike<number>,
  varRange: { min: number; max: number },
  attn: { z: Float64Array; head: string[] },
  opts: RoleOptions = {},
): Pick<NeuronRoles, 'role' | 'roles' | 'entropyRanking'> {
  const kurtCut = opts.vocabKurt ?? 10;
  const zCut = opts.attentionZ ?? ROLE_SETTINGS.attentionZ.default;
  const q = { ...DEFAULT_ENTROPY_QUERY, ...opts.entropy };
  const { nLayers: L, dMlp: D } = ws;
  const N = L * D;
  if (kurt.length !== N) throw new EngineError(`roles: ${kurt.length} activation kurtoses for ${N} neurons`);
  const first = entropyFirstLayer(L, q.layerFraction) * D;
  // NaN (a dead neuron's kurtosis) fails every comparison, so it is no candidate.
  const entropyRule = (j: number): boolean => j >= first && ws.l2_penalty[j]! >= q.l2 && ws.vocab_kurt[j]! <= q.vocabKurt && kurt[j]! <= q.kurt;
  const role: string[] = new Array(N);
  const roles: string[] = new Array(N);
  for (let j = 0; j < N; j++) {
    const has: Role[] = [];
    if (entropyRule(j)) has.push('entropy');
    if (attn.z[j]! > zCut) has.push('attention-deactivation');
    if (ws.vocab_kurt[j]! > kurtCut) has.push(ws.vocab_skew[j]! > 0 ? 'prediction' : 'suppression');
    if (ws.vocab_var[j]! > varRange.max) has.push('partition');
    role[j] = has[0] ?? '';
    roles[j] = has.join(',');
  }
  const entropyRanking = Array.from({ length: N - first }, (_, n) => ({ index: first + n, candidate: entropyRule(first + n) })).sort(
    (a, b) => Number(b.candidate) - Number(a.candidate) || ws.vocab_var[a.index]! - ws.vocab_var[b.index]! || a.index - b.index,
  );
  return { role, roles, entropyRanking };
}

const erf = (x: number): number => {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): k_BOS is a score direction, not a golden.
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
};

/**
 * Each layer's attention keys at the BOS position. Position 0 attends only to itself, so the
 * residual stream there is a one-token forward, computed here directly from the weights (either
 * residual form: GPT-NeoX's parallel one feeds the MLP the layer's input, not input + attention).
 * Rotary embeddings rotate position 0 by the identity, so a NeoX key at BOS is unrotated.
 * Returns per layer the key vector [d] (all heads, before the split). `bos`: the tokenizer's BOS
 * id (GPT-2's <|endoftext|> 50256, Pythia's 0).
 */
export function bosKeys(w: ResolvedWeights, bosId?: number): Float64Array[] {
  return bosForward(w, bosId).keys;
}

/** bosKeys' one-token forward; `pre` is each layer's hook_pre at BOS (checked against the engine's forward in tests). */
export function bosForward(w: ResolvedWeights, bosId?: number): { keys: Float64Array[]; pre: Float64Array[] } {
  const c = w.config;
  const d = c.nEmbd;
  // GPT-2's <|endoftext|> is a safe default; another architecture's id must come from its tokenizer.
  const bos = bosId ?? (c.modelType === 'gpt2' ? 50256 : undefined);
  if (bos === undefined) throw new EngineError(`roles: the BOS id is needed for model_type "${c.modelType}" (give the tokenizer's bosId)`);
  if (!Number.isInteger(bos) || bos < 0 || bos >= c.vocabSize) throw new EngineError(`roles: BOS id ${bos} is outside the vocabulary 0..${c.vocabSize - 1}`);
  const x = embedAtStart(w, bos);
  const parallel = parallelResidual(w);
  const ln = (src: Float64Array, g: Float32Array, b: Float32Array): Float64Array => {
    let m = 0;
    for (let i = 0; i < d; i++) m += src[i]!;
    m /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (src[i]! - m) ** 2;
    const inv = 1 / Math.sqrt(v / d + c.layerNormEpsilon);
    return Float64Array.from(src, (xi, i) => (xi - m) * inv * g[i]! + b[i]!);
  };
  const affine = (a: Float64Array, W: Float32Array, b: Float32Array, cols: number): Float64Array => {
    const out = Float64Array.from(b);
    for (let i = 0; i < a.length; i++) {
      const ai = a[i]!;
      const o = i * cols;
      for (let j = 0; j < cols; j++) out[j]! += ai * W[o + j]!;
    }
    return out;
  };
  const act = (z: number): number =>
    c.activation === 'relu' ? Math.max(0, z) : c.activation === 'gelu_erf' ? 0.5 * z * (1 + erf(z / Math.SQRT2)) : 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));
  const keys: Float64Array[] = [];
  const pre: Float64Array[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    const at = attentionTensors(w, l);
    const a = ln(x, at.lnWeight, at.lnBias);
    keys.push(affine(a, at.wK, at.bK, d));
    const v = affine(a, at.wV, at.bV, d); // one key: the attention output is its value
    const o = affine(v, at.wO, at.bO, d);
    const mt = mlpTensors(w, l);
    if (!parallel) for (let i = 0; i < d; i++) x[i]! += o[i]!;
    const m = ln(x, mt.lnWeight, mt.lnBias);
    const z = affine(m, mt.wIn, mt.bIn, c.dMlp);
    pre.push(z);
    const y = affine(z.map(act), mt.wOut, mt.bOut, d);
    for (let i = 0; i < d; i++) x[i]! += y[i]! + (parallel ? o[i]! : 0);
  }
  return { keys, pre };
}

/**
 * Attention-deactivation scores of every neuron against every head of every later layer:
 * g = diag(γ₁)·W_Q[:, head]·k_BOS/√d_head (ln_1 folded as TransformerLens does; centring does not
 * matter against a centred ŵ_out), h = ŵ_out·g, z = h/σ with σ the spread of u·g over random u.
 *
 * With rotary embeddings (GPT-NeoX; Pythia rotates a quarter of each head) a query at position p
 * meets k_BOS, at position 0 and so unrotated, as q_p·k_BOS = q·R_{−p}·k_BOS: the score depends on
 * p, the paper's does not. h is then the mean over the query positions a run's rows hold,
 * p = 1 … contextLength−1 (position 0 is BOS itself), each weighted equally. Linear in the key, it
 * is the score against k̄ = mean_p R_{−p}·k_BOS (meanRotatedKey), so it costs what the unrotated
 * score costs. `queryPositions` says what was used (null without rotary: GPT-2 is unchanged).
 */
export function attentionScores(
  w: ResolvedWeights,
  wOutUnit: Float64Array[],
  directions: Float64Array,
  topPairs = 20,
  signal?: CancellationSignal,
  bos?: number,
  contextLength?: number,
  /** The dot products by the plain JS loop instead of the kernel (the tests' reference: bit-identical). */
  plain = false,
): { z: Float64Array; head: string[]; pairs: AttentionPair[]; query: AttentionQuery | null } {
  const c = w.config;
  const { nLayer: L, nEmbd: d, nHead: H, dHead: dh, dMlp: D } = c;
  const rotary = rotaryOf(w);
  let keys = bosKeys(w, bos);
  let query: AttentionQuery | null = null;
  if (rotary) {
    const n = contextLength ?? c.nPositions;
    if (!Number.isInteger(n) || n < 2 || n > c.nPositions) {
      throw new EngineError(
        `roles: the attention-deactivation score of a rotary model averages over the query positions 1 … n−1 of a run's rows; ` +
          `a row length of ${n} is not in 2..${c.nPositions} (the model's context)`,
      );
    }
    keys = keys.map((k) => meanRotatedKey(k, H, dh, rotary, n));
    query = { positions: [1, n - 1], rotaryDims: rotary.dims, rotaryBase: rotary.base };
  }
  const R = directions.length / d;
  const g: Float64Array[] = []; // [L·H] of [d]
  const sigma: number[] = [];
  for (let l = 0; l < L; l++) {
    const { lnWeight: gamma, wQ } = attentionTensors(w, l);
    for (let hd = 0; hd < H; hd++) {
      const v = new Float64Array(d);
      for (let i = 0; i < d; i++) {
        let s = 0;
        for (let k = 0; k < dh; k++) s += wQ[i * d + hd * dh + k]! * keys[l]![hd * dh + k]!;
        v[i] = (gamma[i]! * s) / Math.sqrt(dh);
      }
      g.push(v);
      let ss = 0;
      for (let r = 0; r < R; r++) {
        let h = 0;
        for (let i = 0; i < d; i++) h += directions[r * d + i]! * v[i]!;
        ss += h * h;
      }
      sigma.push(Math.sqrt(ss / R));
    }
  }
  const N = L * D;
  const z = new Float64Array(N).fill(Number.NaN);
  const head: string[] = new Array(N).fill('');
  const pairs: AttentionPair[] = [];
  const keep = Math.max(0, topPairs);
  let floor = keep > 0 ? -1 : Infinity; // |h| a pair must beat to be listed
  // h = W_out[n]·v for every neuron n of layer l and head of a later layer: the vocab kernel's
  // `dotColumns` on the worker pool (each h summed in i order as `h += Wo[n·d + i]·v[i]` would:
  // bit-identical), ~1.9·10⁹ products at GPT-2-small size, 5.7 s of JS per model before.
  const pool = kernelPool();
  const maxCols = (L - 1) * H;
  const mem = new KernelMemory(8 * (D * d + d * maxCols + D * maxCols) + 256);
  const at = { A: mem.alloc(8 * D * d), Bt: mem.alloc(8 * d * maxCols), out: mem.alloc(8 * D * maxCols) };
  const rowsPerRun = Math.max(1, Math.ceil(D / (4 * pool.threads)));
  for (let l = 0; l < L - 1; l++) {
    const cols = (L - 1 - l) * H;
    if (!plain) mem.f64(at.A, D * d).set(wOutUnit[l]!);
    const hs = mem.f64(at.out, D * cols);
    if (plain) {
      const Wo = wOutUnit[l]!;
      for (let n = 0; n < D; n++) {
        for (let q = 0; q < cols; q++) {
          const v = g[(l + 1) * H + q]!;
          let h = 0;
          for (let i = 0; i < d; i++) h += Wo[n * d + i]! * v[i]!;
          hs[n * cols + q] = h;
        }
      }
    } else {
      const Bt = mem.f64(at.Bt, d * cols);
      for (let q = 0; q < cols; q++) {
        const v = g[(l + 1) * H + q]!;
        for (let i = 0; i < d; i++) Bt[i * cols + q] = v[i]!;
      }
      for (let n0 = 0; n0 < D; n0 += rowsPerRun * pool.threads) {
        throwIfCancelled(signal);
        const parts = Math.min(pool.threads, Math.ceil((D - n0) / rowsPerRun));
        pool.run(mem, 'vocab', 'dotColumns', parts, (p) => [at.A, d, n0 + p * rowsPerRun, Math.min(D, n0 + (p + 1) * rowsPerRun), at.Bt, cols, at.out]);
      }
    }
    for (let n = 0; n < D; n++) {
      if ((n & 127) === 0) throwIfCancelled(signal);
      const j = l * D + n;
      for (let l2 = l + 1; l2 < L; l2++) {
        for (let hd = 0; hd < H; hd++) {
          const h = hs[n * cols + (l2 - l - 1) * H + hd]!;
          const s = sigma[l2 * H + hd]!;
          const zz = s > 0 ? h / s : 0;
          if (!(zz <= z[j]!)) {
            z[j] = zz;
            head[j] = `L${l2}.H${hd}`;
          }
          if (Math.abs(h) >= floor) {
            pairs.push({ layer: l, neuron: n, head: `L${l2}.H${hd}`, score: zz, raw: h });
            // Keep the top by |h| only: GPT-2 small has ~2.4M neuron-head pairs.
            if (pairs.length >= 4 * keep) floor = trimByAbsH(pairs, keep);
          }
        }
      }
    }
  }
  forgetMemory(mem);
  trimByAbsH(pairs, keep);
  return { z, head, pairs, query };
}

/**
 * k̄ = mean over p = 1 … n−1 of R_{−p}·k for every head's slice of `key` [H·d_head]: on each
 * rotary pair (j, j + dims/2), R_{−p} turns (a, b) into (a·cos pθ_j + b·sin pθ_j,
 * b·cos pθ_j − a·sin pθ_j), the inverse of HF's x·cos + rotate_half(x)·sin; the other dims pass.
 */
export function meanRotatedKey(key: Float64Array, nHead: number, dHead: number, rotary: Rotary, n: number): Float64Array {
  const half = rotary.dims / 2;
  const C = new Float64Array(half);
  const S = new Float64Array(half);
  for (let j = 0; j < half; j++) {
    const theta = 1 / rotary.base ** ((2 * j) / rotary.dims);
    for (let p = 1; p < n; p++) {
      C[j]! += Math.cos(p * theta);
      S[j]! += Math.sin(p * theta);
    }
    C[j]! /= n - 1;
    S[j]! /= n - 1;
  }
  const out = Float64Array.from(key);
  for (let h = 0; h < nHead; h++) {
    const o = h * dHead;
    for (let j = 0; j < half; j++) {
      const a = key[o + j]!;
      const b = key[o + j + half]!;
      out[o + j] = a * C[j]! + b * S[j]!;
      out[o + j + half] = b * C[j]! - a * S[j]!;
    }
  }
  return out;
}

/**
 * Sorts pairs by |h| (largest first; ties by z-score, then order), keeps the first `keep`, and
 * returns the smallest kept |h| (what a new pair must beat once the list is full).
 */
export function trimByAbsH(pairs: AttentionPair[], keep: number): number {
  pairs.sort((a, b) => Math.abs(b.raw) - Math.abs(a.raw) || b.score - a.score);
  pairs.length = Math.min(pairs.length, keep);
  return pairs.length < keep ? -1 : Math.abs(pairs[pairs.length - 1]!.raw);
}

/** Every role of every neuron of one checkpoint, given its weight statistics and activation kurtosis. */
export function neuronRoles(w: ResolvedWeights, ws: WeightStats, kurt: ArrayLike<number>, opts: RoleOptions = {}): NeuronRoles {
  const c = w.config;
  const d = c.nEmbd;
  const R = opts.directions ?? 1024;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(R) || R < 16) throw new EngineError(`roles: need at least 16 random directions, got ${R}`);
  const dirs = randomDirections(seed, R, d);
  throwIfCancelled(opts.signal);
  const { M, mu } = unembedMoments(unitUnembedRows(w), d, opts.signal);
  let min = Infinity;
  let max = -Infinity;
  for (let r = 0; r < R; r++) {
    if ((r & 63) === 0) throwIfCancelled(opts.signal);
    const v = directionVocabVar(dirs.subarray(r * d, (r + 1) * d), M, mu);
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  throwIfCancelled(opts.signal);
  const mlp = processMlpWeights(w);
  const wOutUnit = mlp.wOut.map((Wo) => {
    const u = Float64Array.from(Wo);
    for (let n = 0; n < c.dMlp; n++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += u[n * d + i]! ** 2;
      const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      for (let i = 0; i < d; i++) u[n * d + i]! *= inv;
    }
    return u;
  });
  throwIfCancelled(opts.signal);
  const attn = attentionScores(w, wOutUnit, dirs, opts.topPairs ?? ROLE_SETTINGS.attentionPairs.default, opts.signal, opts.bos, opts.contextLength);
  const rules = applyRoleRules(ws, kurt, { min, max }, attn, opts);
  return {
    ...rules,
    attnHead: attn.head,
    attnScore: attn.z,
    attention: attn.pairs,
    attentionQuery: attn.query,
    baseline: { directions: R, vocabVarMin: min, vocabVarMax: max, seed },
  };
}
