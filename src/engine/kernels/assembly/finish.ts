// AssemblyScript source of the cross moments' finish kernels (built by `npm run build` into
// dist/kernels/finish.wasm; see src/engine/kernels/index.ts). Pointers are byte offsets into the
// imported memory. Rows are independent: the worker pool runs row ranges at once.
//
// Each function does, per element and in the same order, the float64 operations of the JS loop
// it replaces (cross/dense.ts finishExact, cross/baseline.ts rotatedMax and screenRefine), so the
// results are bit-identical: every value is an IEEE double operation, and each row's maximum and
// candidates follow the same sequential rule.

/** ρ clamped as clampCorr (cross/common.ts): NaN → 0, then into [−1, 1]. */
@inline function clamp(r: f64): f64 {
  if (r != r) return 0;
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

/**
 * The partner maximum of rows [r0, r1) of the [rows × Nm] sums `sxy` (float32 when `wide` is 0,
 * float64 otherwise): per row i with ix[i] ≠ 0, the largest clamp((sxy[i,j] − sx[i]·my[j])·ix[i]·iy[j])
 * and its first column, into best[i] (f64) and arg[i] (i32); other rows are left as they are.
 */
export function partnerMax(
  sxy: usize, wide: i32, Nm: i32, r0: i32, r1: i32,
  sx: usize, ix: usize, my: usize, iy: usize, best: usize, arg: usize,
): void {
  for (let i = r0; i < r1; i++) {
    const o = <usize>i << 3;
    const ixi = load<f64>(ix + o);
    if (ixi == 0) continue;
    const sxi = load<f64>(sx + o);
    let b: f64 = -Infinity;
    let a: i32 = -1;
    const row = <usize>i * <usize>Nm;
    if (wide) {
      const p = sxy + (row << 3);
      for (let j = 0; j < Nm; j++) {
        const jj = <usize>j << 3;
        const r = clamp((load<f64>(p + jj) - sxi * load<f64>(my + jj)) * ixi * load<f64>(iy + jj));
        if (r > b) {
          b = r;
          a = j;
        }
      }
    } else {
      const p = sxy + (row << 2);
      for (let j = 0; j < Nm; j++) {
        const jj = <usize>j << 3;
        const r = clamp((<f64>load<f32>(p + (<usize>j << 2)) - sxi * load<f64>(my + jj)) * ixi * load<f64>(iy + jj));
        if (r > b) {
          b = r;
          a = j;
        }
      }
    }
    store<f64>(best + o, b);
    store<i32>(arg + (<usize>i << 2), a);
  }
}

/**
 * The centred covariances of rows [r0, r1) of one layer (rotatedMax): from the [rows × d] sums
 * `s` (float32 when `wide` is 0, float64 otherwise), v = cy[b] ? 0 : s[r,b] − (sx[r]·syl[b])/n
 * into cov (f64) and cov32 (f32), and Σ_b v² (in b order) into sumSq[r].
 */
export function covRows(
  s: usize, wide: i32, d: i32, r0: i32, r1: i32,
  sx: usize, syl: usize, cy: usize, n: f64, cov: usize, cov32: usize, sumSq: usize,
): void {
  for (let r = r0; r < r1; r++) {
    const sxi = load<f64>(sx + (<usize>r << 3));
    const base = <usize>r * <usize>d;
    let q: f64 = 0;
    for (let b = 0; b < d; b++) {
      const e = base + <usize>b;
      let v: f64 = 0;
      if (!load<u8>(cy + <usize>b)) {
        const x = wide ? load<f64>(s + (e << 3)) : <f64>load<f32>(s + (e << 2));
        v = x - (sxi * load<f64>(syl + (<usize>b << 3))) / n;
      }
      store<f64>(cov + (e << 3), v);
      store<f32>(cov32 + (e << 2), <f32>v);
      q += v * v;
    }
    store<f64>(sumSq + (<usize>r << 3), q);
  }
}

/**
 * screenRefine's one pass over the fp32 screen P [rows × d], rows [r0, r1): with t = P·ix[r] and
 * s = irv[k], the largest lower bound (t − e[r])·s so far raises the threshold (from best[r]),
 * and every k whose upper bound (t + e[r])·s is not below the threshold at its turn is a
 * candidate. Writes the candidates into cand[r·d …], their count into nc[r], the largest lower
 * bound into lbMax[r] and its k into seed[r] (−1 if none). Rows with ix[r] = 0 get no candidates.
 */
export function screenScan(
  P: usize, d: i32, r0: i32, r1: i32,
  ix: usize, e: usize, irv: usize, best: usize,
  cand: usize, nc: usize, lbMax: usize, seed: usize,
): void {
  for (let r = r0; r < r1; r++) {
    const o8 = <usize>r << 3;
    const o4 = <usize>r << 2;
    const xi = load<f64>(ix + o8);
    let count = 0;
    let lbm: f64 = -Infinity;
    let sd: i32 = -1;
    if (xi != 0) {
      const er = load<f64>(e + o8);
      let thr = load<f64>(best + o8);
      const row = P + ((<usize>r * <usize>d) << 2);
      const out = cand + ((<usize>r * <usize>d) << 2);
      for (let k = 0; k < d; k++) {
        const t = <f64>load<f32>(row + (<usize>k << 2)) * xi;
        const s = load<f64>(irv + (<usize>k << 3));
        const lb = (t - er) * s;
        if (lb > lbm) {
          lbm = lb;
          sd = k;
          if (lb > thr) thr = lb;
        }
        if (!((t + er) * s < thr)) {
          store<i32>(out + (<usize>count << 2), k);
          count++;
        }
      }
    }
    store<i32>(nc + o4, count);
    store<f64>(lbMax + o8, lbm);
    store<i32>(seed + o4, sd);
  }
}
