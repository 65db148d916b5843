/**
 * mulberry32: small, fast, and its whole state is one int32, so an accumulator can store it in
 * its checkpoint. The one seeded generator of the project (examples' reservoirs; test data,
 * random weights and toy checkpoints in tests and tools). Rotation matrices use xoshiro128**
 * (crossmoments.ts): their draw is part of the method's recorded results.
 */
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
