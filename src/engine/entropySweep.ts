/**
 * The entropy intervention of last-layer neurons from one forward of the rows, not one per value.
 *
 * Fixing neuron n of the last layer to v changes the final residual by δ·w (δ = v − the neuron's
 * own hook_post at that position, w = its W_out row) and nothing else before ln_f. Through the
 * LayerNorm and the LM head, with rc = r − mean(r), wc = w − mean(w), σ = sqrt(|rc|²/d + eps) and
 * σ' = sqrt(|rc + δ·wc|²/d + eps):
 *   z'_v = ((rc + δ·wc)∘g)·E_v / σ' + β·E_v = α·z_v + γ·b_v + (1 − α)·c_v,
 *   α = σ/σ', γ = δ/σ', b_v = (wc∘g)·E_v, c_v = β·E_v
 * (E the unembedding rows, g and β ln_f's weight and bias; no supported architecture has an
 * unembedding bias). So one forward gives every value's logits, and the WebAssembly kernel
 * (kernels/assembly/entropy.ts, on every core) turns them into the entropy and the loss. What the
 * scorer ran per value — the layers, the [tokens × d_model]·[d_model × vocab] LM head and four
 * onnxruntime passes over [tokens × vocab] — is done once.
 *
 * The same quantities as the scorer's fixed forward, up to float32 rounding in another order
 * (entropy-sweep test: per token against the scorer, which the torch goldens check). σ' and the
 * final-LN scale come from float64 sums over the residual (two-pass, as TransformerLens' hook_scale).
 */
// Must run before onnxruntime-node creates its environment: see ortTelemetry.ts.
import './ortTelemetry';
import type * as ort from 'onnxruntime-node';
import { checkNeuron, hookName, LOGITS, type NeuronRef, RESID_FINAL } from './arch/common';
import { type ArchWeights, buildGraph, mlpTensors, unembedTensors } from './arch/index';
import { CancellationSignal, EngineError } from './errors';
import { KernelMemory } from './kernels';
import { kernelPool } from './kernels/pool';
import { createSession, planBatches, releaseSessions, rowOffsets, runInBatches, type ForwardOptions } from './runtime';
import { checkFinite, type TokenScores } from './scorer';

export interface SweepOptions extends ForwardOptions {
  signal?: CancellationSignal;
  /** The checkpoint, for messages. */
  source?: string;
}

export interface SweepResult {
  /** The unfixed forward's scores. */
  base: TokenScores;
  /** byTarget[i][j]: targets[i] fixed to values[j]. */
  byTarget: TokenScores[][];
}

/** Whether the sweep applies: a neuron of the last layer. */
export const sweepable = (w: ArchWeights, n: NeuronRef): boolean => n.layer === w.config.nLayer - 1;

// The kernel works in base 2 (kernels/assembly/entropy.ts).
const LOG2E = Math.LOG2E;

// The logits of one onnxruntime run, and their copy in the kernel's memory: ~128 MB each.
const LOGITS_BYTES = 128 * 1024 * 1024;

type EntropyRows = (
  k0: number, z: number, P: number, V: number, t0: number, t1: number, K: number,
  coef: number, bvec: number, bIndex: number, c: number, target: number,
  row: number, sums: number, pick: number,
) => number;

/**
 * Per-token scores of `rows` (token ids, BOS first) unfixed and with each of `targets` (all in
 * the last layer) fixed to each of `values`. Cancellation is checked between onnxruntime runs.
 */
