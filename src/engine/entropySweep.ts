/**
 * The entropy intervention: every neuron and value of a sweep on one unfixed forward of the rows.
 *
 * Last-layer neurons need no other forward. Fixing neuron n of the last layer to v changes the final residual by δ·w (δ = v − the neuron's
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
 * A neuron of an earlier layer l moves the residual after layer l by δ·w just the same, but the
 * layers above are not linear: each value runs the suffix of the forward from layer l + 1 on that
 * residual (a graph that starts there, GraphOptions.startLayer), not the layers below it again, and
 * the same kernel turns its logits into the scores (instead of onnxruntime's four passes).
 *
 * The same quantities as the scorer's fixed forward, up to float32 rounding in another order
 * (entropy-sweep test: per token against the fixed forward's logits in float64). σ' and the
 * final-LN scale come from float64 sums over the residual (two-pass, as TransformerLens' hook_scale).
 */
// Must run before onnxruntime-node creates its environment: see ortTelemetry.ts.
import './ortTelemetry';
import * as ort from 'onnxruntime-node';
import { checkNeuron, hookName, INPUT_IDS, LOGITS, type NeuronRef, RESID_FINAL, RESID_IN, residPostName } from './arch/common';
import { type ArchWeights, buildGraph, mlpTensors, unembedTensors } from './arch/index';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { KernelMemory } from './kernels';
import { kernelPool } from './kernels/pool';
import type { OnnxGraph } from './onnx';
import { batchIds, createSession, planBatches, releaseSessions, rowOffsets, type ForwardOptions } from './runtime';
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
 * Per-token scores of `rows` (token ids, BOS first) unfixed and with each of `targets` fixed to
 * each of `values`. Cancellation is checked between onnxruntime runs.
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
  for (const t of targets) checkNeuron(cfg, t);
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new EngineError(`intervention value ${bad} is not a finite number`);
  const L = cfg.nLayer;
  const d = cfg.nEmbd;
  const V = cfg.vocabSize;
  const D = cfg.dMlp;
  const eps = cfg.layerNormEpsilon;
  const nV = values.length;

  const offsets = rowOffsets(rows, cfg);
  const nTokens = offsets[rows.length]!;
  const scores = (): TokenScores => ({ offsets, nTokens, nll: new Float32Array(nTokens), entropy: new Float32Array(nTokens), lnScale: new Float32Array(nTokens) });
  const out: SweepResult = { base: scores(), byTarget: targets.map(() => values.map(scores)) };
  if (rows.length === 0) return out;

  // The affine kernel run's combos: the unfixed forward, then each last-layer neuron's values.
  const last = [...targets.keys()].filter((i) => targets[i]!.layer === L - 1);
  const earlier = [...targets.keys()].filter((i) => targets[i]!.layer < L - 1);
  const affine = [out.base, ...last.flatMap((i) => out.byTarget[i]!)];
  const K = affine.length;
  // A neuron's W_out row (the direction it writes to the residual stream).
  const wOutRow = (t: NeuronRef): Float32Array => mlpTensors(weights, t.layer).wOut.slice(t.neuron * d, (t.neuron + 1) * d);
  // Per last-layer neuron: wc (its W_out row centred) and |wc|²/d; per vocabulary id: b (per neuron) and c, in float64.
  const wcs = last.map((i) => {
    const w = wOutRow(targets[i]!);
    let mean = 0;
    for (let k = 0; k < d; k++) mean += w[k]!;
    mean /= d;
    const wc = Float64Array.from(w, (x) => x - mean);
    let ss = 0;
    for (let k = 0; k < d; k++) ss += wc[k]! * wc[k]!;
    return { wc, wc2: ss / d };
  });
  const { rows: E, lnWeight: g, lnBias: beta } = unembedTensors(weights);

  const batchTokens = opts.batchTokens ?? Math.max(1, Math.floor(LOGITS_BYTES / (4 * V)));
  const batches = planBatches(rows, batchTokens);
  const P = Math.max(...batches.map((b) => b.length * rows[b[0]!]!.length));
  const pool = kernelPool();
  const parts = Math.max(1, Math.min(pool.threads, P));

  const mem = new KernelMemory(0);
  const kernel = mem.exports<{ entropyRows: EntropyRows; constants: (k0: number) => void; CONSTANTS_BYTES: { value: number } }>('entropy');
  const at = {
    k0: mem.alloc(kernel.CONSTANTS_BYTES.value),
    z: mem.alloc(4 * P * V),
    b: mem.alloc(4 * Math.max(1, last.length) * V),
    c: mem.alloc(4 * V),
    coef: mem.alloc(12 * K * P),
    bIndex: mem.alloc(4 * K),
    target: mem.alloc(4 * P),
    row: mem.alloc(4 * parts * V),
    sums: mem.alloc(16 * K * P),
    pick: mem.alloc(4 * K * P),
  };
  {
    const b = mem.f32(at.b, last.length * V);
    const c = mem.f32(at.c, V);
    const gw = wcs.map(({ wc }) => Float64Array.from(wc, (x, k) => x * g[k]!));
    for (let v = 0; v < V; v++) {
      const e = E.subarray(v * d, (v + 1) * d);
      let cv = 0;
      for (let k = 0; k < d; k++) cv += beta[k]! * e[k]!;
      c[v] = cv;
      for (let j = 0; j < last.length; j++) {
        const gwj = gw[j]!;
        let bv = 0;
        for (let k = 0; k < d; k++) bv += gwj[k]! * e[k]!;
        b[j * V + v] = bv;
      }
    }
    const bIndex = mem.i32(at.bIndex, K);
    for (let k = 1; k < K; k++) bIndex[k] = Math.floor((k - 1) / nV);
  }
  kernel.constants(at.k0);

  /** The kernel over positions [0, Pb) and combos [0, Kb) of what is in memory, on every core; then the scores of each combo. */
  const score = (Pb: number, Kb: number, combos: readonly TokenScores[], lnScale: Float64Array, batch: readonly number[], S: number): void => {
    const n = Math.min(parts, Pb);
    pool.run(mem, 'entropy', 'entropyRows', n, (q) => [
      at.k0, at.z, Pb, V, Math.round((Pb * q) / n), Math.round((Pb * (q + 1)) / n), Kb, at.coef, at.b, at.bIndex, at.c, at.target, at.row + 4 * V * q, at.sums, at.pick,
    ]);
    const sums = mem.f64(at.sums, 2 * Kb * Pb);
    const pick = mem.f32(at.pick, Kb * Pb);
    batch.forEach((row, bi) => {
      const len = rows[row]!.length;
      const o = offsets[row]!;
      for (let k = 0; k < Kb; k++) {
        const s = combos[k]!;
        for (let t = 0; t < len; t++) {
          const q = k * Pb + bi * S + t;
          const logS = Math.log(sums[2 * q]!);
          s.entropy[o + t] = logS - (Math.LN2 * sums[2 * q + 1]!) / sums[2 * q]!;
          s.nll[o + t] = t + 1 < len ? logS - Math.LN2 * pick[q]! : 0;
          s.lnScale[o + t] = lnScale[q]!;
        }
      }
    });
  };
  /** Mean and variance (two-pass, float64) of position p's residual. */
  const moments = (r: Float32Array, p: number): [number, number] => {
    let mean = 0;
    for (let k = p * d; k < (p + 1) * d; k++) mean += r[k]!;
    mean /= d;
    let ss = 0;
    for (let k = p * d; k < (p + 1) * d; k++) ss += (r[k]! - mean) ** 2;
    return [mean, ss / d];
  };

  const earlierLayers = [...new Set(earlier.map((i) => targets[i]!.layer))];
  const fetches = [LOGITS, RESID_FINAL, ...new Set(targets.map((t) => hookName(t.layer, 'post'))), ...earlierLayers.map(residPostName)];
  const tempDirs: string[] = [];
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  const session = (key: string, graph: () => OnnxGraph, want: readonly string[]): Promise<ort.InferenceSession> => {
    let s = sessions.get(key);
    if (!s) sessions.set(key, (s = createSession(graph(), want, opts, tempDirs)));
    return s;
  };
  const clean = session('clean', () => buildGraph(weights, { logits: true, residFinal: true, residPost: earlierLayers }), fetches);
  // The forward from layer l + 1, one per layer with a neuron to sweep (made on first use).
  const suffix = (l: number): Promise<ort.InferenceSession> => session(`from ${l + 1}`, () => buildGraph(weights, { logits: true, residFinal: true, startLayer: l + 1 }), [LOGITS, RESID_FINAL]);
  const earlierRows = new Map(earlier.map((i) => [i, wOutRow(targets[i]!)]));
  // onnxruntime writes the logits into this buffer, reused by every run: a fresh [tokens × vocab]
  // output per run cost more in page faults than the layers (measured: bench/entropy.ts).
  const logits = new Float32Array(P * V);
  const into = (Pb: number): Record<string, ort.Tensor | null> => ({ [LOGITS]: new ort.Tensor('float32', logits.subarray(0, Pb * V), [Pb, V]) });
  try {
    const cleanSession = await clean;
    for (const [n, batch] of batches.entries()) {
      // A turn of the event loop between runs, so that a signal set from a handler is seen.
      if (opts.signal && n > 0) await new Promise((r) => setImmediate(r));
      throwIfCancelled(opts.signal);
      const S = rows[batch[0]!]!.length; // longest first
      const Pb = batch.length * S;
      const res = await cleanSession.run({ [INPUT_IDS]: batchIds(rows, batch, S) }, { ...Object.fromEntries(fetches.map((f) => [f, null])), ...into(Pb) });
      const target = mem.i32(at.target, Pb);
      target.fill(-1);
      batch.forEach((row, bi) => {
        const ids = rows[row]!;
        for (let t = 0; t + 1 < ids.length; t++) target[bi * S + t] = ids[t + 1]!;
      });
      // The unfixed forward and every last-layer neuron's values: one kernel run.
      mem.f32(at.z, Pb * V).set(logits.subarray(0, Pb * V));
      const r = res[RESID_FINAL]!.data as Float32Array;
      const coef = mem.f32(at.coef, 3 * K * Pb);
      const lnScale = new Float64Array(K * Pb);
      const lastPost = last.length ? (res[hookName(L - 1, 'post')]!.data as Float32Array) : undefined;
      for (let p = 0; p < Pb; p++) {
        const [mean, var0] = moments(r, p);
        const sigma = Math.sqrt(var0 + eps);
        coef.set([LOG2E, 0, 0], 3 * p);
        lnScale[p] = sigma;
        for (const [j, i] of last.entries()) {
          const { wc, wc2 } = wcs[j]!;
          let dot = 0;
          for (let k = 0; k < d; k++) dot += (r[p * d + k]! - mean) * wc[k]!;
          dot /= d;
          const a = lastPost![p * D + targets[i]!.neuron]!;
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
      score(Pb, K, affine, lnScale, batch, S);
      // Earlier neurons: per value, the forward above their layer on the moved residual.
      for (const i of earlier) {
        const t = targets[i]!;
        const w = earlierRows.get(i)!;
        const resid = res[residPostName(t.layer)]!.data as Float32Array;
        const acts = res[hookName(t.layer, 'post')]!.data as Float32Array;
        for (const [q, value] of values.entries()) {
          throwIfCancelled(opts.signal);
          const moved = new Float32Array(Pb * d);
          for (let p = 0; p < Pb; p++) {
            const delta = value - acts[p * D + t.neuron]!;
            for (let k = 0; k < d; k++) moved[p * d + k] = resid[p * d + k]! + delta * w[k]!;
          }
          const up = await (await suffix(t.layer)).run({ [INPUT_IDS]: batchIds(rows, batch, S), [RESID_IN]: new ort.Tensor('float32', moved, [Pb, d]) }, { [RESID_FINAL]: null, ...into(Pb) });
          mem.f32(at.z, Pb * V).set(logits.subarray(0, Pb * V));
          const rf = up[RESID_FINAL]!.data as Float32Array;
          const ln = new Float64Array(Pb);
          for (let p = 0; p < Pb; p++) {
            coef.set([LOG2E, 0, 0], 3 * p);
            ln[p] = Math.sqrt(moments(rf, p)[1] + eps);
          }
          up[RESID_FINAL]!.dispose();
          score(Pb, 1, [out.byTarget[i]![q]!], ln, batch, S);
        }
      }
      for (const f of fetches) if (f !== LOGITS) res[f]!.dispose();
    }
  } finally {
    await releaseSessions(sessions, tempDirs);
  }
  checkFinite(out.base, source, '');
  out.byTarget.forEach((byValue, i) => byValue.forEach((s, q) => checkFinite(s, source, ` with L${targets[i]!.layer}.N${targets[i]!.neuron} fixed to ${values[q]}`)));
  return out;
}
