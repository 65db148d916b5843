// AssemblyScript source of the weight statistics' vocab kernel (built by `npm run build` into
// dist/kernels/vocab.wasm; see src/engine/kernels/index.ts). Pointers are byte offsets into the
// imported memory.
//
// One composition row c[0..V) per neuron (weightstats.ts): its sum and central moments in
// float64, summed in token order, and its top and bottom K tokens by sorted insertion, with the
// same operations and comparisons as the JS loop it replaces (weightstats.ts, reduceRowJs), so
// the results are bit-identical. Rows are independent: the worker pool runs row ranges at once.

/**
 * For rows [r0, r1) of the [rows × V] float32 matrix at `c`: mean[r] = Σ c / V and
 * m2/m3/m4[r] = Σ d², Σ d³, Σ d⁴ with d = c − mean (float64 arrays), and the K largest (desc,
 * lower id first on ties) and K smallest (asc) values and token ids into tv/ti and bv/bi
 * ([rows × K] float32 / int32). Returns −1, or the first row whose mean is not finite.
 */
export function vocabRows(
  c: usize, V: i32, r0: i32, r1: i32,
  mean: usize, m2: usize, m3: usize, m4: usize,
  tv: usize, ti: usize, bv: usize, bi: usize, K: i32,
): i32 {
  const last = <usize>(K - 1) << 2;
  for (let r = r0; r < r1; r++) {
    const row = c + ((<usize>r * <usize>V) << 2);
    const tvr = tv + ((<usize>r * <usize>K) << 2);
    const tir = ti + ((<usize>r * <usize>K) << 2);
    const bvr = bv + ((<usize>r * <usize>K) << 2);
    const bir = bi + ((<usize>r * <usize>K) << 2);
    let nt = 0;
    let nb = 0;
    let sum: f64 = 0;
    for (let v = 0; v < V; v++) {
      const x = load<f32>(row + (<usize>v << 2));
      sum += <f64>x;
      if (nt < K || x > load<f32>(tvr + last)) {
        let q = nt < K ? nt++ : K - 1;
        while (q > 0 && load<f32>(tvr + (<usize>(q - 1) << 2)) < x) {
          store<f32>(tvr + (<usize>q << 2), load<f32>(tvr + (<usize>(q - 1) << 2)));
          store<i32>(tir + (<usize>q << 2), load<i32>(tir + (<usize>(q - 1) << 2)));
          q--;
        }
        store<f32>(tvr + (<usize>q << 2), x);
        store<i32>(tir + (<usize>q << 2), v);
      }
      if (nb < K || x < load<f32>(bvr + last)) {
        let q = nb < K ? nb++ : K - 1;
        while (q > 0 && load<f32>(bvr + (<usize>(q - 1) << 2)) > x) {
          store<f32>(bvr + (<usize>q << 2), load<f32>(bvr + (<usize>(q - 1) << 2)));
          store<i32>(bir + (<usize>q << 2), load<i32>(bir + (<usize>(q - 1) << 2)));
          q--;
        }
        store<f32>(bvr + (<usize>q << 2), x);
        store<i32>(bir + (<usize>q << 2), v);
      }
    }
    const mu = sum / <f64>V;
    if (!isFinite(mu)) return r;
    let a2: f64 = 0;
    let a3: f64 = 0;
    let a4: f64 = 0;
    for (let v = 0; v < V; v++) {
      const dd = <f64>load<f32>(row + (<usize>v << 2)) - mu;
      const d2 = dd * dd;
      a2 += d2;
      a3 += d2 * dd;
      a4 += d2 * d2;
    }
    const o = <usize>r << 3;
    store<f64>(mean + o, mu);
    store<f64>(m2 + o, a2);
    store<f64>(m3 + o, a3);
    store<f64>(m4 + o, a4);
  }
  return -1;
}

/**
 * The unembedding moments' Gram (roles.ts unembedMoments): for rows [i0, i1) of the d × d float64
 * matrix at `M`, M[i][j] += Σ_v U[v][i]·U[v][j] for j ≥ i, U the [V × d] float32 matrix at `U`.
 * Each element gets its products added one v at a time in v order, as the plain rank-1 loop adds
 * them (a product of two float32 values is exact in float64), so the sums are bit-identical to it;
 * lanes are neighbouring j. Rows go in bands of ≤ 32 KB of M (L1/L2-resident while every v
 * passes), four v at a time so each M pair is loaded and stored once per four products.
 */
