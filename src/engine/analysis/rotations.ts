/**
 * The baseline's rotation matrices, drawn once per run. A blocked run finishes every block with
 * all L matrices R_l of the other model (drawn from the pair's own seed, pairSeed below, so the
 * same for every block of a pair), and drawing one
 * costs ~0.4 s at d = 3,072 (9.4M Box–Muller normals in JS): 5 s per pass, 16–32 passes at
 * GPT-2-small size. Keeping them in memory would take 8·L·d² = 0.9 GB from the blocks, so they go
 * to a temporary file instead and are read back (~75 MB per layer from the page cache, a few
 * tens of ms).
 *
 * The file is unlinked as soon as it is open: it lives only as long as this process holds it, is
 * never read by another session, and leaves nothing behind when a run is killed. Anything that
 * goes wrong with the file (a full disk, an unlink that the platform refuses) turns the cache off
 * and the matrices are drawn again: the numbers are the same either way.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rotationMatrix } from '../rng';

export class RotationCache {
  private fd: number | undefined;
  private path: string | undefined;
  private unlinked = false;
  private broken = false;
  private end = 0;
  /** (seed, layer, d) → byte offset in the file. */
  private readonly where = new Map<string, number>();
  /** Matrices drawn and matrices read back (tests and benchmarks). */
  drawn = 0;
  read = 0;

  constructor(private readonly dir: string = tmpdir()) {}

  /** R_l for (seed, layer) of size d × d into `out`: drawn the first time, read back after. */
  get(seed: number, layer: number, d: number, out: Float64Array): Float64Array {
    const key = `${seed}:${layer}:${d}`;
    const at = this.where.get(key);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    if (at !== undefined && this.fd !== undefined) {
      try {
        if (fs.readSync(this.fd, bytes, 0, bytes.length, at) === bytes.length) {
          this.read++;
          return out;
        }
      } catch {
        // drawn again below
      }
      this.off();
    }
    rotationMatrix(seed, layer, d, out);
    this.drawn++;
    if (!this.broken) {
      try {
        this.open();
        let done = 0;
        while (done < bytes.length) done += fs.writeSync(this.fd!, bytes, done, bytes.length - done, this.end + done);
        this.where.set(key, this.end);
        this.end += bytes.length;
      } catch {
        this.off();
      }
    }
    return out;
  }

  private open(): void {
    if (this.fd !== undefined) return;
    const dir = fs.mkdtempSync(join(this.dir, 'universal-neurons-rot-'));
    this.path = join(dir, 'R.f64');
    this.fd = fs.openSync(this.path, 'w+', 0o600);
    try {
      fs.unlinkSync(this.path);
      fs.rmdirSync(dir);
      this.unlinked = true;
    } catch {
      // Windows keeps an open file: removed at close().
    }
  }

  private off(): void {
    this.broken = true;
    this.where.clear();
    this.close();
  }

  /** Closes (and removes) the file; later calls draw again. */
  close(): void {
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already gone
      }
      this.fd = undefined;
    }
    if (this.path && !this.unlinked) fs.rmSync(join(this.path, '..'), { recursive: true, force: true });
    this.path = undefined;
    this.where.clear();
    this.end = 0;
  }
}

/**
 * The rotation seed of pair (reference, other model `m` ≥ 1) in a run of seed `seed`: the paper
 * draws a fresh R_l for each pair. A 32-bit mix (murmur3's finaliser) of the two, so that pairs'
 * matrices are independent draws and the same run seed gives the same seeds everywhere.
 */
export function pairSeed(seed: number, m: number): number {
  let h = (seed ^ Math.imul(m, 0x9e3779b9)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
