// Fast vs exact at T held-out tokens, 4 pairs: per pair the neuron with the largest |Δ baseline|,
// and whether the exact rotated partner was among its candidates. A diagnostic.
//   node --import tsx bench/diag-base.ts [T = 40960]
import { CrossMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import { screenEvery } from '../src/engine/analysis/plan';
import { heldoutBatches, ROW } from './heldout';
import { openModel } from '../src/engine/runtime';
const TOKENS = Number(process.argv[2] ?? 40960);
const L = 4, D = 512, N = L * D;
const shape = { nLayers: L, dMlp: D };
async function main() {
  const gemm = new Gemm({ threads: 2 });
  const dirs = ['a', 'b', 'c', 'd', 'e'].map((s) => `models/tiny-gpt2-${s}`);
  const models = await Promise.all(dirs.map((d) => openModel(d, { threads: 2 })));
  const { nRows, nBatches, batch } = heldoutBatches(models, TOKENS);
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
