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
  // Sixteen columns (one 64-byte line of a row) at a time: pass 1 reads whole lines; pass 2 walks
  // tiles of TILE rows, the line's four strips in turn over each tile, so a tile's lines and pages
  // are read from L1 and the first-level TLB four times instead of from L2 and the STLB.
  for (; j + 16 <= j1; j += 16) {
    const col = x + (<usize>j << 2);
    let q0 = zero2, q1 = zero2, q2 = zero2, q3 = zero2, q4 = zero2, q5 = zero2, q6 = zero2, q7 = zero2;
    let p = col;
    for (let t = 0; t < rows; t++, p += rowBytes) {
      q0 = f64x2.add(q0, f64x2.promote_low_f32x4(v128.load64_zero(p)));
      q1 = f64x2.add(q1, f64x2.promote_low_f32x4(v128.load64_zero(p, 8)));
      q2 = f64x2.add(q2, f64x2.promote_low_f32x4(v128.load64_zero(p, 16)));
      q3 = f64x2.add(q3, f64x2.promote_low_f32x4(v128.load64_zero(p, 24)));
      q4 = f64x2.add(q4, f64x2.promote_low_f32x4(v128.load64_zero(p, 32)));
      q5 = f64x2.add(q5, f64x2.promote_low_f32x4(v128.load64_zero(p, 40)));
      q6 = f64x2.add(q6, f64x2.promote_low_f32x4(v128.load64_zero(p, 48)));
      q7 = f64x2.add(q7, f64x2.promote_low_f32x4(v128.load64_zero(p, 56)));
    }
    const rv = f64x2.splat(rowsF);
    const o8 = <usize>j << 3;
    v128.store(bMean + o8, f64x2.div(q0, rv));
    v128.store(bMean + o8, f64x2.div(q1, rv), 16);
    v128.store(bMean + o8, f64x2.div(q2, rv), 32);
    v128.store(bMean + o8, f64x2.div(q3, rv), 48);
    v128.store(bMean + o8, f64x2.div(q4, rv), 64);
    v128.store(bMean + o8, f64x2.div(q5, rv), 80);
    v128.store(bMean + o8, f64x2.div(q6, rv), 96);
    v128.store(bMean + o8, f64x2.div(q7, rv), 112);
    for (let k = 0; k < 16; k++) {
      if (!isFinite(load<f64>(bMean + o8 + (<usize>k << 3)))) return j + k;
      store<f64>(b2 + o8 + (<usize>k << 3), 0);
      store<f64>(b3 + o8 + (<usize>k << 3), 0);
      store<f64>(b4 + o8 + (<usize>k << 3), 0);
    }
    for (let t0 = 0; t0 < rows; t0 += TILE) {
      const t1 = min(rows, t0 + TILE);
      for (let s = 0; s < 4; s++) central4(x + (<usize>t0 * rowBytes), rowBytes, t1 - t0, j + (s << 2), bMean, b2, b3, b4, pos, mn, mx, lo, inv, counts, hstride, binsF);
    }
  }
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
    const o8 = <usize>j << 3;
    v128.store(bMean + o8, mu01);
    v128.store(bMean + o8, mu23, 16);
    v128.store(b2 + o8, zero2);
    v128.store(b2 + o8, zero2, 16);
    v128.store(b3 + o8, zero2);
    v128.store(b3 + o8, zero2, 16);
    v128.store(b4 + o8, zero2);
    v128.store(b4 + o8, zero2, 16);
    central4(x, rowBytes, rows, j, bMean, b2, b3, b4, pos, mn, mx, lo, inv, counts, hstride, binsF);
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

const TILE = 64;

