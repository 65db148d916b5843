// AssemblyScript source of the activation-statistics kernel (built by `npm run build` into
// dist/kernels/stats.wasm; see src/engine/kernels/index.ts). Pointers are byte offsets into the
// imported memory.
//
// Lanes are columns: a row-major [rows × n] matrix is walked row by row, four neighbouring
// columns at a time (two f64x2 per quantity), so each column is still summed in token order
// with the same float64 operations as the JS loop it replaces (actstats.ts, jsColumnStats):
// the results are bit-identical, with no transpose.

/**
 * For columns [j0, j1) of the [rows × n] float32 matrix at `x`:
 *   bMean[j] = Σ x / rows, b2/b3/b4[j] = Σ d², Σ d³, Σ d⁴ with d = x − bMean[j] (float64),
 *   pos[j] += #(x > 0), min/max[j] (float64 arrays) updated,
 *   counts[j·(bins+2) + bin(x)]++ with bin = 0 below lo, bins+1 at or above lo + bins/inv.
 * Returns −1, or the first column whose mean is not finite (NaN or ±Infinity): the caller
 * refuses the batch then, and what was written for it must not be used.
 */
export function columnStats(
  x: usize, n: i32, rows: i32, j0: i32, j1: i32,
  bMean: usize, b2: usize, b3: usize, b4: usize, pos: usize,
  mn: usize, mx: usize, lo: usize, inv: usize, counts: usize, bins: i32,
): i32 {
  const rowBytes = <usize>n << 2;
  const rowsF = <f64>rows;
  const binsF = <f64>bins;
  const hstride = <usize>(bins + 2) << 2;
  const zero2 = f64x2.splat(0);
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    const col = x + (<usize>j << 2);
    // Pass 1: the column sums.
    let s01 = zero2;
    let s23 = zero2;
    let p = col;
    for (let t = 0; t < rows; t++, p += rowBytes) {
      s01 = f64x2.add(s01, f64x2.promote_low_f32x4(v128.load64_zero(p)));
      s23 = f64x2.add(s23, f64x2.promote_low_f32x4(v128.load64_zero(p, 8)));
    }
    const rv = f64x2.splat(rowsF);
    const mu01 = f64x2.div(s01, rv);
    const mu23 = f64x2.div(s23, rv);
    if (!isFinite(f64x2.extract_lane(mu01, 0))) return j;
    if (!isFinite(f64x2.extract_lane(mu01, 1))) return j + 1;
    if (!isFinite(f64x2.extract_lane(mu23, 0))) return j + 2;
    if (!isFinite(f64x2.extract_lane(mu23, 1))) return j + 3;
    // Pass 2: central sums, positives, extremes, histogram. (pmin(a, b) is b < a ? b : a.)
    const o8 = <usize>j << 3;
    let a2 = zero2, a3 = zero2, a4 = zero2;
    let c2 = zero2, c3 = zero2, c4 = zero2;
    let np = i32x4.splat(0);
    const izero = i32x4.splat(0);
    let vmn = load4(mn + o8);
    let vmx = load4(mx + o8);
    const lo01 = v128.load(lo + o8);
    const lo23 = v128.load(lo + o8, 16);
    const iv01 = v128.load(inv + o8);
    const iv23 = v128.load(inv + o8, 16);
    // Histogram rows of the four columns, as byte addresses in lanes.
    const h0 = <i32>(counts + <usize>j * hstride);
    const hs = <i32>hstride;
    const hbase = i32x4(h0, h0 + hs, h0 + 2 * hs, h0 + 3 * hs);
    const one = i32x4.splat(1);
    const binsV = f64x2.splat(binsF);
    const minus1 = f64x2.splat(-1);
    p = col;
    for (let t = 0; t < rows; t++, p += rowBytes) {
      const v = v128.load(p);
      const x01 = f64x2.promote_low_f32x4(v128.load64_zero(p));
      const x23 = f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
      const d01 = f64x2.sub(x01, mu01);
      const d23 = f64x2.sub(x23, mu23);
      const e01 = f64x2.mul(d01, d01);
      const e23 = f64x2.mul(d23, d23);
      a2 = f64x2.add(a2, e01);
      c2 = f64x2.add(c2, e23);
      a3 = f64x2.add(a3, f64x2.mul(e01, d01));
      c3 = f64x2.add(c3, f64x2.mul(e23, d23));
      a4 = f64x2.add(a4, f64x2.mul(e01, e01));
      c4 = f64x2.add(c4, f64x2.mul(e23, e23));
      // x > 0 from the bits (sign clear and not +0), as the JS loop counts it.
      np = i32x4.sub(np, i32x4.gt_s(v, izero));
      vmn = f32x4.pmin(vmn, v);
      vmx = f32x4.pmax(vmx, v);
      bin4(x01, x23, lo01, lo23, iv01, iv23, binsV, minus1, hbase, one);
    }
    v128.store(bMean + o8, mu01);
    v128.store(bMean + o8, mu23, 16);
    v128.store(b2 + o8, a2);
    v128.store(b2 + o8, c2, 16);
    v128.store(b3 + o8, a3);
    v128.store(b3 + o8, c3, 16);
    v128.store(b4 + o8, a4);
    v128.store(b4 + o8, c4, 16);
    store<f64>(pos + o8, load<f64>(pos + o8) + <f64>i32x4.extract_lane(np, 0));
    store<f64>(pos + o8, load<f64>(pos + o8, 8) + <f64>i32x4.extract_lane(np, 1), 8);
    store<f64>(pos + o8, load<f64>(pos + o8, 16) + <f64>i32x4.extract_lane(np, 2), 16);
    store<f64>(pos + o8, load<f64>(pos + o8, 24) + <f64>i32x4.extract_lane(np, 3), 24);
    store4(mn + o8, vmn);
    store4(mx + o8, vmx);
  }
  // The last n mod 4 columns, one at a time, with the same operations.
  for (; j < j1; j++) {
    const col = x + (<usize>j << 2);
    let s: f64 = 0;
    let p = col;
    for (let t = 0; t < rows; t++, p += rowBytes) s += <f64>load<f32>(p);
    const mu = s / rowsF;
    if (!isFinite(mu)) return j;
    const o8 = <usize>j << 3;
    let s2: f64 = 0, s3: f64 = 0, s4: f64 = 0;
    let np: i32 = 0;
    let vmn = <f32>load<f64>(mn + o8);
    let vmx = <f32>load<f64>(mx + o8);
    const l = load<f64>(lo + o8);
    const iv = load<f64>(inv + o8);
    const h = counts + <usize>j * hstride;
    p = col;
    for (let t = 0; t < rows; t++, p += rowBytes) {
      const v = load<f32>(p);
      const xd = <f64>v;
      const d = xd - mu;
      const e = d * d;
      s2 += e;
      s3 += e * d;
      s4 += e * e;
      if (load<i32>(p) > 0) np++;
      if (v < vmn) vmn = v;
      if (v > vmx) vmx = v;
      bump(h, (xd - l) * iv, binsF, bins);
    }
    store<f64>(bMean + o8, mu);
    store<f64>(b2 + o8, s2);
    store<f64>(b3 + o8, s3);
    store<f64>(b4 + o8, s4);
    store<f64>(pos + o8, load<f64>(pos + o8) + <f64>np);
    store<f64>(mn + o8, <f64>vmn);
    store<f64>(mx + o8, <f64>vmx);
  }
  return -1;
}

