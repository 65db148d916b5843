// Fast mode's partner pick and rotated-neuron keep as kernels (src/engine/analysis/cross/finishKernels.ts pickPartners,
// kernels/assembly/pick.ts) against the JS loop of cross/fast.ts pickCandidates it replaced,
// written out here as it was: the same candidates in the same order and the same noise margins,
// bit for bit, on 1 and 3 threads, with and without sub-screens, with ties, rows constant on the
// screen or on a sub-screen, a sub-screen without tokens, margin 0, a cap above N_m, and more rows
// than one kernel call holds.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { pickPartners, RotatedKeep, type ScreenSums } from '../../src/engine/analysis/cross/finishKernels';
import { pick } from '../../src/engine/analysis/cross/fast';
import { clampCorr } from '../../src/engine/analysis/cross/common';
import { setKernelThreads } from '../../src/engine/kernels/pool';
import { rng } from '../helpers/synthetic-run';

after(() => setKernelThreads(0));

function corrRow(out: Float64Array, sxy: ArrayLike<number>, sx: number, sy: Float64Array, n: number, ix: number, iy: Float64Array): number {
  let best = -Infinity;
  for (let j = 0; j < out.length; j++) {
    const r = (sxy[j]! - (sx * sy[j]!) / n) * ix * iy[j]!;
    out[j] = !(r === r) ? 0 : r > 1 ? 1 : r < -1 ? -1 : r;
    if (out[j]! > best) best = out[j]!;
  }
  return best;
}

function spread(pooled: Float64Array, subs: readonly Float64Array[]): number {
  const K = subs.length;
  if (K < 2) return 0;
  const top = pick(pooled, -Infinity, 16);
  let v = 0;
  for (const j of top) {
    let s1 = 0;
    let s2 = 0;
    for (const r of subs) {
      s1 += r[j]!;
      s2 += r[j]! * r[j]!;
    }
    v += Math.max(0, s2 - (s1 * s1) / K) / (K - 1);
  }
  return Math.sqrt(v / top.length / K);
}

type Sub = ScreenSums & { xy: Float32Array; live: boolean };

/** pickCandidates' partner loop before the kernel. */
function reference(B: number, Nm: number, P: ScreenSums, subs: Sub[], o: { margin: number; z: number; low: number; cap: number }): { cand: number[][]; noise: Float64Array } {
  const { margin, z, low, cap } = o;
  const parts = subs.filter((u) => u.live);
  const cand: number[][] = [];
  const row = new Float64Array(Nm);
  const score = new Float64Array(Nm);
  const rks = parts.map(() => new Float64Array(Nm));
  const live: Float64Array[] = [];
  const bks = new Float64Array(parts.length);
  const pooled = new Float64Array(subs.length ? Nm : 0);
  const noise = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    if (P.ix[i] === 0) {
      cand.push([...Array(Nm).keys()]);
      continue;
    }
    let sxy: ArrayLike<number> = P.xy.subarray(i * Nm, (i + 1) * Nm);
    if (subs.length) {
      pooled.fill(0);
      for (const u of subs) {
        const x = u.xy.subarray(i * Nm, (i + 1) * Nm);
        for (let j = 0; j < Nm; j++) pooled[j]! += x[j]!;
      }
      sxy = pooled;
    }
    const best = corrRow(row, sxy, P.sx[i]!, P.sy, P.n, P.ix[i]!, P.iy);
    let nLive = 0;
    for (let k = 0; k < parts.length; k++) {
      const q = parts[k]!;
      if (q.ix[i] === 0) continue;
      bks[nLive] = corrRow(rks[k]!, q.xy.subarray(i * Nm, (i + 1) * Nm), q.sx[i]!, q.sy, q.n, q.ix[i]!, q.iy);
      live[nLive++] = rks[k]!;
    }
    noise[i] = z * Math.SQRT2 * spread(row, live.slice(0, nLive));
    const mi = margin > 0 ? Math.max(margin, noise[i]!, low * (1 - best * best)) : 0;
    if (mi > 0) for (let j = 0; j < Nm; j++) score[j] = (row[j]! - best) / mi;
    else for (let j = 0; j < Nm; j++) score[j] = row[j]! - best;
    for (let q = 0; q < nLive; q++) {
      const rk = live[q]!;
      const bk = bks[q]!;
      for (let j = 0; j < Nm; j++) {
        const v = margin > 0 ? (rk[j]! - bk) / margin : rk[j]! - bk;
        if (v > score[j]!) score[j] = v;
      }
    }
    cand.push(pick(score, margin > 0 ? -1 : 0, cap, row));
  }
  return { cand, noise };
}

