// AssemblyScript source of FamilyStats' per-token group sums (built into dist/kernels/families.wasm;
// see src/engine/kernels/index.ts). Pointers are byte offsets into the imported memory.
//
// Lanes are columns, and tokens are taken in order, so every float64 sum gets its terms in the
// same order as the JS loop it replaces (families.ts, FamilyStats.addJs): bit-identical results.

/**
 * For kept tokens q < nKept, with v = the [nKept × n] float32 matrix at `v` (the activation the
 * VR is taken of) and pre = the same shape at `pre`:
 *   sum[j] += v, sumSq[j] += v·v (float64 rows at `sum`, `sumSq`);
 *   for each of token q's `nRows` group-row addresses (targets[q·stride + 2 + i], 0 = none):
 *     row[j] += v;
 *   the totals at targets[q·stride] (0 = none): tot[j] += v, tot[n + j] += v·v; the same for
 *     targets[q·stride + 1];
 *   fire row at targets[q·stride + 2 + nRows]: fire[j] += (pre > 0 ? 1 : 0) (from the bits, as JS).
 * stride = nRows + 3.
 */
export function familyAdd(v: usize, pre: usize, n: i32, nKept: i32, sum: usize, sumSq: usize, targets: usize, nRows: i32, j0: i32, j1: i32): void {
  // Columns [j0, j1) only (j0 a multiple of 4): the pool's threads take disjoint column ranges.
  const rowBytes = <usize>n << 2;
  const stride = <usize>(nRows + 3) << 2;
  const o0 = <usize>j0 << 2;
  const o8 = <usize>j0 << 3;
  const w = j1 - j0;
  const n4 = w & ~3;
  for (let q = 0; q < nKept; q++) {
    const x = v + <usize>q * rowBytes + o0;
    const tq = targets + <usize>q * stride;
    addSquares(x, sum + o8, sumSq + o8, w, n4);
    for (let k = 0; k < 2; k++) {
      const tot = <usize>load<i32>(tq + (<usize>k << 2));
      if (tot) addSquares(x, tot + o8, tot + (<usize>n << 3) + o8, w, n4);
    }
    for (let i = 0; i < nRows; i++) {
      const row = <usize>load<i32>(tq + 8 + (<usize>i << 2));
      if (row) addRow(x, row + o8, w, n4);
    }
    const fire = <usize>load<i32>(tq + 8 + (<usize>nRows << 2)) + o8;
    const pb = pre + <usize>q * rowBytes + o0;
    const izero = i32x4.splat(0);
    let j = 0;
    for (; j < n4; j += 4) {
      const ones = i32x4.neg(i32x4.gt_s(v128.load(pb + (<usize>j << 2)), izero));
      const f = fire + (<usize>j << 3);
      v128.store(f, f64x2.add(v128.load(f), f64x2.convert_low_i32x4_s(ones)));
      v128.store(f, f64x2.add(v128.load(f, 16), f64x2.convert_low_i32x4_s(i8x16.shuffle(ones, ones, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7))), 16);
    }
    for (; j < w; j++) {
      const f = fire + (<usize>j << 3);
      store<f64>(f, load<f64>(f) + (load<i32>(pb + (<usize>j << 2)) > 0 ? 1.0 : 0.0));
    }
  }
}

// row[j] += x[j] (float64 row, float32 x), j < n.
// @ts-ignore: decorator
@inline
function addRow(x: usize, row: usize, n: i32, n4: i32): void {
  let j = 0;
  for (; j < n4; j += 4) {
    const a = x + (<usize>j << 2);
    const r = row + (<usize>j << 3);
    v128.store(r, f64x2.add(v128.load(r), f64x2.promote_low_f32x4(v128.load64_zero(a))));
    v128.store(r, f64x2.add(v128.load(r, 16), f64x2.promote_low_f32x4(v128.load64_zero(a, 8))), 16);
  }
  for (; j < n; j++) {
    const r = row + (<usize>j << 3);
    store<f64>(r, load<f64>(r) + <f64>load<f32>(x + (<usize>j << 2)));
  }
}

// s[j] += x[j], s2[j] += x[j]·x[j] (float64 in both), j < n.
// @ts-ignore: decorator
@inline
function addSquares(x: usize, s: usize, s2: usize, n: i32, n4: i32): void {
  let j = 0;
  for (; j < n4; j += 4) {
    const a = x + (<usize>j << 2);
    const o = <usize>j << 3;
    const x01 = f64x2.promote_low_f32x4(v128.load64_zero(a));
    const x23 = f64x2.promote_low_f32x4(v128.load64_zero(a, 8));
    v128.store(s + o, f64x2.add(v128.load(s + o), x01));
    v128.store(s + o, f64x2.add(v128.load(s + o, 16), x23), 16);
    v128.store(s2 + o, f64x2.add(v128.load(s2 + o), f64x2.mul(x01, x01)));
    v128.store(s2 + o, f64x2.add(v128.load(s2 + o, 16), f64x2.mul(x23, x23)), 16);
  }
  for (; j < n; j++) {
    const xd = <f64>load<f32>(x + (<usize>j << 2));
    const o = <usize>j << 3;
    store<f64>(s + o, load<f64>(s + o) + xd);
    store<f64>(s2 + o, load<f64>(s2 + o) + xd * xd);
  }
}
