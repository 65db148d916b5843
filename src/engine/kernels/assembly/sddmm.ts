// AssemblyScript source of fast mode's sampled dense-dense products (built into
// dist/kernels/sddmm.wasm; see src/engine/kernels/index.ts and analysis/gemm.ts SddmmArena).
// Pointers are byte offsets into the imported memory.

/**
 * For rows i in [i0, i1) and their candidates c in rowptr[i] .. rowptr[i+1]−1 (CSR, i32):
 *   out[c] (f64) += Σ_k x[i·t + k] · y[cols[c]·t + k]
 * x and y are row-major float32 rows of length t. The sum runs in four f32x4 accumulators
 * (16 lanes, so a lane sums ≤ t/16 products), added together and then lane by lane in float64;
 * the t mod 16 tail adds one float32 product at a time in float64. The same precision class as
 * the fp32 GEMM partials of exact mode.
 */
export function sddmm(x: usize, y: usize, t: i32, rowptr: usize, cols: usize, i0: i32, i1: i32, out: usize): void {
  const rowBytes = <usize>t << 2;
  const vBytes = rowBytes & ~(<usize>63);
  for (let i = i0; i < i1; i++) {
    const xr = x + <usize>i * rowBytes;
    const c1 = load<i32>(rowptr + (<usize>i << 2), 4);
    for (let c = load<i32>(rowptr + (<usize>i << 2)); c < c1; c++) {
      const yr = y + <usize>load<i32>(cols + (<usize>c << 2)) * rowBytes;
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      let k: usize = 0;
      for (; k < vBytes; k += 64) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load(xr + k), v128.load(yr + k)));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(xr + k, 16), v128.load(yr + k, 16)));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(xr + k, 32), v128.load(yr + k, 32)));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(xr + k, 48), v128.load(yr + k, 48)));
      }
      const a = f32x4.add(f32x4.add(f32x4.add(a0, a1), a2), a3);
      let s = <f64>f32x4.extract_lane(a, 0) + <f64>f32x4.extract_lane(a, 1) + <f64>f32x4.extract_lane(a, 2) + <f64>f32x4.extract_lane(a, 3);
      for (; k < rowBytes; k += 4) s += <f64>(load<f32>(xr + k) * load<f32>(yr + k));
      const o = out + (<usize>c << 3);
      store<f64>(o, load<f64>(o) + s);
    }
  }
}
