// Offline simulation of fast mode's candidate rules (not a benchmark; figures in BENCHMARKS.md,
// "Correlation analysis"): reads the exact and sub-screen moments that bench/diag-screen.ts dumps
// to /tmp/diag (200k held-out tokens, 4 pairs, 4 sub-screens of every 4th batch) and counts, per
// rule, neurons whose best candidate is > 1e-3 below the exact max_corr, and candidates per neuron.
//   node --import tsx bench/diag-screen.ts 200000 && node --import tsx bench/diag-sim.ts [top-j]
// S4: every 4th batch (4 sub-screens), S8: every 8th (2); rowzZ: pooled margin max(m, Z·√2·σ_i).
import { readFileSync } from 'node:fs';
const N = 2048;
const TOPJ = Number(process.argv[2] ?? 16);
let C1 = 0;
interface Mom { n: number; mx: Float64Array; vx: Float64Array; my: Float64Array; vy: Float64Array; C: Float64Array }
function load(name: string): Mom {
  const b = readFileSync(`/tmp/diag/${name}.bin`);
  const f = new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
  let o = 1;
  const take = (k: number) => { const a = f.slice(o, o + k); o += k; return a; };
  return { n: f[0]!, mx: take(N), vx: take(N), my: take(N), vy: take(N), C: take(N * N) };
}
function pool(ms: Mom[]): Mom {
  if (ms.length === 1) return ms[0]!;
  const n = ms.reduce((s, m) => s + m.n, 0);
  const mx = new Float64Array(N), my = new Float64Array(N), vx = new Float64Array(N), vy = new Float64Array(N), C = new Float64Array(N * N);
  for (const m of ms) for (let i = 0; i < N; i++) { mx[i] += (m.n * m.mx[i]!) / n; my[i] += (m.n * m.my[i]!) / n; }
  for (const m of ms) {
    for (let i = 0; i < N; i++) { vx[i] += m.vx[i]! + m.n * (m.mx[i]! - mx[i]!) ** 2; vy[i] += m.vy[i]! + m.n * (m.my[i]! - my[i]!) ** 2; }
    for (let i = 0; i < N; i++) { const dx = m.n * (m.mx[i]! - mx[i]!); for (let j = 0; j < N; j++) C[i * N + j] += m.C[i * N + j]! + dx * (m.my[j]! - my[j]!); }
  }
  return { n, mx, vx, my, vy, C };
}
function rho(m: Mom): Float64Array {
  const R = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    if (!(m.vx[i]! > 0)) continue;
    for (let j = 0; j < N; j++) if (m.vy[j]! > 1e-4 * (m.vy[j]! + m.n * m.my[j]! ** 2)) R[i * N + j] = Math.max(-1, Math.min(1, m.C[i * N + j]! / Math.sqrt(m.vx[i]! * m.vy[j]!)));
  }
  return R;
}
const pairs = [0, 1, 2, 3];

