// AssemblyScript source of fast mode's sampled dense-dense products (built into
// dist/kernels/sddmm.wasm; see src/engine/kernels/index.ts and analysis/gemm.ts SddmmArena).
// Pointers are byte offsets into the imported memory.

/**
 * For rows i in [i0, i1) and their candidates c in rowptr[i] .. rowptr[i+1]−1 (CSR, i32):
 *   out[c] (f64) += Σ_k x[i·t + k] · y[cols[c]·t + k]
 * x and y are row-major float32 rows of length t. A sum runs in two f32x4 accumulators (8 lanes,
 * so a lane sums ≤ t/8 products), added together and then lane by lane in float64; the t mod 8
 * tail adds one float32 product at a time in float64. The same precision class as the fp32 GEMM
 * partials of exact mode. Four candidates of a row go together (one load of x for four products),
 * each with the same operations as a candidate taken alone.
 */
export function sddmm(x: usize, y: usize, t: i32, rowptr: usize, cols: usize, i0: i32, i1: i32, out: usize): void {
  const rowBytes = <usize>t << 2;
  const vBytes2 = rowBytes & ~(<usize>31);
  for (let i = i0; i < i1; i++) {
    const xr = x + <usize>i * rowBytes;
    const e = load<i32>(rowptr + (<usize>i << 2), 4);
    let c = load<i32>(rowptr + (<usize>i << 2));
    // Four candidates at a time: one load of x for four products.
    for (; c + 4 <= e; c += 4) {
      const cp = cols + (<usize>c << 2);
      const y0 = y + <usize>load<i32>(cp) * rowBytes;
      const y1 = y + <usize>load<i32>(cp, 4) * rowBytes;
      const y2 = y + <usize>load<i32>(cp, 8) * rowBytes;
      const y3 = y + <usize>load<i32>(cp, 12) * rowBytes;
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0);
      let b1 = f32x4.splat(0);
      let b2 = f32x4.splat(0);
      let b3 = f32x4.splat(0);
      let k: usize = 0;
      for (; k < vBytes2; k += 32) {
        const u = v128.load(xr + k);
        const v = v128.load(xr + k, 16);
        a0 = f32x4.add(a0, f32x4.mul(u, v128.load(y0 + k)));
        a1 = f32x4.add(a1, f32x4.mul(u, v128.load(y1 + k)));
        a2 = f32x4.add(a2, f32x4.mul(u, v128.load(y2 + k)));
        a3 = f32x4.add(a3, f32x4.mul(u, v128.load(y3 + k)));
        b0 = f32x4.add(b0, f32x4.mul(v, v128.load(y0 + k, 16)));
        b1 = f32x4.add(b1, f32x4.mul(v, v128.load(y1 + k, 16)));
        b2 = f32x4.add(b2, f32x4.mul(v, v128.load(y2 + k, 16)));
        b3 = f32x4.add(b3, f32x4.mul(v, v128.load(y3 + k, 16)));
      }
      let s0 = hsum(f32x4.add(a0, b0));
      let s1 = hsum(f32x4.add(a1, b1));
      let s2 = hsum(f32x4.add(a2, b2));
      let s3 = hsum(f32x4.add(a3, b3));
      for (; k < rowBytes; k += 4) {
        const u = load<f32>(xr + k);
        s0 += <f64>(u * load<f32>(y0 + k));
        s1 += <f64>(u * load<f32>(y1 + k));
        s2 += <f64>(u * load<f32>(y2 + k));
        s3 += <f64>(u * load<f32>(y3 + k));
      }
      const o = out + (<usize>c << 3);
      store<f64>(o, load<f64>(o) + s0);
      store<f64>(o, load<f64>(o, 8) + s1, 8);
      store<f64>(o, load<f64>(o, 16) + s2, 16);
      store<f64>(o, load<f64>(o, 24) + s3, 24);
    }
    for (; c < e; c++) {
      const j = load<i32>(cols + (<usize>c << 2));
      const yr = y + <usize>j * rowBytes;
      // The same operations as one candidate of the loop above.
      let a = f32x4.splat(0);
      let b = f32x4.splat(0);
      let k: usize = 0;
      for (; k < vBytes2; k += 32) {
        a = f32x4.add(a, f32x4.mul(v128.load(xr + k), v128.load(yr + k)));
        b = f32x4.add(b, f32x4.mul(v128.load(xr + k, 16), v128.load(yr + k, 16)));
      }
      let s = hsum(f32x4.add(a, b));
      for (; k < rowBytes; k += 4) s += <f64>(load<f32>(xr + k) * load<f32>(yr + k));
      const o = out + (<usize>c << 3);
      store<f64>(o, load<f64>(o) + s);
    }
  }
}

/**
 * dst[j·n + k] = src[k·cols + j] for columns j in [j0, j1) and tokens k < n: token-major
 * [n × cols] float32 rows to the SDDMM's [cols × n] layout, in 4 × 4 blocks (four v128 loads, eight
 * shuffles, four stores); the n mod 4 tokens and the j1 − j0 mod 4 columns one value at a time.
 * Exact: it only moves values.
 */
export function transpose(src: usize, n: i32, cols: i32, j0: i32, j1: i32, dst: usize): void {
  const rowB = <usize>cols << 2;
  const nB = <usize>n << 2;
  const n4 = n & ~3;
  const jv = j0 + ((j1 - j0) & ~3);
  // Four tokens at a time across all the range's columns: the source rows are read in order (a
  // strip of columns down the tokens would read one line per 8 kB row, each from L3), and the
  // destination lines being filled, one per column, stay in L2.
  for (let k = 0; k < n4; k += 4) {
    const s = src + <usize>k * rowB;
    const d = dst + (<usize>k << 2);
    for (let j = j0; j < jv; j += 4) block4(s + (<usize>j << 2), rowB, d + <usize>j * nB, nB);
    for (let j = jv; j < j1; j++) {
      for (let q = 0; q < 4; q++) store<f32>(d + <usize>j * nB + (<usize>q << 2), load<f32>(s + <usize>q * rowB + (<usize>j << 2)));
    }
  }
  for (let k = n4; k < n; k++) {
    for (let j = j0; j < j1; j++) store<f32>(dst + <usize>j * nB + (<usize>k << 2), load<f32>(src + <usize>k * rowB + (<usize>j << 2)));
  }
}

/** One 4 × 4 block: four values of rows s, s + sB, … to four values of rows d, d + dB, …. */
// @ts-ignore: decorator
@inline
function block4(s: usize, sB: usize, d: usize, dB: usize): void {
  const r0 = v128.load(s);
  const r1 = v128.load(s + sB);
  const r2 = v128.load(s + 2 * sB);
  const r3 = v128.load(s + 3 * sB);
  // (a0 b0 a1 b1), (a2 b2 a3 b3), (c0 d0 c1 d1), (c2 d2 c3 d3)
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(d + dB, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(d + 2 * dB, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(d + 3 * dB, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

// @ts-ignore: decorator
@inline
function hsum(a: v128): f64 {
  return <f64>f32x4.extract_lane(a, 0) + <f64>f32x4.extract_lane(a, 1) + <f64>f32x4.extract_lane(a, 2) + <f64>f32x4.extract_lane(a, 3);
}