/**
 * Random sums whose ρ land in [−1, 1] mostly, a few columns that clamp, coarse values (ties),
 * rows and neurons with 1/σ = 0, and a planted strong partner per row.
 */
function data(B: number, Nm: number, S: number, seed: number) {
  const r = rng(seed);
  const coarse = (x: number): number => Math.round(x * 64) / 64;
  const sums = (n: number, zeroRow: (i: number) => boolean): ScreenSums & { xy: Float32Array } => {
    const xy = new Float32Array(B * Nm);
    for (let i = 0; i < B; i++) {
      const partner = (i * 7919) % Nm;
      for (let j = 0; j < Nm; j++) xy[i * Nm + j] = coarse((r() - 0.5) * 0.4 * n + (j === partner ? 0.8 * n : 0));
      if (i % 5 === 0) xy[i * Nm + ((i + 3) % Nm)] = xy[i * Nm + partner]!; // a tie with the partner
      if (i % 9 === 2) xy[i * Nm + ((i + 11) % Nm)] = 5 * n; // clamps to 1
    }
    return {
      xy,
      sx: Float64Array.from({ length: B }, () => coarse(r() - 0.5)),
      ix: Float64Array.from({ length: B }, (_, i) => (zeroRow(i) ? 0 : 1 / n)),
      sy: Float64Array.from({ length: Nm }, () => coarse(r() - 0.5)),
      iy: Float64Array.from({ length: Nm }, (_, j) => (j % 17 === 5 ? 0 : 1)),
      n,
    };
  };
  const subs: Sub[] = Array.from({ length: S }, (_, s) => ({ ...sums(300 + 10 * s, (i) => (i + s) % 6 === 1), live: s !== 2 || S < 4 }));
  const pooled64 = sums(1000, (i) => i % 13 === 3);
  const pooled: ScreenSums = { ...pooled64, xy: Float64Array.from(pooled64.xy, (v, e) => v + (e % 3) * 2 ** -30) };
  return { pooled, pooled32: pooled64, subs };
}

function check(B: number, Nm: number, S: number, o: { margin: number; z: number; low: number; cap: number }, seed: number, what: string): void {
  const D = data(B, Nm, S, seed);
  const inputs = S ? [D.pooled] : [D.pooled, D.pooled32];
  for (const P of inputs) {
    const want = reference(B, Nm, P, D.subs, o);
    for (const threads of [1, 3]) {
      setKernelThreads(threads);
      const got = pickPartners(B, Nm, P, D.subs, o);
      const w = `${what}, ${P.xy.constructor.name} pooled, ${threads} threads`;
      assert.equal(got.cand.length, B, w);
      for (let i = 0; i < B; i++) assert.deepEqual([...got.cand[i]!], want.cand[i], `${w}: row ${i}`);
      for (let i = 0; i < B; i++) if (!Object.is(got.noise[i], want.noise[i])) assert.fail(`${w}: noise[${i}] ${got.noise[i]} vs ${want.noise[i]}`);
    }
  }
  // The data exercise what they should: rows with every neuron, rows with a noise margin.
  const some = reference(B, Nm, D.pooled, D.subs, o);
  assert.ok(some.cand.some((c) => c.length === Nm) && some.cand.some((c) => c.length < Nm), `${what}: constant and ranked rows`);
  if (S >= 2) assert.ok(some.noise.some((v) => v > 0), `${what}: some noise margins`);
}

test('pickPartners equals the JS loop: 3 sub-screens, the defaults, rows over several kernel calls', () => {
  // 3 × 4 bytes × 20,000 × 110 rows = 26 MB: more than one 24 MB call.
  check(110, 20_000, 3, { margin: 0.05, z: 3, low: 0.125, cap: 256 }, 1, 'S 3');
});

