/**
 * CrossMoments' dense products (exact mode, and fast mode's screen or counted prefix) and the
 * exact finish from them (crossmoments.ts has the design).
 */
import { EngineError } from '../../errors';
import { reclaim } from '../blocking';
import type { CrossMoments } from '../crossmoments';
import type { GramLayout } from '../gemm';
import type { AccumulatorState } from '../types';
import { bigFinish, gramMoments, rotatedCorr, rotatedMax } from './baseline';
import { addInto, copyInto, invStd, num, XStats, Y_REL } from './common';
import { partnerMax } from './finishKernels';
import type { ArrayPool } from './pool';
import type { CrossMomentsResult, YMoments } from './types';

/** One sub-screen of a fast-mode screen: Σ x'y in fp32 (updated in place by the GEMM), Σy, Σy², x's sums. */
export interface SubScreen {
  xy: Float32Array;
  sy: Float64Array;
  syy: Float64Array;
  xs: XStats;
}

/**
 * Dense products over some tokens: `sxy` is Σ x'y (block × N_m; x' shifted), `syAcc` Σ y, and
 * `gram` m's within-layer Σ y_l y_lᵀ (diagonal: Σ y²). A fast-mode screen keeps Σ x'y per
 * sub-screen instead (`subs`), pooled into `sxy` (fp32) by `pool()` once candidates are drawn.
 */
export class DenseMoments {
  /**
   * Float64 totals, B × N_m, allocated at the first flush; a run whose tokens all fit in one
   * partial never flushes and finishes from the partial itself (`finalize`): the same values,
   * without the 8·B·N_m bytes (a third of a GPT-2-small-size block at 1,024 tokens, where
   * the planner makes blocks 3× as wide). A screen: empty, then the pooled fp32 sums.
   */
  sxy: Float64Array | Float32Array;
  /** The float64 totals exist (a flush happened, or a checkpoint held them). */
  private totals = false;
  readonly subs: SubScreen[];
  /** screen() calls so far: the next batch goes to sub-screen screenCalls mod subs.length. */
  screenCalls = 0;
  /** Σ y, float64 (added every step). */
  readonly syAcc: Float64Array;
  /** L × d × d; the upper block triangle accumulates, `finalize` fills the rest. */
  gram: Float64Array;
  /** fp32 partials since the last flush, updated in place by the GEMMs; released by `finalize`. */
  p32: Float32Array;
  gp32: Float32Array[];
  partialTokens = 0;
  /** x statistics of exactly these tokens. */
  readonly xs: XStats;
  private final = false;

  constructor(
    readonly B: number,
    readonly Nm: number,
    readonly layout: GramLayout,
    /** False: m's moments come from another block (`yMoments`), and no Gram is held. */
    readonly withGram: boolean,
    /** A screen of this many sub-screens (0: float64 totals). */
    subs = 0,
    /** The run's reused arrays (blocked runs): the partials and the Gram come from it and go back. */
    private readonly arrays?: ArrayPool,
  ) {
    this.subs = Array.from({ length: subs }, () => ({ xy: new Float32Array(B * Nm), sy: new Float64Array(Nm), syy: new Float64Array(Nm), xs: new XStats(B) }));
    this.sxy = new Float64Array(0);
    this.syAcc = new Float64Array(Nm);
    const p32 = subs ? 0 : B * Nm;
    const gram = withGram ? layout.groups * layout.width * layout.width : 0;
    const gp32 = withGram ? layout.blocks.map((b) => b.rows * b.cols) : [];
    if (arrays) {
      // All at once, so that the pool drops what this block does not reuse (pool.ts).
      const want: ['f32' | 'f64', number][] = [...(p32 ? [['f32', p32] as ['f32', number]] : []), ...(gram ? [['f64', gram] as ['f64', number]] : []), ...gp32.map((n) => ['f32', n] as ['f32', number])];
      const got = arrays.takeAll(want);
      let q = 0;
      this.p32 = p32 ? (got[q++] as Float32Array) : new Float32Array(0);
      this.gram = gram ? (got[q++] as Float64Array) : new Float64Array(0);
      this.gp32 = gp32.map(() => got[q++] as Float32Array);
    } else {
      this.p32 = new Float32Array(p32);
      this.gram = new Float64Array(gram);
      this.gp32 = gp32.map((n) => new Float32Array(n));
    }
    this.xs = new XStats(B);
  }

  /** Adds the fp32 partials into the float64 totals and zeroes them. */
  flush(): void {
    if (this.partialTokens === 0) return;
    if (!this.totals && this.subs.length === 0) {
      this.sxy = new Float64Array(this.B * this.Nm);
      this.totals = true;
    }
    addInto(this.sxy, this.p32);
    this.p32.fill(0);
    this.flushGram();
    this.partialTokens = 0;
  }

