// Fast mode's screen at 200k held-out tokens as the pipeline reads it (every k-th batch, 3
// sub-screens) against the exact ρ of bench/diag-screen.ts's dumps: prints every neuron whose
// candidates miss the exact max_corr by > 1e-3, with its screened and sub-screen ρ. A diagnostic.
import { readFileSync } from 'node:fs';
import { CrossMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import { screenEvery } from '../src/engine/analysis/plan';
import { heldoutBatches, ROW } from './heldout';
import { openModel } from '../src/engine/runtime';
const TOKENS = 200000;
const L = 4, D = 512, N = L * D;
const shape = { nLayers: L, dMlp: D };
function exactRho(p: number): Float64Array {
  const b = readFileSync(`/tmp/diag/exact-${p}.bin`);
  const f = new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
  const n = f[0]!;
  const vx = f.subarray(1 + N, 1 + 2 * N), my = f.subarray(1 + 2 * N, 1 + 3 * N), vy = f.subarray(1 + 3 * N, 1 + 4 * N), C = f.subarray(1 + 4 * N);
  const R = new Float64Array(N * N);
  for (let i = 0; i < N; i++) { if (!(vx[i]! > 0)) continue; for (let j = 0; j < N; j++) if (vy[j]! > 1e-4 * (vy[j]! + n * my[j]! ** 2)) R[i * N + j] = C[i * N + j]! / Math.sqrt(vx[i]! * vy[j]!); }
  return R;
}
async function main() {
  const gemm = new Gemm({ threads: 2 });
  const models = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((s) => openModel(`models/tiny-gpt2-${s}`, { threads: 2 })));
  const { nRows, nBatches, batch } = heldoutBatches(models, TOKENS);
  const fa = [1, 2, 3, 4].map((m) => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm, mode: 'fast' }));
  const every = screenEvery(nRows * ROW);
  for (let b = 0; b < nBatches; b += every) {
    const B = await batch(b);
    for (const c of fa) await c.screen(B);
  }
  for (let p = 0; p < 4; p++) {
    const c = fa[p] as any;
    const Dn = c.dense;
    Dn.finalize();
    const subs = Dn.subs.map((u: any) => ({ xy: u.xy.slice(), sy: u.sy.slice(), syy: u.syy.slice(), n: u.xs.n, sx: u.xs.sx.slice(), sxx: u.xs.sxx.slice() }));
    const f = await c.startFast();
    const E = exactRho(p);
    const rho = (s: any, i: number, j: number) => { const n = s.n; const cov = s.xy[i * N + j] - (s.sx[i] * s.sy[j]) / n; return cov / Math.sqrt((s.sxx[i] - s.sx[i] ** 2 / n) * (s.syy[j] - s.sy[j] ** 2 / n)); };
    const pooled = { n: subs.reduce((a: number, s: any) => a + s.n, 0), xy: { length: 0 } as any, sx: new Float64Array(N), sxx: new Float64Array(N), sy: new Float64Array(N), syy: new Float64Array(N) };
    for (const s of subs) for (let i = 0; i < N; i++) { pooled.sx[i] += s.sx[i]; pooled.sxx[i] += s.sxx[i]; pooled.sy[i] += s.sy[i]; pooled.syy[i] += s.syy[i]; }
    const prho = (i: number, j: number) => { let xy = 0; for (const s of subs) xy += s.xy[i * N + j]; const n = pooled.n; return (xy - pooled.sx[i] * pooled.sy[j] / n) / Math.sqrt((pooled.sxx[i] - pooled.sx[i] ** 2 / n) * (pooled.syy[j] - pooled.sy[j] ** 2 / n)); };
    for (let i = 0; i < N; i++) {
      let eb = -Infinity, ea = -1; for (let j = 0; j < N; j++) if (E[i * N + j]! > eb) { eb = E[i * N + j]!; ea = j; }
      let fb = -Infinity, fa2 = -1; for (let c2 = f.rpP[i]; c2 < f.rpP[i + 1]; c2++) { const j = f.clP[c2]; if (E[i * N + j]! > fb) { fb = E[i * N + j]!; fa2 = j; } }
      if (eb - fb > 1e-3) {
        let pb = -Infinity, pa = -1; for (let j = 0; j < N; j++) { const r = prho(i, j); if (r > pb) { pb = r; pa = j; } }
        const sparsity = (s: any) => ((s.sxx[i] - s.sx[i] ** 2 / s.n) / s.n).toExponential(2);
        console.log(`pair ${p} neuron ${i}: exact best ${ea} ${eb.toFixed(4)}, fast best ${fa2} ${fb.toFixed(4)}, ${f.rpP[i + 1] - f.rpP[i]} candidates; pooled screen: true ${prho(i, ea).toFixed(3)} best ${pa} ${pb.toFixed(3)} (exact ${E[i * N + pa]!.toFixed(3)}); subs true ${subs.map((s: any) => rho(s, i, ea).toFixed(3)).join(' ')} | best-of-pooled ${subs.map((s: any) => rho(s, i, pa).toFixed(3)).join(' ')}; var x per sub ${subs.map(sparsity).join(' ')}`);
      }
    }
  }
  for (const m of models) await m.close();
  await gemm.release();
}
main().catch((e) => { console.error(e); process.exit(1); });
