/**
 * The big arrays of a blocked run's cross moments, reused from pass to pass (issue #13). At
 * GPT-2-small size every pass allocated a fresh GB-sized fp32 partial (and a pair's first block
 * its Gram): each page of each was faulted in and zeroed by the kernel again, 24.8 M minor faults
 * and a quarter of the run's CPU time as system time (BENCHMARKS.md, "GPT-2-small size, fourth
 * pass").
 *
 * Memory stays what the planner counts (blocking.ts): a block takes all of its arrays at once
 * (`takeAll`, when it is created, at the start of its pass), and whatever free buffer that block
 * does not take is dropped then, so the pool never holds more than the last block's arrays, which
 * without it would have been garbage until the next collection. A buffer is reused only for a
 * request within 1% of its size, so a narrower block (a pair's first, which holds the Gram) does
 * not keep a wider one's partial. The last cross pass `clear()`s it before the statistics pass.
 * Arrays handed out are zeroed, as fresh ones are.
 */

type Kind = 'f32' | 'f64';
export type Pooled = Float32Array | Float64Array;

const BYTES: Record<Kind, number> = { f32: 4, f64: 8 };
/** A free buffer serves a request of at least this fraction of its size. */
const FIT = 0.99;

export class ArrayPool {
  private free: ArrayBuffer[] = [];
  /** Buffers reused and allocated (tests and benchmarks). */
  reused = 0;
  allocated = 0;

  /**
   * Zeroed arrays of the given kinds and lengths, from free buffers where one fits; the free
   * buffers left over are dropped (see the file comment).
   */
  takeAll(requests: readonly (readonly [Kind, number])[]): Pooled[] {
    const bytes = requests.map(([k, n]) => BYTES[k] * n);
    // Largest first, each from the smallest free buffer that fits it.
    const order = [...requests.keys()].sort((a, b) => bytes[b]! - bytes[a]!);
    const bufs: (ArrayBuffer | undefined)[] = new Array(requests.length);
    for (const i of order) {
      let best = -1;
      for (let f = 0; f < this.free.length; f++) {
        const cap = this.free[f]!.byteLength;
        if (cap >= bytes[i]! && bytes[i]! >= FIT * cap && (best < 0 || cap < this.free[best]!.byteLength)) best = f;
      }
      if (best >= 0) bufs[i] = this.free.splice(best, 1)[0];
    }
    this.free = [];
    return requests.map(([k, n], i) => {
      const buf = bufs[i];
      if (!buf) {
        this.allocated++;
        return k === 'f32' ? new Float32Array(n) : new Float64Array(n);
      }
      this.reused++;
      const a = k === 'f32' ? new Float32Array(buf, 0, n) : new Float64Array(buf, 0, n);
      a.fill(0);
      return a;
    });
  }

  /** Gives arrays back (the caller holds no reference to them after this). Empty ones are ignored. */
  give(...arrays: Pooled[]): void {
    for (const a of arrays) {
      if (a.length === 0) continue;
      if (this.free.includes(a.buffer as ArrayBuffer)) continue;
      this.free.push(a.buffer as ArrayBuffer);
    }
  }

  /** Drops every free buffer. */
  clear(): void {
    this.free = [];
  }

  /** Bytes held free. */
  heldBytes(): number {
    return this.free.reduce((s, b) => s + b.byteLength, 0);
  }
}