// Pass 2 of columns j…j+3 (central sums, positives, extremes, histogram; pmin(a, b) is b < a ? b : a)
// over `n` rows starting at `base` (a row's first value), with the running
// sums, count, extremes in the arrays (exact round trips), so tiles continue each column in order.
// @ts-ignore: decorator
@inline
function central4(
  base: usize, rowBytes: usize, n: i32, j: i32, bMean: usize, b2: usize, b3: usize, b4: usize, pos: usize,
  mn: usize, mx: usize, lo: usize, inv: usize, counts: usize, hstride: usize, binsF: f64,
): void {
  const o8 = <usize>j << 3;
  const mu01 = v128.load(bMean + o8);
  const mu23 = v128.load(bMean + o8, 16);
  let a2 = v128.load(b2 + o8), c2 = v128.load(b2 + o8, 16);
  let a3 = v128.load(b3 + o8), c3 = v128.load(b3 + o8, 16);
  let a4 = v128.load(b4 + o8), c4 = v128.load(b4 + o8, 16);
  let np = i32x4.splat(0);
  const izero = i32x4.splat(0);
  let vmn = load4(mn + o8);
  let vmx = load4(mx + o8);
  const lo01 = v128.load(lo + o8);
  const lo23 = v128.load(lo + o8, 16);
  const iv01 = v128.load(inv + o8);
  const iv23 = v128.load(inv + o8, 16);
  const h0 = <i32>(counts + <usize>j * hstride);
  const hs = <i32>hstride;
  const hbase = i32x4(h0, h0 + hs, h0 + 2 * hs, h0 + 3 * hs);
  const binsV = f64x2.splat(binsF);
  const minus1 = f64x2.splat(-1);
  let p = base + (<usize>j << 2);
  for (let t = 0; t < n; t++, p += rowBytes) {
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
    bin4(x01, x23, lo01, lo23, iv01, iv23, binsV, minus1, hbase);
  }
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

// rowMaxHist's row r for columns j…j+3: the maximum over the row's kept tokens and the keptIndex of
// the first token holding it.
// @ts-ignore: decorator
@inline
function rowMax4(x: usize, rowBytes: usize, n: i32, j: i32, r: i32, ks: usize, keptIndex: usize, rowMax: usize, rowArg: usize): void {
  const ninf = f32x4.splat(-Infinity);
  const k0 = load<i32>(ks + (<usize>r << 2));
  const k1 = load<i32>(ks + (<usize>r << 2), 4);
  let best = ninf;
  let arg = i32x4.splat(0);
  let p = x + (<usize>j << 2) + <usize>k0 * rowBytes;
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

// rowMaxHist's extremes and histogram of columns j…j+3 over `m` rows from `base`, continuing the
// extremes in the arrays. Its set-up repeats central4's on purpose: the lanes' constants (lo, inv,
// the histogram bases) must be locals for the whole tile loop, and a helper returning them one row
// at a time would load them from memory on every row.
// @ts-ignore: decorator
@inline
function extremesHist4(base: usize, rowBytes: usize, m: i32, j: i32, mn: usize, mx: usize, lo: usize, inv: usize, counts: usize, hstride: usize, binsF: f64): void {
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
  const binsV = f64x2.splat(binsF);
  const minus1 = f64x2.splat(-1);
  let p = base + (<usize>j << 2);
  for (let t = 0; t < m; t++, p += rowBytes) {
    const v = v128.load(p);
    vmn = f32x4.pmin(vmn, v);
    vmx = f32x4.pmax(vmx, v);
    const x01 = f64x2.promote_low_f32x4(v128.load64_zero(p));
    const x23 = f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
    bin4(x01, x23, lo01, lo23, iv01, iv23, binsV, minus1, hbase);
  }
  store4(mn + o8, vmn);
  store4(mx + o8, vmx);
}

// Counts four values (columns j…j+3, as float64 pairs) into their histograms (hbase: the byte
// address of each column's counts). bin = ⌊clamp(f, −1, bins)⌋ + 1 with f = (x − lo)·inv: 0 below
// the range, bins + 1 at or above it, else ⌊f⌋ + 1, as bump() and the JS loop bin; clamped first,
// so the conversion never saturates.
// @ts-ignore: decorator
@inline
function bin4(x01: v128, x23: v128, lo01: v128, lo23: v128, iv01: v128, iv23: v128, binsV: v128, minus1: v128, hbase: v128): void {
  const f01 = f64x2.floor(f64x2.pmax(minus1, f64x2.pmin(binsV, f64x2.mul(f64x2.sub(x01, lo01), iv01))));
  const f23 = f64x2.floor(f64x2.pmax(minus1, f64x2.pmin(binsV, f64x2.mul(f64x2.sub(x23, lo23), iv23))));
  // f + 1 + 1.5·2^52: an integer in [0, bins + 1] in the low 32 bits of each lane, exactly.
  const magic = f64x2.splat(6755399441055745.0);
  const b01 = f64x2.add(f01, magic);
  const b23 = f64x2.add(f23, magic);
  const bb = i8x16.shuffle(b01, b23, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const addr = i32x4.add(hbase, i32x4.shl(bb, 2));
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
  let j = j0;
  // Sixteen columns (a 64-byte line) at a time, the line's four strips in turn over each batch row
  // and over each tile of TILE kept tokens, so the lines and pages come from L1 and the first-level
  // TLB (columnStats has the same layout); the remaining strips of four on their own.
  for (; j + 16 <= j1; j += 16) {
    for (let r = 0; r < R; r++) for (let s = 0; s < 4; s++) rowMax4(x, rowBytes, n, j + (s << 2), r, ks, keptIndex, rowMax, rowArg);
    for (let t0 = 0; t0 < nKept; t0 += TILE) {
      const m = min(TILE, nKept - t0);
      for (let s = 0; s < 4; s++) extremesHist4(x + <usize>t0 * rowBytes, rowBytes, m, j + (s << 2), mn, mx, lo, inv, counts, hstride, binsF);
    }
  }
  for (; j + 4 <= j1; j += 4) {
    for (let r = 0; r < R; r++) rowMax4(x, rowBytes, n, j, r, ks, keptIndex, rowMax, rowArg);
    extremesHist4(x, rowBytes, nKept, j, mn, mx, lo, inv, counts, hstride, binsF);
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
