// AssemblyScript source of the entropy sweep's kernel (built into dist/kernels/entropy.wasm; see
// src/engine/kernels/index.ts and src/engine/entropySweep.ts). Pointers are byte offsets into the
// imported memory. No static data (build.mjs refuses it): Math.log would bring tables, so the
// caller takes the logarithms.
//
// A last-layer neuron fixed to a value moves the final residual along its w_out, so each fixed
// forward's logits are an affine function of the unfixed forward's, element by element:
//   z'_v = α·z_v + γ·b_v + β·c_v
// (entropySweep.ts derives α, γ, β per position and value, b and c per vocabulary id). This kernel
// does what onnxruntime's LogSoftmax, Exp, Mul and ReduceSum did for every fixed value, in two
// passes over a row held in cache: z' and its maximum m, then Σ e^(z'−m) and Σ e^(z'−m)·(z'−m).
// It works in base 2 (the caller scales α, γ, β by log₂ e, so y = z'·log₂ e and e^(z'−m) = 2^(y−m)):
// 2^u = 2^n·2^f, n = round(u), |f| ≤ ½, one polynomial and no multiply by ln 2.

// 2^f on |f| ≤ ½: a degree-5 fit of the relative error (Lawson's algorithm, float64), 2.3e−7 at
// most in float32 Horner: the rounding of z' itself (|z'|·6e−8) is of the same order.
const Q0: f32 = 1.0000000716561694;
const Q1: f32 = 0.6931469670603317;
const Q2: f32 = 0.24022119716406581;
const Q3: f32 = 0.055507132771221136;
const Q4: f32 = 0.009675541739110607;
const Q5: f32 = 0.0013276471963242715;
// u clamped at −125: 2^−125 ≈ 2.4e−38 is still a normal float, and a term that far below the
// maximum (which contributes 2^0 = 1) is below float32's resolution of the sums by 30 orders.
const FLOOR: f32 = -125;
// round(u) by adding 1.5·2²³: the sum's low mantissa bits hold n, and n = t − MAGIC exactly.
const MAGIC: f32 = 12582912;
const MAGIC_BITS: i32 = 0x4b400000;
/** Vectors summed in float32 before a fold into the float64 sums: a lane adds ≤ 64 terms. */
const BLOCK: i32 = 64;

/**
 * The vector constants, written to memory once by `constants` and loaded by `entropyRows` before
 * its loops. Meant to spare V8 rebuilding each v128.const inside the loop; measured on an earlier
 * version of this loop, it made no difference (BENCHMARKS.md), and costs nothing either.
 */
const C_FLOOR = 0;
const C_MAGIC = 16;
const C_Q0 = 32;
const C_Q1 = 48;
const C_Q2 = 64;
const C_Q3 = 80;
const C_Q4 = 96;
const C_Q5 = 112;
const C_BIAS = 128;
/** Bytes of the constants' table. */
export const CONSTANTS_BYTES: i32 = 144;

export function constants(k: usize): void {
  v128.store(k + C_FLOOR, f32x4.splat(FLOOR));
  v128.store(k + C_MAGIC, f32x4.splat(MAGIC));
  v128.store(k + C_Q0, f32x4.splat(Q0));
  v128.store(k + C_Q1, f32x4.splat(Q1));
  v128.store(k + C_Q2, f32x4.splat(Q2));
  v128.store(k + C_Q3, f32x4.splat(Q3));
  v128.store(k + C_Q4, f32x4.splat(Q4));
  v128.store(k + C_Q5, f32x4.splat(Q5));
  v128.store(k + C_BIAS, i32x4.splat(127 - MAGIC_BITS));
}

/** 2^u for u ≤ 0 (see FLOOR), on one value: the row's last V mod 4 ids; entropyRows's loop does the same on four. */
// @ts-ignore: decorator
@inline
function exp2one(u: f32): f32 {
  const x = u < FLOOR ? FLOOR : u;
  const t: f32 = x + MAGIC;
  const f: f32 = x - (t - MAGIC);
  let p = Q5 * f + Q4;
  p = p * f + Q3;
  p = p * f + Q2;
  p = p * f + Q1;
  p = p * f + Q0;
  return p * reinterpret<f32>((reinterpret<i32>(t) + (127 - MAGIC_BITS)) << 23);
}

// @ts-ignore: decorator
@inline
function hsum(a: v128): f64 {
  return <f64>f32x4.extract_lane(a, 0) + <f64>f32x4.extract_lane(a, 1) + <f64>f32x4.extract_lane(a, 2) + <f64>f32x4.extract_lane(a, 3);
}

/**
 * `k0`: the table written by `constants`. For positions t in [t0, t1) of the unfixed logits z
 * [P × V] (float32, row-major) and combos k < K (a value of a neuron, or the unfixed forward
 * itself: α = 1, γ = β = 0), in base 2:
 *   y_v = A·z_v + G·b_v + B·c_v, (A, G, B) = log₂ e·(α, γ, β) = coef[(k·P + t)·3 + 0, 1, 2] (float32);
 *   b = bvec + bIndex[k]·V (float32 [V] each); c (float32 [V]); target[t] (i32, −1: none).
 * Writes, for q = k·P + t and m = max y: sums[2q] = S = Σ 2^(y−m), sums[2q + 1] = U = Σ 2^(y−m)·(y−m)
 * (float64), and pick[q] = y_target − m (float32; 0 without a target). Then, with p = softmax(z'),
 * −Σ p·log p = log S − ln 2·U/S and −log p(target) = log S − ln 2·pick. `row` is this part's
 * scratch of V float32 (y of one combo). Returns 0, or 1 when a sum was NaN or infinite.
 */
