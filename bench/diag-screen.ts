// Dumps exact and sub-screen moments for bench/diag-sim.ts (see there): exact ρ moments of the
// 4 pairs a vs b..e over the first T held-out tokens, and of 4 interleaved sub-screens of every
// 4th batch, centred, to /tmp/diag (~650 MB). Reads CrossMoments internals; a diagnostic.
//   node --import tsx bench/diag-screen.ts [T = 200000]
import { writeFileSync } from 'node:fs';
import { CrossMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import { heldoutBatches } from './heldout';
import { openModel } from '../src/engine/runtime';

const TOKENS = Number(process.argv[2] ?? 200000);
const SUBS = 4; // stride 4, 4 interleaved sub-screens: sample index q = b/4, sub = q % 4
const L = 4, D = 512, N = L * D;
const shape = { nLayers: L, dMlp: D };
async function main() {
  const gemm = new Gemm({ threads: 2 });
  const dirs = ['a', 'b', 'c', 'd', 'e'].map((s) => `models/tiny-gpt2-${s}`);
  const models = await Promise.all(dirs.map((d) => openModel(d, { threads: 2 })));
  const { nBatches, batch } = heldoutBatches(models, TOKENS);
  const mk = (m: number) => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm });
  const exact = [1, 2, 3, 4].map(mk);
  const subs = Array.from({ length: SUBS }, () => [1, 2, 3, 4].map(mk));
  const t0 = Date.now();
  for (let b = 0; b < nBatches; b++) {
    const B = await batch(b);
    for (const c of exact) await c.add(B);
    if (b % 4 === 0) for (const c of subs[(b / 4) % SUBS]!) await c.add(B);
    if (b % 20 === 0) console.error(`batch ${b}/${nBatches} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  // Dump moments: per accumulator n, mx (B), vx... as centred cov.
  const dump = (c: CrossMoments, name: string) => {
    const Dn = (c as any).dense;
    Dn.finalize();
    const kx: Float32Array = (c as any).kx;
    const n = Dn.xs.n;
    const sx = Dn.xs.sx, sxx = Dn.xs.sxx, sy = Dn.sy(), syy = Dn.syy();
    const C = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) C[i * N + j] = Dn.sxy[i * N + j] - (sx[i] * sy[j]) / n;
    const mx = new Float64Array(N), vx = new Float64Array(N), my = new Float64Array(N), vy = new Float64Array(N);
    for (let i = 0; i < N; i++) { mx[i] = sx[i] / n + kx[i]!; vx[i] = sxx[i] - (sx[i] * sx[i]) / n; my[i] = sy[i] / n; vy[i] = syy[i] - (sy[i] * sy[i]) / n; }
    const head = Float64Array.from([n]);
    writeFileSync(`/tmp/diag/${name}.bin`, Buffer.concat([head, mx, vx, my, vy, C].map((a) => Buffer.from(a.buffer))));
  };
  const { mkdirSync } = await import('node:fs');
  mkdirSync('/tmp/diag', { recursive: true });
  exact.forEach((c, p) => dump(c, `exact-${p}`));
  subs.forEach((s, k) => s.forEach((c, p) => dump(c, `sub${k}-${p}`)));
  console.error(`done ${((Date.now() - t0) / 1000).toFixed(0)} s, ${nBatches} batches`);
  for (const m of models) await m.close();
  await gemm.release();
}
main().catch((e) => { console.error(e); process.exit(1); });
