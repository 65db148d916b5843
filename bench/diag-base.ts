// Fast vs exact at T held-out tokens, 4 pairs: per pair the neuron with the largest |Δ baseline|,
// and whether the exact rotated partner was among its candidates. A diagnostic.
//   node --import tsx bench/diag-base.ts [T = 40960]
import { readFileSync } from 'node:fs';
import { CrossMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import { screenEvery } from '../src/engine/analysis/plan';
import type { ActivationBatch } from '../src/engine/analysis/types';
import { openModel } from '../src/engine/runtime';
const TOKENS = Number(process.argv[2] ?? 40960);
const L = 4, D = 512, N = L * D;
const shape = { nLayers: L, dMlp: D };
async function main() {
  const gemm = new Gemm({ threads: 2 });
  const dirs = ['a', 'b', 'c', 'd', 'e'].map((s) => `models/tiny-gpt2-${s}`);
  const buf = readFileSync('models/corpus/heldout.tokens.bin');
  const ids = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1);
  const ROW = 128;
  const nRows = Math.min(Math.floor(TOKENS / ROW), Math.floor(ids.length / (ROW - 1)));
  const models = await Promise.all(dirs.map((d) => openModel(d, { threads: 2 })));
  const nBatches = Math.ceil(nRows / 8);
  const batch = async (b: number): Promise<ActivationBatch> => {
    const rows: number[][] = [];
    for (let r = b * 8; r < Math.min(nRows, (b + 1) * 8); r++) rows.push([50256, ...Array.from(ids.subarray(r * (ROW - 1), (r + 1) * (ROW - 1)))]);
    const flat = rows.flat();
    const keptIndex = Int32Array.from(flat.flatMap((id, i) => (id === 50256 || id === 198 ? [] : [i])));
    const acts: Float32Array[] = [];
    for (const m of models) {
      const run = await m.runTokens(rows, { hooks: ['post'] });
      const kept = new Float32Array(keptIndex.length * N);
      keptIndex.forEach((t, k) => { for (let l = 0; l < L; l++) kept.set(run.hookPost[l]!.subarray(t * D, (t + 1) * D), k * N + l * D); });
      acts.push(kept);
    }
    const T = keptIndex.length;
    return { batchIndex: b, rows, rowStart: 0, offsets: [0, T], nTokens: T, keep: new Uint8Array(T).fill(1), keptIndex, nKept: T, models: acts.map((a) => ({ pre: a, post: a, keptPre: a, keptPost: a })) };
  };
  const ex = [1, 2, 3, 4].map((m) => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm }));
  const fa = [1, 2, 3, 4].map((m) => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm, mode: 'fast' }));
  const every = screenEvery(nRows * ROW);
  for (let b = 0; b < nBatches; b += every) { const B = await batch(b); for (const c of fa) await c.screen(B); }
  for (let b = 0; b < nBatches; b++) { const B = await batch(b); for (const c of ex) await c.add(B); for (const c of fa) await c.add(B); }
  for (let p = 0; p < 4; p++) {
    const f = (fa[p] as any).fast;
    const rpR = Int32Array.from(f.rpR), clR = Int32Array.from(f.clR);
    const e = await ex[p]!.finish();
    const r = await fa[p]!.finish();
    let w = 0;
    for (let i = 0; i < N; i++) if (Math.abs(r.baseline[i]! - e.baseline[i]!) > Math.abs(r.baseline[w]! - e.baseline[w]!)) w = i;
    const cands = Array.from(clR.subarray(rpR[w]!, rpR[w + 1]!));
    console.log(`pair ${p}: neuron ${w} exact baseline ${e.baseline[w]} (k ${e.baselinePartner[w]}) fast ${r.baseline[w]} (k ${r.baselinePartner[w]}); exact k in candidates: ${cands.includes(e.baselinePartner[w]!)}; ${cands.length} candidates; maxCorr ${e.maxCorr[w]}`);
  }
  for (const m of models) await m.close();
  await gemm.release();
}
main().catch((e) => { console.error(e); process.exit(1); });