test('pickPartners equals the JS loop: 4 sub-screens with one without tokens, a narrow margin, a small cap', () => {
  check(40, 3_001, 4, { margin: 0.01, z: 2, low: 0.5, cap: 7 }, 2, 'S 4');
});

test('pickPartners equals the JS loop: one sub-screen (no spread), margin 0, a cap above N_m', () => {
  check(30, 500, 1, { margin: 0, z: 3, low: 0.125, cap: 600 }, 3, 'S 1');
});

test('pickPartners equals the JS loop: no sub-screens (a prefix screen), float64 and float32 sums', () => {
  check(50, 2_000, 0, { margin: 0.05, z: 3, low: 0, cap: 64 }, 4, 'S 0');
});

test('RotatedKeep equals the JS visit it replaced: the row maxima and the kept ρ, over layers, 1 and 3 threads', () => {
  const d = 96;
  const rows = 150;
  const L = 3;
  const r = rng(9);
  // 64 KB of kernel memory: 42 rows per call, so a chunk takes several.
  const bytes = 64 * 1024;
  const ix = Float64Array.from({ length: rows }, (_, i) => (i % 10 === 3 ? 0 : 0.5 + r()));
  const widen = Float64Array.from({ length: rows }, (_, i) => (ix[i] === 0 ? Infinity : i % 7 === 0 ? 0 : 0.05 + 0.1 * r()));
  const layers = Array.from({ length: L }, () => {
    const P = Float32Array.from({ length: rows * d }, () => Math.round((r() - 0.5) * 64) / 32); // ties, values that clamp
    const irv = Float64Array.from({ length: d }, (_, k) => (k % 19 === 4 ? 0 : 0.5 + r()));
    return { P, irv };
  });
  // The JS loop (fast.ts pickCandidates before the kernel).
  const want = { best: new Float64Array(rows).fill(-Infinity), k: Array.from({ length: rows }, (): number[] => []), v: Array.from({ length: rows }, (): number[] => []) };
  layers.forEach(({ P, irv }, l) => {
    const rho = new Float64Array(rows * d);
    for (let i = 0; i < rows; i++) for (let k = 0; k < d; k++) rho[i * d + k] = clampCorr(P[i * d + k]! * ix[i]! * irv[k]!);
    for (let i = 0; i < rows; i++) {
      let b = want.best[i]!;
      for (let k = 0; k < d; k++) if (rho[i * d + k]! > b) b = rho[i * d + k]!;
      want.best[i] = b;
      const lim = b - widen[i]!;
      for (let k = 0; k < d; k++) {
        if (rho[i * d + k]! >= lim) {
          want.k[i]!.push(l * d + k);
          want.v[i]!.push(rho[i * d + k]!);
        }
      }
    }
  });
  for (const threads of [1, 3]) {
    setKernelThreads(threads);
    const keeper = new RotatedKeep(d, bytes);
    assert.ok(keeper.sub < rows / 2);
    const got = { best: new Float64Array(rows).fill(-Infinity), k: Array.from({ length: rows }, (): number[] => []), v: Array.from({ length: rows }, (): number[] => []) };
    layers.forEach(({ P, irv }, l) => {
      keeper.keep(P, rows, ix, irv, got.best, widen, (i, ks, vs, count) => {
        assert.equal(ks.length, count);
        for (let q = 0; q < count; q++) {
          got.k[i]!.push(l * d + ks[q]!);
          got.v[i]!.push(vs[q]!);
        }
      });
    });
    for (let i = 0; i < rows; i++) {
      assert.ok(Object.is(got.best[i], want.best[i]), `${threads} threads: best[${i}]`);
      assert.deepEqual(got.k[i], want.k[i], `${threads} threads: row ${i} kept`);
      assert.deepEqual(got.v[i], want.v[i], `${threads} threads: row ${i} ρ`);
    }
  }
  assert.ok(want.k.some((k) => k.length === L * d) && want.k.some((k) => k.length < 10), 'rows that keep all and rows that keep a few');
});
