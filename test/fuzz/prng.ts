// The fuzz suite's only source of randomness: case `i` of seed `s` draws from its own stream, so a
// case is reproduced from (s, i) alone, whatever ran before it and in whichever worker.
import { Rng } from '../../src/engine/rng';

/** A 32-bit mix of (seed, index): murmur3's finaliser over both words. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

export class Prng {
  private readonly r: Rng;
  constructor(seed: number) {
    this.r = new Rng(seed | 0);
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.r.next();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.r.next() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.r.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    if (a.length === 0) throw new Error('pick from an empty list');
    return a[this.int(a.length)]!;
  }
  /** One of `choices`, drawn by weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((s, [, w]) => s + w, 0);
    let x = this.r.next() * total;
    for (const [v, w] of choices) {
      if ((x -= w) < 0) return v;
    }
    return choices[choices.length - 1]![0];
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}
