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