for (const p of pairs) {
  const E = rho(load(`exact-${p}`));
  const subs = [0, 1, 2, 3].map((k) => load(`sub${k}-${p}`));
  const subR = subs.map(rho);
  const cache = new Map<string, Float64Array>();
  const R = (g: number[]) => { const k = g.join(','); if (!cache.has(k)) cache.set(k, g.length === 1 ? subR[g[0]!]! : rho(pool(g.map((i) => subs[i]!)))); return cache.get(k)!; };
  const eBest = new Float64Array(N), eArg = new Int32Array(N);
  for (let i = 0; i < N; i++) { let b = -Infinity, a = -1; for (let j = 0; j < N; j++) if (E[i * N + j]! > b) { b = E[i * N + j]!; a = j; } eBest[i] = b; eArg[i] = a; }
  const evalRule = (label: string, pooled: number[], groups: number[][], margin: number, z = 0, union = true, rz = 0) => {
    const P = R(pooled);
    const G = groups.map(R);
    let miss = 0, dmax = 0, cands = 0, worst = -1;
    for (let i = 0; i < N; i++) {
      const cand = new Set<number>();
      const rows = union ? [P, ...G] : [P];
      let mi = margin;
      if (rz > 0) {
        const K = G.length;
        const idx = [...Array(N).keys()].sort((a, b) => P[i * N + b]! - P[i * N + a]!).slice(0, TOPJ);
        let v = 0;
        for (const j of idx) { let s1 = 0, s2 = 0; for (const M of G) { s1 += M[i * N + j]!; s2 += M[i * N + j]! ** 2; } v += Math.max(0, s2 / K - (s1 / K) ** 2) * K / (K - 1); }
        const sig = Math.sqrt(v / idx.length / K);
        mi = Math.max(margin, rz * Math.SQRT2 * sig);
      }
      if (C1 > 0) { let b = -Infinity; for (let j = 0; j < N; j++) b = Math.max(b, P[i * N + j]!); mi = Math.max(mi, C1 * (1 - b * b)); }
      for (const M of rows) {
        let b = -Infinity; for (let j = 0; j < N; j++) b = Math.max(b, M[i * N + j]!);
        for (let j = 0; j < N; j++) if (M[i * N + j]! >= b - (M === P ? mi : margin)) cand.add(j);
      }
      if (z > 0 && G.length > 1) {
        // pooled ρ plus z·(spread across groups)/sqrt(K) against the best's lower bound
        const K = G.length;
        const se = new Float64Array(N);
        for (let j = 0; j < N; j++) { let s = 0, s2 = 0; for (const M of G) { s += M[i * N + j]!; s2 += M[i * N + j]! ** 2; } const v = Math.max(0, s2 / K - (s / K) ** 2) * K / (K - 1); se[j] = Math.sqrt(v / K); }
        let lb = -Infinity; for (let j = 0; j < N; j++) lb = Math.max(lb, P[i * N + j]! - z * se[j]!);
        for (let j = 0; j < N; j++) if (P[i * N + j]! + z * se[j]! >= lb - margin) cand.add(j);
      }
      cands += cand.size;
      let b = -Infinity; for (const j of cand) b = Math.max(b, E[i * N + j]!);
      const d = eBest[i]! - b;
      if (d > 1e-3) miss++;
      if (d > dmax) { dmax = d; worst = i; }
    }
    console.log(`pair ${p} ${label}: misses ${miss}, max Δ ${dmax.toExponential(2)} (neuron ${worst}), candidates/row ${(cands / N).toFixed(1)}`);
    return worst;
  };
  // The old rule (pooled screen, fixed margin) at every 4th and every 8th batch, with its worst neuron.
  const w = evalRule('S4 pooled m.05', [0, 1, 2, 3], [], 0.05);
  evalRule('S8 pooled m.05', [0, 2], [], 0.05);
  // diagnose the worst
  const P = R([0, 1, 2, 3]);
  for (const i of [w]) {
    if (i < 0) continue;
    let pb = -Infinity, pa = -1; for (let j = 0; j < N; j++) if (P[i * N + j]! > pb) { pb = P[i * N + j]!; pa = j; }
    const js = eArg[i]!;
    console.log(`  neuron ${i} (L${i >> 9}): exact partner ${js} exact ${E[i * N + js]!.toFixed(4)} screened ${P[i * N + js]!.toFixed(4)} subs ${subR.map((M) => M[i * N + js]!.toFixed(3)).join(' ')}; screen best ${pa} exact ${E[i * N + pa]!.toFixed(4)} screened ${pb.toFixed(4)} subs ${subR.map((M) => M[i * N + pa]!.toFixed(3)).join(' ')}`);
  }
  for (const c1 of [0, 0.1, 0.15]) { C1 = c1; evalRule(`S4 union4 m.05 + rowz3 + ${c1}(1-b²)`, [0, 1, 2, 3], [[0], [1], [2], [3]], 0.05, 0, true, 3); }
  C1 = 0.15; evalRule(`S8 union2 m.05 + rowz3 + 0.15(1-b²)`, [0, 2], [[0], [2]], 0.05, 0, true, 3);
  C1 = 0;
}