export function gramRows(U: usize, V: i32, d: i32, i0: i32, i1: i32, M: usize): void {
  const rowBytes = <usize>d << 2;
  const band = max<i32>(1, 4096 / d);
  for (let b0 = i0; b0 < i1; b0 += band) {
    const b1 = min<i32>(i1, b0 + band);
    let v = 0;
    for (; v + 4 <= V; v += 4) {
      const r0 = U + <usize>v * rowBytes;
      const r1 = r0 + rowBytes;
      const r2 = r1 + rowBytes;
      const r3 = r2 + rowBytes;
      for (let i = b0; i < b1; i++) {
        const io = <usize>i << 2;
        const a0 = <f64>load<f32>(r0 + io);
        const a1 = <f64>load<f32>(r1 + io);
        const a2 = <f64>load<f32>(r2 + io);
        const a3 = <f64>load<f32>(r3 + io);
        const A0 = f64x2.splat(a0);
        const A1 = f64x2.splat(a1);
        const A2 = f64x2.splat(a2);
        const A3 = f64x2.splat(a3);
        const row = M + ((<usize>i * <usize>d) << 3);
        let j = i;
        for (; j + 2 <= d; j += 2) {
          const jo = <usize>j << 2;
          const p = row + (<usize>j << 3);
          let m = v128.load(p);
          m = f64x2.add(m, f64x2.mul(A0, f64x2.promote_low_f32x4(v128.load64_zero(r0 + jo))));
          m = f64x2.add(m, f64x2.mul(A1, f64x2.promote_low_f32x4(v128.load64_zero(r1 + jo))));
          m = f64x2.add(m, f64x2.mul(A2, f64x2.promote_low_f32x4(v128.load64_zero(r2 + jo))));
          m = f64x2.add(m, f64x2.mul(A3, f64x2.promote_low_f32x4(v128.load64_zero(r3 + jo))));
          v128.store(p, m);
        }
        if (j < d) {
          const jo = <usize>j << 2;
          const p = row + (<usize>j << 3);
          store<f64>(p, load<f64>(p) + a0 * <f64>load<f32>(r0 + jo) + a1 * <f64>load<f32>(r1 + jo) + a2 * <f64>load<f32>(r2 + jo) + a3 * <f64>load<f32>(r3 + jo));
        }
      }
    }
    for (; v < V; v++) {
      const r0 = U + <usize>v * rowBytes;
      for (let i = b0; i < b1; i++) {
        const a0 = <f64>load<f32>(r0 + (<usize>i << 2));
        const row = M + ((<usize>i * <usize>d) << 3);
        for (let j = i; j < d; j++) {
          const p = row + (<usize>j << 3);
          store<f64>(p, load<f64>(p) + a0 * <f64>load<f32>(r0 + (<usize>j << 2)));
        }
      }
    }
  }
}

/**
 * The roles' attention scores (roles.ts attentionScores): out[n·H + h] = Σ_i A[n·d + i]·Bt[i·H + h]
 * for rows [n0, n1) of A [rows × d] and the H columns of Bt [d × H] (float64). Each sum is added
 * in i order from 0, one product at a time, as the JS loop adds it (`h += Wo[n·d + i]·v[i]`), so
 * the results are bit-identical; lanes are neighbouring h, eight at a time in four accumulators.
 */
export function dotColumns(A: usize, d: i32, n0: i32, n1: i32, Bt: usize, H: i32, out: usize): void {
  const colBytes = <usize>H << 3;
  for (let n = n0; n < n1; n++) {
    const row = A + ((<usize>n * <usize>d) << 3);
    const o = out + ((<usize>n * <usize>H) << 3);
    let h = 0;
    for (; h + 8 <= H; h += 8) {
      let s0 = f64x2.splat(0);
      let s1 = f64x2.splat(0);
      let s2 = f64x2.splat(0);
      let s3 = f64x2.splat(0);
      let b = Bt + (<usize>h << 3);
      for (let i = 0; i < d; i++) {
        const a = f64x2.splat(load<f64>(row + (<usize>i << 3)));
        s0 = f64x2.add(s0, f64x2.mul(a, v128.load(b)));
        s1 = f64x2.add(s1, f64x2.mul(a, v128.load(b + 16)));
        s2 = f64x2.add(s2, f64x2.mul(a, v128.load(b + 32)));
        s3 = f64x2.add(s3, f64x2.mul(a, v128.load(b + 48)));
        b += colBytes;
      }
      const p = o + (<usize>h << 3);
      v128.store(p, s0);
      v128.store(p + 16, s1);
      v128.store(p + 32, s2);
      v128.store(p + 48, s3);
    }
    for (; h < H; h++) {
      let s: f64 = 0;
      let b = Bt + (<usize>h << 3);
      for (let i = 0; i < d; i++) {
        s += load<f64>(row + (<usize>i << 3)) * load<f64>(b);
        b += colBytes;
      }
      store<f64>(o + (<usize>h << 3), s);
    }
  }
}