  private flushGram(): void {
    const w = this.layout.width;
    this.gp32.forEach((part, bi) => {
      const blk = this.layout.blocks[bi]!;
      const base = blk.group * w * w;
      for (let r = 0; r < blk.rows; r++) {
        const dst = base + (blk.r0 + r) * w + blk.c0;
        const src = r * blk.cols;
        for (let c = 0; c < blk.cols; c++) this.gram[dst + c]! += part[src + c]!;
      }
      part.fill(0);
    });
  }

  /**
   * Adds another DenseMoments over other tokens (a token shard) into this one, both partials
   * first flushed: float64 totals summed, partials left empty (the flush rule: crossmoments.ts).
   */
  absorb(o: DenseMoments): void {
    if (this.subs.length || o.subs.length) throw new EngineError('CrossMoments: a fast-mode screen does not merge');
    this.flushAll();
    o.flushAll();
    addInto(this.sxy, o.sxy);
    addInto(this.syAcc, o.syAcc);
    addInto(this.gram, o.gram);
    this.xs.sx.forEach((_, i) => {
      this.xs.sx[i]! += o.xs.sx[i]!;
      this.xs.sxx[i]! += o.xs.sxx[i]!;
    });
    this.xs.n += o.xs.n;
  }

  /** Flushes the partials into float64 totals, which exist afterwards even if empty of tokens. */
  private flushAll(): void {
    if (!this.totals) {
      this.sxy = new Float64Array(this.B * this.Nm);
      this.totals = true;
    }
    if (this.partialTokens > 0) this.flush();
  }

  /** A screen's sub-screen sums into one (fp32, in place of the first), for the baseline's candidates. */
  pool(): void {
    const [first, ...rest] = this.subs;
    if (!first) return;
    for (const u of rest) for (let e = 0; e < first.xy.length; e++) first.xy[e]! += u.xy[e]!;
    this.sxy = first.xy;
    this.subs.length = 0;
  }

  /** Flushes and makes the Gram matrices symmetric (upper onto lower); no add() after this. */
  finalize(): void {
    if (this.final) return;
    if (!this.totals && this.subs.length === 0) {
      // Never flushed: the partial is the total. A flush would have added it to +0, which turns
      // −0 into +0; so does this pass, so that results stay bit-identical to a flushed run.
      const p = this.p32;
      for (let e = 0; e < p.length; e++) if (p[e] === 0) p[e] = 0;
      this.sxy = p;
      this.flushGram();
      this.partialTokens = 0;
    } else {
      this.flush();
    }
    const w = this.layout.width;
    for (let g = 0; g < this.layout.groups && this.withGram; g++) {
      const base = g * w * w;
      for (let a = 0; a < w; a++) for (let b = a + 1; b < w; b++) this.gram[base + b * w + a] = this.gram[base + a * w + b]!;
    }
    // Nothing is added after this, and at GPT-2-small size they are a third of a block's memory.
    if (this.p32 !== this.sxy) this.arrays?.give(this.p32);
    this.arrays?.give(...this.gp32);
    this.p32 = new Float32Array(0);
    this.gp32 = [];
    this.final = true;
  }

  /** After m's moments are taken from it: the Gram is the largest array of a pair's first block. */
  releaseGram(): void {
    this.arrays?.give(this.gram);
    this.gram = new Float64Array(0);
  }

  /** After the exact finish: the fp32 partial that served as the totals goes back to the pool. */
  releaseTotals(): void {
    if (this.sxy instanceof Float32Array && this.subs.length === 0) this.arrays?.give(this.sxy);
    this.sxy = new Float64Array(0);
  }

  /** Σ y. */
  sy(): Float64Array {
    return this.syAcc;
  }

  /** Σ y² (the Gram diagonals; after flush). */
  syy(): Float64Array {
    const w = this.layout.width;
    const out = new Float64Array(this.Nm);
    for (let j = 0; j < this.Nm; j++) {
      const g = Math.floor(j / w);
      const a = j - g * w;
      out[j] = this.gram[g * w * w + a * w + a]!;
    }
    return out;
  }

  save(s: AccumulatorState, p: string): void {
    s[`${p}partialTokens`] = this.partialTokens;
    s[`${p}sxy`] = this.sxy;
    s[`${p}sy`] = this.syAcc;
    s[`${p}p32`] = this.p32;
    s[`${p}gram`] = this.gram;
    this.gp32.forEach((g, i) => (s[`${p}gp32.${i}`] = g));
    this.xs.save(s, `${p}x.`);
    if (this.subs.length) s[`${p}screenCalls`] = this.screenCalls;
    this.subs.forEach((u, k) => {
      s[`${p}sub${k}.xy`] = u.xy;
      s[`${p}sub${k}.sy`] = u.sy;
      s[`${p}sub${k}.syy`] = u.syy;
      u.xs.save(s, `${p}sub${k}.x.`);
    });
  }