// Counts four values (columns j…j+3, as float64 pairs) into their histograms (hbase: the byte
// address of each column's counts). bin = ⌊clamp(f, −1, bins)⌋ + 1 with f = (x − lo)·inv: 0 below
// the range, bins + 1 at or above it, else ⌊f⌋ + 1, as bump() and the JS loop bin; clamped first,
// so the conversion never saturates.
// @ts-ignore: decorator
@inline
function bin4(x01: v128, x23: v128, lo01: v128, lo23: v128, iv01: v128, iv23: v128, binsV: v128, minus1: v128, hbase: v128, one: v128): void {
  const f01 = f64x2.floor(f64x2.pmax(minus1, f64x2.pmin(binsV, f64x2.mul(f64x2.sub(x01, lo01), iv01))));
  const f23 = f64x2.floor(f64x2.pmax(minus1, f64x2.pmin(binsV, f64x2.mul(f64x2.sub(x23, lo23), iv23))));
  const b01 = i32x4.trunc_sat_f64x2_s_zero(f01);
  const b23 = i32x4.trunc_sat_f64x2_s_zero(f23);
  const bb = i8x16.shuffle(b01, b23, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const addr = i32x4.add(hbase, i32x4.shl(i32x4.add(bb, one), 2));
  inc(<usize>i32x4.extract_lane(addr, 0));
  inc(<usize>i32x4.extract_lane(addr, 1));
  inc(<usize>i32x4.extract_lane(addr, 2));
  inc(<usize>i32x4.extract_lane(addr, 3));
}

// @ts-ignore: decorator
@inline
function inc(a: usize): void {
  store<u32>(a, load<u32>(a) + 1);
}

// counts[h + bin]++ with bin 0 for f < 0, bins + 1 for f ≥ bins, else ⌊f⌋ + 1.
// @ts-ignore: decorator
@inline
function bump(h: usize, f: f64, binsF: f64, bins: i32): void {
  const b: i32 = f < 0 ? 0 : f >= binsF ? bins + 1 : <i32>f + 1;
  const a = h + (<usize>b << 2);
  store<u32>(a, load<u32>(a) + 1);
}

// Four float64 extremes (float32 values, so exact) as f32x4, and back.
// @ts-ignore: decorator
@inline
function load4(p: usize): v128 {
  const v = f32x4.demote_f64x2_zero(v128.load(p));
  return f32x4.replace_lane(f32x4.replace_lane(v, 2, <f32>load<f64>(p, 16)), 3, <f32>load<f64>(p, 24));
}

// @ts-ignore: decorator
@inline
function store4(p: usize, v: v128): void {
  store<f64>(p, <f64>f32x4.extract_lane(v, 0));
  store<f64>(p, <f64>f32x4.extract_lane(v, 1), 8);
  store<f64>(p, <f64>f32x4.extract_lane(v, 2), 16);
  store<f64>(p, <f64>f32x4.extract_lane(v, 3), 24);
}

/**
 * TopExamples' per-batch pass over columns [j0, j1) of the [nKept × n] float32 matrix at `x`
 * (kept tokens of R batch rows; row r's are kept[ks[r] .. ks[r+1])):
 *   rowMax[r·n + j] (f32) = max over row r's kept values, rowArg[r·n + j] (i32) = keptIndex of the
 *   first kept token holding it (0 for a row without kept tokens, whose max is −Infinity);
 *   then every kept value into column j's histogram and min/max, as columnStats counts them.
 */
export function rowMaxHist(
  x: usize, n: i32, nKept: i32, j0: i32, j1: i32, ks: usize, keptIndex: usize, R: i32, rowMax: usize, rowArg: usize,
  mn: usize, mx: usize, lo: usize, inv: usize, counts: usize, bins: i32,
): void {
  const rowBytes = <usize>n << 2;
  const binsF = <f64>bins;
  const hstride = <usize>(bins + 2) << 2;
  const ninf = f32x4.splat(-Infinity);
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    const col = x + (<usize>j << 2);
    for (let r = 0; r < R; r++) {
      const k0 = load<i32>(ks + (<usize>r << 2));
      const k1 = load<i32>(ks + (<usize>r << 2), 4);
      let best = ninf;
      let arg = i32x4.splat(0);
      let p = col + <usize>k0 * rowBytes;
      for (let k = k0; k < k1; k++, p += rowBytes) {
        const v = v128.load(p);
        const m = f32x4.gt(v, best); // strict: ties keep the first token
        best = v128.bitselect(v, best, m);
        arg = v128.bitselect(i32x4.splat(k), arg, m);
      }
      const o = (<usize>r * <usize>n + <usize>j) << 2;
      v128.store(rowMax + o, best);
      const has = f32x4.gt(best, ninf);
      const a0 = load<i32>(keptIndex + (<usize>i32x4.extract_lane(arg, 0) << 2));
      const a1 = load<i32>(keptIndex + (<usize>i32x4.extract_lane(arg, 1) << 2));
      const a2 = load<i32>(keptIndex + (<usize>i32x4.extract_lane(arg, 2) << 2));
      const a3 = load<i32>(keptIndex + (<usize>i32x4.extract_lane(arg, 3) << 2));
      v128.store(rowArg + o, v128.and(i32x4(a0, a1, a2, a3), has));
    }
    const o8 = <usize>j << 3;
    let vmn = load4(mn + o8);
    let vmx = load4(mx + o8);
    const lo01 = v128.load(lo + o8);
    const lo23 = v128.load(lo + o8, 16);
    const iv01 = v128.load(inv + o8);
    const iv23 = v128.load(inv + o8, 16);
    const h0 = <i32>(counts + <usize>j * hstride);
    const hs = <i32>hstride;
    const hbase = i32x4(h0, h0 + hs, h0 + 2 * hs, h0 + 3 * hs);
    const one = i32x4.splat(1);
    const binsV = f64x2.splat(binsF);
    const minus1 = f64x2.splat(-1);
    let p = col;
    for (let t = 0; t < nKept; t++, p += rowBytes) {
      const v = v128.load(p);
      vmn = f32x4.pmin(vmn, v);
      vmx = f32x4.pmax(vmx, v);
      const x01 = f64x2.promote_low_f32x4(v128.load64_zero(p));
      const x23 = f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
      bin4(x01, x23, lo01, lo23, iv01, iv23, binsV, minus1, hbase, one);
    }
    store4(mn + o8, vmn);
    store4(mx + o8, vmx);
  }
  for (; j < j1; j++) {
    const col = x + (<usize>j << 2);
    for (let r = 0; r < R; r++) {
      const k0 = load<i32>(ks + (<usize>r << 2));
      const k1 = load<i32>(ks + (<usize>r << 2), 4);
      let best: f32 = -Infinity;
      let arg: i32 = 0;
      let p = col + <usize>k0 * rowBytes;
      for (let k = k0; k < k1; k++, p += rowBytes) {
        const v = load<f32>(p);
        if (v > best) {
          best = v;
          arg = k;
        }
      }
      const o = (<usize>r * <usize>n + <usize>j) << 2;
      store<f32>(rowMax + o, best);
      store<i32>(rowArg + o, best > -Infinity ? load<i32>(keptIndex + (<usize>arg << 2)) : 0);
    }
    const o8 = <usize>j << 3;
    let vmn = <f32>load<f64>(mn + o8);
    let vmx = <f32>load<f64>(mx + o8);
    const l = load<f64>(lo + o8);
    const iv = load<f64>(inv + o8);
    const h = counts + <usize>j * hstride;
    let p = col;
    for (let t = 0; t < nKept; t++, p += rowBytes) {
      const v = load<f32>(p);
      if (v < vmn) vmn = v;
      if (v > vmx) vmx = v;
      bump(h, (<f64>v - l) * iv, binsF, bins);
    }
    store<f64>(mn + o8, <f64>vmn);
    store<f64>(mx + o8, <f64>vmx);
  }
}
