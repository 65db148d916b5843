// AssemblyScript source of the paper histogram's kernel (built by `npm run build` into
// dist/kernels/paperhist.wasm; see src/engine/kernels/index.ts). Pointers are byte offsets into
// the imported memory.
//
// The bin of each value is analysis/paperhist.ts's paperBinFast: the lookup table over cells of
// 1/1024 from −10, else searchsorted over the float32 edges of the value or, when an edge is
// within 2⁻⁸, of its fp16 rounding (ties to even). The same float64 operations and comparisons as
// the JS, so the same bins; columns are independent, so the pool runs column ranges at once.

const BINS: i32 = 257;
const CELLS: f64 = 1024;
const NEAR: f64 = 0.00390625; // 2^-8

/** The first i with edges[i] ≥ v (256 when none); `edges` are 256 float32. */
@inline function searchsorted(edges: usize, v: f64): i32 {
  let g = Math.ceil((v + 10) * 10.2);
  let i: i32 = g < 0 ? 0 : g > 256 ? 256 : <i32>g;
  while (i > 0 && <f64>load<f32>(edges + (<usize>(i - 1) << 2)) >= v) i--;
  while (i < 256 && <f64>load<f32>(edges + (<usize>i << 2)) < v) i++;
  return i;
}

/** x (a float32 value) rounded to the nearest fp16, ties to even; ±Infinity past 65504. */
function toHalf(x: f64): f64 {
  const bits = reinterpret<u32>(<f32>x);
  const sign: f64 = bits >>> 31 ? -1 : 1;
  const exp = <i32>((bits >>> 23) & 0xff);
  if (exp == 0xff) return bits & 0x7fffff ? NaN : sign * Infinity;
  const a = Math.abs(x);
  const e = (exp - 127 > -14 ? exp - 127 : -14) - 10;
  const ulp = reinterpret<f64>(<u64>(e + 1023) << 52); // 2^e, exactly
  const q = a / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && r % 2 == 1)) r += 1;
  const h = r * ulp;
  return h > 65504 ? sign * Infinity : sign * h;
}

@inline function paperBin(edges: usize, x: f64): i32 {
  if (x != x) return BINS - 1;
  const i = searchsorted(edges, x);
  const lo = i > 0 ? x - <f64>load<f32>(edges + (<usize>(i - 1) << 2)) : Infinity;
  const hi = i < 256 ? <f64>load<f32>(edges + (<usize>i << 2)) - x : Infinity;
  return lo > NEAR && hi > NEAR ? i : searchsorted(edges, toHalf(x));
}

/**
 * counts[j·257 + bin(x[t, j])] += 1 for every token t < T and column j in [j0, j1) of the
 * [T × N] float32 values `x`. `lut` (int16, `nLut` cells) and `edges` as in paperhist.ts.
 */
export function paperCounts(x: usize, T: i32, N: i32, j0: i32, j1: i32, counts: usize, lut: usize, nLut: i32, edges: usize): void {
  const nl = <f64>nLut;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * <usize>N) << 2);
    for (let j = j0; j < j1; j++) {
      const v = <f64>load<f32>(row + (<usize>j << 2));
      let bin: i32 = -1;
      const c = Math.floor((v + 10) * CELLS);
      if (c >= 0 && c < nl) bin = <i32>load<i16>(lut + (<usize>(<i32>c) << 1));
      if (bin < 0) bin = paperBin(edges, v);
      const p = counts + ((<usize>j * <usize>BINS + <usize>bin) << 2);
      store<u32>(p, load<u32>(p) + 1);
    }
  }
}