export async function entropySweep(
  weights: ArchWeights,
  rows: readonly (readonly number[])[],
  targets: readonly NeuronRef[],
  values: readonly number[],
  opts: SweepOptions = {},
): Promise<SweepResult> {
  const cfg = weights.config;
  const source = opts.source ?? 'the model';
  for (const t of targets) {
    checkNeuron(cfg, t);
    if (!sweepable(weights, t)) throw new EngineError(`the entropy sweep is for last-layer neurons; L${t.layer}.N${t.neuron} is not in layer ${cfg.nLayer - 1}`);
  }
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new EngineError(`intervention value ${bad} is not a finite number`);
  const L = cfg.nLayer;
  const d = cfg.nEmbd;
  const V = cfg.vocabSize;
  const D = cfg.dMlp;
  const eps = cfg.layerNormEpsilon;
  const nT = targets.length;
  const nV = values.length;
  const K = 1 + nT * nV;

  const offsets = rowOffsets(rows, cfg);
  const nTokens = offsets[rows.length]!;
  const scores = (): TokenScores => ({ offsets, nTokens, nll: new Float32Array(nTokens), entropy: new Float32Array(nTokens), lnScale: new Float32Array(nTokens) });
  const out: SweepResult = { base: scores(), byTarget: targets.map(() => values.map(scores)) };
  const byCombo = [out.base, ...out.byTarget.flat()];
  if (rows.length === 0) return out;

  // Per target: wc (centred W_out row) and |wc|²/d; per vocabulary id: b (per target) and c, in float64.
  const wOut = mlpTensors(weights, L - 1).wOut; // [d_mlp × d_model]
  const wcs = targets.map((t) => {
    const w = wOut.subarray(t.neuron * d, (t.neuron + 1) * d);
    let mean = 0;
    for (let i = 0; i < d; i++) mean += w[i]!;
    mean /= d;
    const wc = Float64Array.from(w, (x) => x - mean);
    let ss = 0;
    for (let i = 0; i < d; i++) ss += wc[i]! * wc[i]!;
    return { wc, wc2: ss / d };
  });
  const { rows: E, lnWeight: g, lnBias: beta } = unembedTensors(weights);

  const batchTokens = opts.batchTokens ?? Math.max(1, Math.floor(LOGITS_BYTES / (4 * V)));
  const batches = planBatches(rows, batchTokens);
  const P = Math.max(...batches.map((b) => b.length * rows[b[0]!]!.length));
  const pool = kernelPool();
  const parts = Math.max(1, Math.min(pool.threads, P));

  const mem = new KernelMemory(0);
  const kernel = mem.exports<{ entropyRows: EntropyRows; constants: (k0: number) => void; CONSTANTS_BYTES: WebAssembly.Global }>('entropy');
  const at = {
    k0: mem.alloc(kernel.CONSTANTS_BYTES.value as number),
    z: mem.alloc(4 * P * V),
    b: mem.alloc(4 * nT * V),
    c: mem.alloc(4 * V),
    coef: mem.alloc(12 * K * P),
    bIndex: mem.alloc(4 * K),
    target: mem.alloc(4 * P),
    row: mem.alloc(4 * parts * V),
    sums: mem.alloc(16 * K * P),
    pick: mem.alloc(4 * K * P),
  };
  {
    const b = mem.f32(at.b, nT * V);
    const c = mem.f32(at.c, V);
    const gw = wcs.map(({ wc }) => Float64Array.from(wc, (x, i) => x * g[i]!));
    for (let v = 0; v < V; v++) {
      const e = E.subarray(v * d, (v + 1) * d);
      let cv = 0;
      for (let i = 0; i < d; i++) cv += beta[i]! * e[i]!;
      c[v] = cv;
      for (let j = 0; j < nT; j++) {
        const gwj = gw[j]!;
        let bv = 0;
        for (let i = 0; i < d; i++) bv += gwj[i]! * e[i]!;
        b[j * V + v] = bv;
      }
    }
    const bIndex = mem.i32(at.bIndex, K);
    for (let k = 1; k < K; k++) bIndex[k] = Math.floor((k - 1) / nV);
  }
  kernel.constants(at.k0);

  const post = hookName(L - 1, 'post');
  const fetches = [LOGITS, RESID_FINAL, post];
  const tempDirs: string[] = [];
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  const session = createSession(buildGraph(weights, { logits: true, residFinal: true }), fetches, opts, tempDirs);
  sessions.set('sweep', session);
  try {
    await runInBatches(
      await session,
      rows,
      batches,
      fetches,
      opts.signal,
      (res, batch, S) => {
        const Pb = batch.length * S;
        mem.f32(at.z, Pb * V).set(res[LOGITS]!.data as Float32Array);
        const r = res[RESID_FINAL]!.data as Float32Array;
        const acts = res[post]!.data as Float32Array;
        const coef = mem.f32(at.coef, 3 * K * Pb);
        const target = mem.i32(at.target, Pb);
        const lnScale = new Float64Array(K * Pb);
        target.fill(-1);
        batch.forEach((row, bi) => {
          const ids = rows[row]!;
          for (let t = 0; t + 1 < ids.length; t++) target[bi * S + t] = ids[t + 1]!;
        });
        for (let p = 0; p < Pb; p++) {
          const x = r.subarray(p * d, (p + 1) * d);
          let mean = 0;
          for (let i = 0; i < d; i++) mean += x[i]!;
          mean /= d;
          let ss = 0;
          for (let i = 0; i < d; i++) ss += (x[i]! - mean) ** 2;
          const var0 = ss / d;
          const sigma = Math.sqrt(var0 + eps);
          coef.set([LOG2E, 0, 0], 3 * p);
          lnScale[p] = sigma;
          for (let j = 0; j < nT; j++) {
            const { wc, wc2 } = wcs[j]!;
            let dot = 0;
            for (let i = 0; i < d; i++) dot += (x[i]! - mean) * wc[i]!;
            dot /= d;
            const a = acts[p * D + targets[j]!.neuron]!;
            for (let q = 0; q < nV; q++) {
              const delta = values[q]! - a;
              const s = Math.sqrt(var0 + 2 * delta * dot + delta * delta * wc2 + eps);
              const k = 1 + j * nV + q;
              const alpha = sigma / s;
              coef[3 * (k * Pb + p)] = LOG2E * alpha;
              coef[3 * (k * Pb + p) + 1] = (LOG2E * delta) / s;
              coef[3 * (k * Pb + p) + 2] = LOG2E * (1 - alpha);
              lnScale[k * Pb + p] = s;
            }
          }
        }
        const ranges = Array.from({ length: Math.min(parts, Pb) }, (_, q, n = Math.min(parts, Pb)) => [Math.round((Pb * q) / n), Math.round((Pb * (q + 1)) / n)]);
        pool.run(mem, 'entropy', 'entropyRows', ranges.length, (q) => [
          at.k0, at.z, Pb, V, ranges[q]![0]!, ranges[q]![1]!, K, at.coef, at.b, at.bIndex, at.c, at.target, at.row + 4 * V * q, at.sums, at.pick,
        ]);
        const sums = mem.f64(at.sums, 2 * K * Pb);
        const pick = mem.f32(at.pick, K * Pb);
        batch.forEach((row, bi) => {
          const n = rows[row]!.length;
          const o = offsets[row]!;
          for (let k = 0; k < K; k++) {
            const s = byCombo[k]!;
            for (let t = 0; t < n; t++) {
              const q = k * Pb + bi * S + t;
              const logS = Math.log(sums[2 * q]!);
              s.entropy[o + t] = logS - (Math.LN2 * sums[2 * q + 1]!) / sums[2 * q]!;
              s.nll[o + t] = t + 1 < n ? logS - Math.LN2 * pick[q]! : 0;
              s.lnScale[o + t] = lnScale[q]!;
            }
          }
        });
        return false;
      },
    );
  } finally {
    await releaseSessions(sessions, tempDirs);
  }
  byCombo.forEach((s, k) => {
    const t = targets[Math.floor((k - 1) / nV)];
    checkFinite(s, source, k === 0 || !t ? '' : ` with L${t.layer}.N${t.neuron} fixed to ${values[(k - 1) % nV]}`);
  });
  return out;
}
