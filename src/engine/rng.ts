/**
 * mulberry32: small, fast, and its whole state is one int32, so an accumulator can store it in
 * its checkpoint. The one seeded generator of the project (examples' reservoirs; test data,
 * random weights and toy checkpoints in tests and tools). The baseline's rotation matrices
 * (`rotationMatrix`, below) use xoshiro128** seeded by splitmix64: their draw is part of the
 * method's recorded results.
 */
import { EngineError } from './errors';

export class Rng {
  constructor(public s: number) {}
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** `mulberry32(seed)()` draws the same sequence as `new Rng(seed | 0).next()`. */
export function mulberry32(seed: number): () => number {
  const r = new Rng(seed | 0);
  return () => r.next();
}

// ---- the baseline's random matrices ------------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 (Steele, Lea, Flood 2014): seeds xoshiro from one 64-bit key. */
function splitmix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The baseline's random matrix R_l for layer `layer` of model m: d×d, i.i.d. N(0,1) entries, each
 * row then scaled to unit length (not orthogonalised: the paper's approximate rotation).
 * Row-major float64. Reproducible from (seed, layer): splitmix64 of the key seed·2^32 + layer
 * seeds xoshiro128**; normals come in row-major pairs by Box–Muller, z0 = ρ·cos θ, z1 = ρ·sin θ
 * with ρ = sqrt(−2 ln(1 − u1)), θ = 2π·u2, u = 53-bit uniforms in [0, 1).
 */
export function rotationMatrix(seed: number, layer: number, d: number, out?: Float64Array): Float64Array {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new EngineError(`rotation seed ${seed} must be an integer in [0, 2^32)`);
  if (!Number.isInteger(layer) || layer < 0 || layer >= 2 ** 32) throw new EngineError(`rotation layer ${layer} is not a valid index`);
  // Xoshiro128's state in locals and its steps written out (the class's next() twice per
  // uniform): the same numbers, ~5× faster than through the object — a finish draws L of these
  // (9.4M normals each at GPT-2-small size) every pass.
  const st = { s: ((BigInt(seed) << 32n) | BigInt(layer)) & MASK64 };
  const ka = splitmix64(st);
  const kb = splitmix64(st);
  let s0 = Number(ka & 0xffffffffn) | 0;
  let s1 = Number(ka >> 32n) | 0;
  let s2 = Number(kb & 0xffffffffn) | 0;
  let s3 = Number(kb >> 32n) | 0;
  let t = 0;
  let x = 0;
  if (out && out.length !== d * d) throw new EngineError(`rotationMatrix: the output has ${out.length} values, not ${d}×${d}`);
  // `out`: a buffer reused from layer to layer. A fresh 75 MB array (d = 3,072) costs more in page
  // faults on first touch (~0.3 s on the 2-core VM) than drawing its numbers.
  const R = out ?? new Float64Array(d * d);
  for (let i = 0; i < R.length; i += 2) {
    // u1: 27 high bits of one output, 26 of the next.
    x = Math.imul(s1, 5);
    const h1 = Math.imul((x << 7) | (x >>> 25), 9) >>> 5;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const l1 = Math.imul((x << 7) | (x >>> 25), 9) >>> 6;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const h2 = Math.imul((x << 7) | (x >>> 25), 9) >>> 5;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const l2 = Math.imul((x << 7) | (x >>> 25), 9) >>> 6;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const rho = Math.sqrt(-2 * Math.log(1 - (h1 * 67108864 + l1) / 9007199254740992));
    const theta = 2 * Math.PI * ((h2 * 67108864 + l2) / 9007199254740992);
    R[i] = rho * Math.cos(theta);
    if (i + 1 < R.length) R[i + 1] = rho * Math.sin(theta);
  }
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let b = 0; b < d; b++) s += R[k * d + b]! * R[k * d + b]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let b = 0; b < d; b++) R[k * d + b]! *= inv;
  }
  return R;
}
