// Dumps exact and sub-screen moments for bench/diag-sim.ts (see there): exact ρ moments of the
// 4 pairs a vs b..e over the first T held-out tokens, and of 4 interleaved sub-screens of every
// 4th batch, centred, to /tmp/diag (~650 MB). Reads CrossMoments internals; a diagnostic.
//   node --import tsx bench/diag-screen.ts [T = 200000]
import { writeFileSync, readFileSync } from 'node:fs';
import { CrossMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import type { ActivationBatch } from '../src/engine/analysis/types';
import { openModel } from '../src/engine/runtime';

const TOKENS = Number(process.argv[2] ?? 200000);
const SUBS = 4; // stride 4, 4 interleaved sub-screens: sample index q = b/4, sub = q % 4
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
  const mk = (m: number) => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm });
  const exact = [1, 2, 3, 4].map(mk);
  const subs = Array.from({ length: SUBS }, () => [1, 2, 3, 4].map(mk));
  const t0 = Date.now();
  for (let b = 0; b < nBatches; b++) {
    const rows: number[][] = [];
    for (let r = b * 8; r < Math.min(nRows, (b + 1) * 8); r++) rows.push([50256, ...Array.from(ids.subarray(r * (ROW - 1), (r + 1) * (ROW - 1)))]);
    const flat = rows.flat();
    const keptIndex = Int32Array.from(flat.flatMap((id, i) => (id === 50256 || id === 198 ? [] : [i])));
    const acts: Float32Array[] = [];
    for (const m of models) {
      const run = await m.runTokens(rows, { hooks: ['post'] });
      const kept = new Float32Array(keptIndex.length * N);
      keptIndex.forEach((t, k) => {
        for (let l = 0; l < L; l++) kept.set(run.hookPost[l]!.subarray(t * D, (t + 1) * D), k * N + l * D);
      });
      acts.push(kept);
    }
    const T = keptIndex.length;
    const B: ActivationBatch = { batchIndex: b, rows, rowStart: 0, offsets: [0, T], nTokens: T, keep: new Uint8Array(T).fill(1), keptIndex, nKept: T, models: acts.map((a) => ({ pre: a, post: a, keptPre: a, keptPost: a })) };
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