export function entropyRows(
  k0: usize, z: usize, P: i32, V: i32, t0: i32, t1: i32, K: i32,
  coef: usize, bvec: usize, bIndex: usize, c: usize, target: usize,
  row: usize, sums: usize, pick: usize,
): i32 {
  const V4 = V & ~3;
  const rowB = <usize>V << 2;
  const kFloor = v128.load(k0 + C_FLOOR);
  const kMagic = v128.load(k0 + C_MAGIC);
  const kQ0 = v128.load(k0 + C_Q0);
  const kQ1 = v128.load(k0 + C_Q1);
  const kQ2 = v128.load(k0 + C_Q2);
  const kQ3 = v128.load(k0 + C_Q3);
  const kQ4 = v128.load(k0 + C_Q4);
  const kQ5 = v128.load(k0 + C_Q5);
  const kBias = v128.load(k0 + C_BIAS);
  let bad: i32 = 0;
  for (let t = t0; t < t1; t++) {
    const zr = z + <usize>t * rowB;
    const tgt = load<i32>(target + (<usize>t << 2));
    for (let k = 0; k < K; k++) {
      const q = <usize>k * <usize>P + <usize>t;
      const cp = coef + q * 12;
      const a = load<f32>(cp);
      const g = load<f32>(cp, 4);
      const be = load<f32>(cp, 8);
      const br = bvec + <usize>load<i32>(bIndex + (<usize>k << 2)) * rowB;
      // Pass 1: y into the row, and its maximum. pmax (x86 maxps), not max: wasm's max costs
      // several instructions for its NaN and ±0 rules; a NaN that pmax drops still reaches the sums.
      const av = f32x4.splat(a);
      const gv = f32x4.splat(g);
      const bv = f32x4.splat(be);
      let mx = f32x4.splat(-Infinity);
      let i = 0;
      for (; i < V4; i += 4) {
        const o = <usize>i << 2;
        const v = f32x4.add(f32x4.add(f32x4.mul(av, v128.load(zr + o)), f32x4.mul(gv, v128.load(br + o))), f32x4.mul(bv, v128.load(c + o)));
        v128.store(row + o, v);
        mx = f32x4.pmax(mx, v);
      }
      let m = Mathf.max(Mathf.max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), Mathf.max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
      for (; i < V; i++) {
        const o = <usize>i << 2;
        const v = a * load<f32>(zr + o) + g * load<f32>(br + o) + be * load<f32>(c + o);
        store<f32>(row + o, v);
        m = Mathf.max(m, v);
      }
      // Pass 2: e = 2^u, u = y − m ≤ 0; S = Σ e, U = Σ e·u, in float32 blocks folded into float64.
      const mv = f32x4.splat(m);
      let S: f64 = 0;
      let U: f64 = 0;
      i = 0;
      while (i < V4) {
        const end = min(V4, i + 4 * BLOCK);
        let s = f32x4.splat(0);
        let uu = f32x4.splat(0);
        for (; i < end; i += 4) {
          const u = f32x4.sub(v128.load(row + (<usize>i << 2)), mv);
          // exp2one's operations on four values.
          const x = f32x4.pmax(u, kFloor);
          const tt = f32x4.add(x, kMagic);
          const f = f32x4.sub(x, f32x4.sub(tt, kMagic));
          let p = f32x4.add(f32x4.mul(kQ5, f), kQ4);
          p = f32x4.add(f32x4.mul(p, f), kQ3);
          p = f32x4.add(f32x4.mul(p, f), kQ2);
          p = f32x4.add(f32x4.mul(p, f), kQ1);
          p = f32x4.add(f32x4.mul(p, f), kQ0);
          // 2^n as float bits, (n + 127) << 23: n ≥ −125 after the clamp, a normal number.
          const e = f32x4.mul(p, i32x4.shl(i32x4.add(tt, kBias), 23));
          s = f32x4.add(s, e);
          uu = f32x4.add(uu, f32x4.mul(e, u));
        }
        S += hsum(s);
        U += hsum(uu);
      }
      for (; i < V; i++) {
        const u = load<f32>(row + (<usize>i << 2)) - m;
        const e = exp2one(u);
        S += <f64>e;
        U += <f64>(e * u);
      }
      // +∞ makes m infinite and the sums NaN; a NaN reaches the sums.
      if (!(S - S == 0 && U - U == 0)) bad = 1;
      store<f64>(sums + (q << 4), S);
      store<f64>(sums + (q << 4), U, 8);
      store<f32>(pick + (q << 2), tgt >= 0 ? load<f32>(row + (<usize>tgt << 2)) - m : 0);
    }
  }
  return bad;
}