  load(s: AccumulatorState, p: string): void {
    this.partialTokens = num(s, `${p}partialTokens`);
    // Checkpoints of older runs hold the float64 totals even when empty of flushes.
    const saved = s[`${p}sxy`];
    if (this.subs.length === 0 && saved && typeof saved === 'object' && saved.length > 0) {
      this.sxy = new Float64Array(this.B * this.Nm);
      this.totals = true;
    }
    copyInto(this.sxy, s, `${p}sxy`);
    copyInto(this.syAcc, s, `${p}sy`);
    copyInto(this.p32, s, `${p}p32`);
    copyInto(this.gram, s, `${p}gram`);
    this.gp32.forEach((g, i) => copyInto(g, s, `${p}gp32.${i}`));
    this.xs.load(s, `${p}x.`);
    if (this.subs.length) this.screenCalls = num(s, `${p}screenCalls`);
    this.subs.forEach((u, k) => {
      copyInto(u.xy, s, `${p}sub${k}.xy`);
      copyInto(u.sy, s, `${p}sub${k}.sy`);
      copyInto(u.syy, s, `${p}sub${k}.syy`);
      u.xs.load(s, `${p}sub${k}.x.`);
    });
  }
}

/** Adds Σ y² of t rows of width w (fp32 values, float64 sums) into `dst`. */
export function sumSquares(dst: Float64Array, y: Float32Array, t: number, w: number): void {
  for (let r = 0; r < t; r++) {
    const o = r * w;
    for (let j = 0; j < w; j++) dst[j]! += y[o + j]! * y[o + j]!;
  }
}

export async function finishExact(c: CrossMoments, D: DenseMoments): Promise<CrossMomentsResult> {
  D.finalize();
  const { B, Nm } = c;
  const n = c.xs.n;
  const sx = c.xs.sx;
  const ix = invStd(sx, c.xs.sxx, n);
  const sy = D.sy();
  // One layer's R_l at a time, drawn again where used (into one buffer: each caller is done
  // with layer l before it asks for l + 1): all of them are 8·L·d² bytes (0.9 GB at
  // GPT-2-small size), drawing one is a fraction of a second.
  const Rbuf = new Float64Array(c.d * c.d);
  const R = (l: number): Float64Array => c.rotation(l, Rbuf);
  const ym = c.opts.yMoments ? sharedY(c, n) : await gramMoments(c, D, n, R);
  D.releaseGram();
  if (bigFinish(c)) await reclaim();
  const iy = invStd(sy, ym.syy, n, Y_REL);
  const my = new Float64Array(Nm);
  for (let j = 0; j < Nm; j++) my[j] = n > 0 ? sy[j]! / n : 0;
  const maxCorr = new Float64Array(B);
  const partner = new Int32Array(B).fill(-1);
  // On the kernel pool (finishKernels.ts): the same operations per element as the JS loop.
  partnerMax(D.sxy, B, Nm, sx, ix, my, iy, maxCorr, partner, c.signal);
  const baseline = new Float64Array(B).fill(-Infinity);
  const baselinePartner = new Int32Array(B).fill(-1);
  const d = c.d;
  if (c.opts.baselineFinish === 'float64') {
    await rotatedCorr(c, D, n, R, ix, ym, (l, i0, rows, rho) => {
      for (let r = 0; r < rows; r++) {
        const i = i0 + r;
        for (let k = 0; k < d; k++) {
          if (rho[r * d + k]! > baseline[i]!) {
            baseline[i] = rho[r * d + k]!;
            baselinePartner[i] = l * d + k;
          }
        }
      }
    });
  } else {
    c.refined = await rotatedMax(c, D, n, R, ix, ym, baseline, baselinePartner);
  }
  for (let i = 0; i < B; i++) {
    if (ix[i] === 0) {
      baseline[i] = 0;
      baselinePartner[i] = -1;
    }
  }
  D.releaseTotals();
  const res = c.result(maxCorr, partner, baseline, baselinePartner);
  if (c.opts.exportY) res.y = ym;
  return res;
}

/** The `yMoments` of another block, checked to be of the same tokens and rotations. */
export function sharedY(c: CrossMoments, n: number): YMoments {
  const y = c.opts.yMoments!();
  if (y.n !== n || y.seed !== c.opts.seed || y.syy.length !== c.Nm || y.rotVar.length !== c.Nm) {
    throw new EngineError(`CrossMoments: the shared moments of model ${c.opts.model} are of other tokens or rotations (n ${y.n} vs ${n}, seed ${y.seed} vs ${c.opts.seed})`);
  }
  return y;
}
