// Over 600 lines: one accumulator, FamilyStats (label sums per neuron over current and previous
// token, position counts), and the assignment its results feed (assignFamilies); token labels
// are labels.ts, the plan's wiring familyResults.ts.
/**
 * Neuron families (docs/method-notes.md "Families and roles"): the variance reduction (VR) of each
 * reference neuron's activation by binary token labels, on the current and the previous token,
 * and the binary mutual information between firing and position.
 *
 * One streaming pass, memory independent of the token count. For a binary label y,
 *   VR = 1 − [(1−β)Var(v|y=0) + β Var(v|y=1)] / Var(v) = (n₁n₀/n)(m₁ − m₀)² / SS,
 * the between-group share of the sum of squares SS — so only per-group *sums* of v are needed,
 * plus Σv and Σv² per neuron. Groups are the token classes of labels.ts (all current-token
 * labels), the same for the previous token, POS tags, documents and positions; a label's sums are
 * the sum over its classes. Each kept token adds its activation row to six group rows.
 *
 * POS labels are scored on tagged tokens only (their own Σv, Σv² and n): untagged text (most
 * corpora) would otherwise make "is NOUN" mostly mean "comes from the tagged corpus".
 */
import type { Corpus, CorpusDocument } from '../corpus';
import { EngineError, throwIfCancelled, type CancellationSignal } from '../errors';
import { KernelMemory } from '../kernels';
import { columnRange, kernelPool, partsFor } from '../kernels/pool';
import { classLabels, FEATURES, POS_TAGS, tokenClasses, type TokenClasses, type UnigramOptions } from '../labels';
import type { Accumulator, AccumulatorState, ActivationBatch, StateValue } from './types';

export const FAMILIES = ['unigram', 'alphabet', 'token-feature', 'previous-token', 'position', 'syntax', 'semantic', 'unexplained'] as const;
export type Family = (typeof FAMILIES)[number];

/** Label kinds; each neuron keeps its best label of every kind. */
export const LABEL_KINDS = [
  'unigram',
  'alphabet',
  'feature',
  'pos',
  'prev:unigram',
  'prev:alphabet',
  'prev:feature',
  'prev:pos',
  'source',
  'topic',
  'position',
] as const;
export type LabelKind = (typeof LABEL_KINDS)[number];

export interface FamilyThresholds {
  /** docs/method-notes.md: a unigram neuron's best VR > 0.5. */
  unigram: number;
  /** docs/method-notes.md: alphabet VR > 0.35, for the best neuron of each letter. */
  alphabet: number;
  /** Token features (space, capitals, digits, punctuation, starts-with); not fixed by the paper: the unigram bar. */
  feature: number;
  /** POS tags (syntax; dependency and morphology tags would join them); not fixed by the paper: the unigram bar. */
  syntax: number;
  /** Document source and topic labels (semantic); not fixed by the paper: the unigram bar. */
  semantic: number;
  /** Binary MI (nats) between firing and position that makes a position neuron. */
  positionMi: number;
  /** docs/method-notes.md: position candidates have pre-activation kurtosis below this. */
  positionKurtosis: number;
}

export const DEFAULT_THRESHOLDS: FamilyThresholds = { unigram: 0.5, alphabet: 0.35, feature: 0.5, syntax: 0.5, semantic: 0.5, positionMi: 0.05, positionKurtosis: 2 };

export interface FamilyStatsOptions {
  nNeurons: number;
  nPositions: number;
  classes: TokenClasses;
  /** Label sources: the corpus's ids, documents and tags. */
  corpus: Pick<Corpus, 'ids' | 'doc' | 'pos' | 'documents' | 'nPositions'>;
  /** Which activation the VR is taken of (default post, as the correlations). */
  activation?: 'post' | 'pre';
  /** false: the JS loop instead of the SIMD kernel (the kernel's reference in tests). */
  kernel?: boolean;
}

/** Distinct (source, topic) pairs of the documents: the groups the semantic labels are made of. */
export function documentGroups(docs: readonly CorpusDocument[]): { groupOf: Int32Array; groups: CorpusDocument[] } {
  const keys = new Map<string, number>();
  const groups: CorpusDocument[] = [];
  const groupOf = Int32Array.from(docs, (d) => {
    const key = `${d.source}\u0000${d.topic ?? ''}`;
    let g = keys.get(key);
    if (g === undefined) {
      keys.set(key, (g = groups.length));
      groups.push({ source: d.source, ...(d.topic ? { topic: d.topic } : {}) });
    }
    return g;
  });
  return { groupOf, groups };
}

const P = POS_TAGS.length;
const KIND = 'FamilyStats/1';

/** Sums of v per group (rows of N) and counts per group. */
class Groups {
  readonly sum: Float64Array;
  readonly count: Float64Array;
  constructor(
    readonly n: number,
    readonly N: number,
    mem?: KernelMemory,
  ) {
    this.sum = f64(n * N, mem);
    this.count = new Float64Array(n);
  }
}

/** A zeroed float64 array, in the kernel's memory when there is one. */
function f64(n: number, mem?: KernelMemory): Float64Array {
  return mem ? mem.f64(mem.alloc(8 * n), n) : new Float64Array(n);
}

/** Group rows per token in the kernel's target list: cur, prev, pos, prevPos, docs, position. */
const ROWS = 6;

export class FamilyStats implements Accumulator<FamilyStatsResult> {
  private readonly N: number;
  private readonly T: number;
  private readonly C: number;
  private readonly groupOf: Int32Array;
  private readonly nDocGroups: number;
  /** Kept tokens, Σv, Σv² over them. */
  n = 0;
  readonly sum: Float64Array;
  readonly sumSq: Float64Array;
  readonly cur: Groups;
  /** Classes of the previous token, plus one group (index C) for "none": BOS/EOS before. */
  readonly prev: Groups;
  /** POS on tagged tokens, with their own totals; the same for tokens whose previous token is tagged. */
  readonly pos: Groups;
  readonly posTot: Float64Array;
  readonly prevPos: Groups;
  readonly prevPosTot: Float64Array;
  readonly docs: Groups;
  readonly position: Groups;
  /** [T × N] tokens with pre > 0 per position. */
  readonly fire: Float64Array;
  private readonly docGroups: CorpusDocument[];
  /** The kernel's memory; undefined: the JS loop. */
  private readonly mem?: KernelMemory;

  /** Bytes held, for the memory planner: float64 sums of every group row, the firing counts. */
  static bytes(opts: FamilyStatsOptions): number {
    const groups = 2 * opts.classes.nClasses + 1 + 2 * P + Math.max(1, documentGroups(opts.corpus.documents).groups.length) + opts.nPositions;
    return opts.nNeurons * 8 * (groups + 2 + 4 + opts.nPositions);
  }

  constructor(readonly opts: FamilyStatsOptions) {
    const N = (this.N = opts.nNeurons);
    this.T = opts.nPositions;
    this.C = opts.classes.nClasses;
    if (opts.corpus.nPositions !== this.T) throw new EngineError(`FamilyStats: corpus rows have ${opts.corpus.nPositions} positions, the model ${this.T}`);
    const dg = documentGroups(opts.corpus.documents);
    this.groupOf = dg.groupOf;
    this.docGroups = dg.groups;
    this.nDocGroups = dg.groups.length;
    // Every float64 sum in one kernel memory, where the kernel adds into it in place.
    const mem = (this.mem = opts.kernel === false ? undefined : new KernelMemory());
    this.sum = f64(N, mem);
    this.sumSq = f64(N, mem);
    this.cur = new Groups(this.C, N, mem);
    this.prev = new Groups(this.C + 1, N, mem);
    this.pos = new Groups(P, N, mem);
    this.posTot = f64(2 * N, mem);
    this.prevPos = new Groups(P, N, mem);
    this.prevPosTot = f64(2 * N, mem);
    this.docs = new Groups(Math.max(1, this.nDocGroups), N, mem);
    this.position = new Groups(this.T, N, mem);
    this.fire = f64(this.T * N, mem);
  }

  /**
   * The kernel's path (kernels/assembly/families.ts): each kept token's group rows are listed
   * first, in JS (counts too), so a token without a class refuses the batch before anything is
   * added; then one call adds every row, token by token in order.
   */
  private addKernel(batch: ActivationBatch, v: Float32Array, pre: Float32Array): void {
    const { N, T } = this;
    const mem = this.mem!;
    const { ids, doc, pos } = this.opts.corpus;
    const classOf = this.opts.classes.classOf;
    const base = batch.rowStart * T;
    const nK = batch.nKept;
    const stride = ROWS + 3;
    const rowAt = (g: Groups, k: number): number => g.sum.byteOffset + 8 * k * N;
    const targets = new Int32Array(nK * stride);
    const counted: [Groups, number][] = [];
    for (let q = 0; q < nK; q++) {
      const g = base + batch.keptIndex[q]!;
      const t = g % T;
      const id = ids[g]!;
      const c = classOf[id]!;
      if (c < 0) throw new EngineError(`FamilyStats: token id ${id} at corpus token ${g} has no class (classes built from another corpus?)`);
      const o = q * stride;
      const prevId = t > 0 ? ids[g - 1]! : -1;
      const pc = prevId < 0 || prevId === 50256 ? this.C : classOf[prevId]!;
      const rows: [Groups, number][] = [
        [this.cur, c],
        [this.prev, pc < 0 ? this.C : pc],
      ];
      if (pos) {
        const tag = pos[g]!;
        if (tag >= 0) {
          rows.push([this.pos, tag]);
          targets[o] = this.posTot.byteOffset;
        }
        const prevTag = t > 0 ? pos[g - 1]! : -1;
        if (prevTag >= 0) {
          rows.push([this.prevPos, prevTag]);
          targets[o + 1] = this.prevPosTot.byteOffset;
        }
      }
      const d = doc[g]!;
      if (d >= 0) rows.push([this.docs, this.groupOf[d]!]);
      rows.push([this.position, t]);
      rows.forEach(([gr, k], i) => (targets[o + 2 + i] = rowAt(gr, k)));
      targets[o + 2 + ROWS] = this.fire.byteOffset + 8 * t * N;
      counted.push(...rows);
    }
    const vOff = mem.scratch(4 * (v === pre ? 1 : 2) * nK * N + 4 * targets.length);
    mem.f32(vOff, nK * N).set(v.subarray(0, nK * N));
    const preOff = v === pre ? vOff : vOff + 4 * nK * N;
    if (v !== pre) mem.f32(preOff, nK * N).set(pre.subarray(0, nK * N));
    const tOff = preOff + 4 * nK * N;
    mem.i32(tOff, targets.length).set(targets);
    const parts = partsFor(N, nK);
    try {
      kernelPool().run(mem, 'families', 'familyAdd', parts, (p) => [vOff, preOff, N, nK, this.sum.byteOffset, this.sumSq.byteOffset, tOff, ROWS, ...columnRange(N, parts, p)]);
    } catch (e) {
      this.broken = (e as Error).message;
      throw e;
    }
    this.n += nK;
    for (const [g, k] of counted) g.count[k]! += 1;
  }

  /** Set when a batch failed part-way in the kernel: the sums hold part of it. */
  private broken = '';

  add(batch: ActivationBatch): void {
    if (this.broken) throw new EngineError(`FamilyStats holds part of a failed batch: ${this.broken}`);
    const { N, T } = this;
    const acts = batch.models[0]!;
    const v = this.opts.activation === 'pre' ? acts.keptPre : acts.keptPost;
    const pre = acts.keptPre;
    if (this.mem) return this.addKernel(batch, v, pre);
    const preBits = new Int32Array(pre.buffer, pre.byteOffset, pre.length);
    const { ids, doc, pos } = this.opts.corpus;
    const classOf = this.opts.classes.classOf;
    const base = batch.rowStart * T;
    const add = (g: Groups, k: number, off: number): void => {
      g.count[k]! += 1;
      const s = g.sum;
      const o = k * N;
      for (let j = 0; j < N; j++) s[o + j]! += v[off + j]!;
    };
    for (let q = 0; q < batch.nKept; q++) {
      const i = batch.keptIndex[q]!;
      const g = base + i;
      const t = g % T;
      const off = q * N;
      const id = ids[g]!;
      const c = classOf[id]!;
      if (c < 0) throw new EngineError(`FamilyStats: token id ${id} at corpus token ${g} has no class (classes built from another corpus?)`);
      this.n++;
      const s = this.sum;
      const s2 = this.sumSq;
      for (let j = 0; j < N; j++) {
        const x = v[off + j]!;
        s[j]! += x;
        s2[j]! += x * x;
      }
      add(this.cur, c, off);
      const prevId = t > 0 ? ids[g - 1]! : -1;
      const pc = prevId < 0 || prevId === 50256 ? this.C : classOf[prevId]!;
      add(this.prev, pc < 0 ? this.C : pc, off);
      if (pos) {
        const tag = pos[g]!;
        if (tag >= 0) {
          add(this.pos, tag, off);
          this.totals(this.posTot, off, v);
        }
        const prevTag = t > 0 ? pos[g - 1]! : -1;
        if (prevTag >= 0) {
          add(this.prevPos, prevTag, off);
          this.totals(this.prevPosTot, off, v);
        }
      }
      const d = doc[g]!;
      if (d >= 0) add(this.docs, this.groupOf[d]!, off);
      add(this.position, t, off);
      const f = this.fire;
      const fo = t * N;
      // pre > 0 from the float's bits (sign clear, not +0): as a branch, the coin-flip sign of
      // a pre-activation near 0 mispredicts about half the time.
      for (let j = 0; j < N; j++) {
        const b = preBits[off + j]!;
        f[fo + j]! += (((0 - b) | 0) & ~b) >>> 31;
      }
    }
  }

  private totals(tot: Float64Array, off: number, v: Float32Array): void {
    const N = this.N;
    for (let j = 0; j < N; j++) {
      const x = v[off + j]!;
      tot[j]! += x;
      tot[N + j]! += x * x;
    }
  }

  state(): AccumulatorState {
    if (this.broken) throw new EngineError(`FamilyStats holds part of a failed batch: ${this.broken}`);
    const st: Record<string, StateValue> = {
      kind: KIND,
      n: this.n,
      N: this.N,
      C: this.C,
      T: this.T,
      D: this.nDocGroups,
      sum: this.sum,
      sumSq: this.sumSq,
      posTot: this.posTot,
      prevPosTot: this.prevPosTot,
      fire: this.fire,
    };
    for (const [name, g] of this.groupEntries()) {
      st[`${name}.sum`] = g.sum;
      st[`${name}.count`] = g.count;
    }
    return st;
  }

  private groupEntries(): [string, Groups][] {
    return [
      ['cur', this.cur],
      ['prev', this.prev],
      ['pos', this.pos],
      ['prevPos', this.prevPos],
      ['docs', this.docs],
      ['position', this.position],
    ];
  }

  static restore(st: AccumulatorState, opts: FamilyStatsOptions): FamilyStats {
    const f = new FamilyStats(opts);
    if (st.kind !== KIND || st.N !== f.N || st.C !== f.C || st.T !== f.T || st.D !== f.nDocGroups) {
      throw new EngineError('FamilyStats: the checkpoint was written for other neurons, token classes or documents');
    }
    const copy = (dst: Float64Array, name: string): void => {
      const src = st[name];
      if (!(src instanceof Float64Array) || src.length !== dst.length) throw new EngineError(`FamilyStats: checkpoint array ${name} is missing or has the wrong size`);
      dst.set(src);
    };
    f.n = st.n as number;
    copy(f.sum, 'sum');
    copy(f.sumSq, 'sumSq');
    copy(f.posTot, 'posTot');
    copy(f.prevPosTot, 'prevPosTot');
    copy(f.fire, 'fire');
    for (const [name, g] of f.groupEntries()) {
      copy(g.sum, `${name}.sum`);
      copy(g.count, `${name}.count`);
    }
    return f;
  }

  finish(): FamilyStatsResult {
    return new FamilyStatsResult(this, this.docGroups);
  }
}

/** One scored label: a name and, per neuron, its VR. */
interface Scored {
  name: string;
  kind: LabelKind;
}

/** Best label of each kind per neuron. */
export interface Explanations {
  kinds: readonly LabelKind[];
  /** Label names; `best[k·N + j]` indexes it (−1: no label of that kind). */
  labels: string[];
  best: Int32Array;
  /** [kinds × N] VR of that label (0 where none). */
  vr: Float64Array;
  /** [N] binary MI (nats) between pre > 0 and position. */
  positionMi: Float64Array;
  /** [26 × N] VR of each letter's alphabet label (0 where the corpus has no such token): the alphabet family keeps each letter's best neuron. */
  letterVr: Float64Array;
}

export class FamilyStatsResult {
  constructor(
    readonly s: FamilyStats,
    readonly docGroups: CorpusDocument[],
  ) {}

  /** VR of every label, the best per kind and neuron, and the position MI. */
  explain(signal?: CancellationSignal): Explanations {
    const s = this.s;
    const N = s.opts.nNeurons;
    const T = s.opts.nPositions;
    const tc = s.opts.classes;
    const labels: Scored[] = [];
    const best = new Int32Array(LABEL_KINDS.length * N).fill(-1);
    const vr = new Float64Array(LABEL_KINDS.length * N);
    const kindIndex = new Map(LABEL_KINDS.map((k, i) => [k, i]));
    const tmp = new Float64Array(N);
    const ss = new Float64Array(N);
    const letterVr = new Float64Array(26 * N);
    const sumOf = (tot: Float64Array | undefined, n: number): { n: number; sum: Float64Array; ss: Float64Array } => {
      const sum = tot ? tot.subarray(0, N) : s.sum;
      const sq = tot ? tot.subarray(N) : s.sumSq;
      const out = new Float64Array(N);
      for (let j = 0; j < N; j++) out[j] = n > 0 ? Math.max(0, sq[j]! - (sum[j]! * sum[j]!) / n) : 0;
      return { n, sum, ss: out };
    };
    const all = sumOf(undefined, s.n);
    ss.set(all.ss);
    let calls = 0;
    const score = (name: string, kind: LabelKind, g: Groups, members: readonly number[], pop: { n: number; sum: Float64Array; ss: Float64Array }): void => {
      if ((calls++ & 15) === 0) throwIfCancelled(signal);
      let n1 = 0;
      tmp.fill(0);
      for (const c of members) {
        n1 += g.count[c]!;
        const o = c * N;
        for (let j = 0; j < N; j++) tmp[j]! += g.sum[o + j]!;
      }
      const n = pop.n;
      const n0 = n - n1;
      if (n1 === 0 || n0 === 0) return;
      const li = labels.length;
      labels.push({ name, kind });
      const k = kindIndex.get(kind)!;
      const w = (n1 * n0) / n;
      const letter = kind === 'alphabet' ? name.charCodeAt(name.length - 1) - 97 : -1;
      for (let j = 0; j < N; j++) {
        const den = pop.ss[j]!;
        if (!(den > 0)) continue;
        const d = tmp[j]! / n1 - (pop.sum[j]! - tmp[j]!) / n0;
        const r = Math.min(1, (w * d * d) / den);
        if (letter >= 0) letterVr[letter * N + j] = r;
        if (r > vr[k * N + j]!) {
          vr[k * N + j] = r;
          best[k * N + j] = li;
        }
      }
    };
    for (const l of classLabels(tc)) {
      score(l.name, l.kind, s.cur, l.classes, all);
      score(`prev:${l.name}`, `prev:${l.kind}` as LabelKind, s.prev, l.classes, all);
    }
    if (s.opts.corpus.pos) {
      const tagged = sumOf(s.posTot, sumCounts(s.pos));
      const prevTagged = sumOf(s.prevPosTot, sumCounts(s.prevPos));
      POS_TAGS.forEach((tag, i) => {
        score(`pos:${tag}`, 'pos', s.pos, [i], tagged);
        score(`prev:pos:${tag}`, 'prev:pos', s.prevPos, [i], prevTagged);
      });
    }
    const bySource = new Map<string, number[]>();
    this.docGroups.forEach((d, i) => {
      bySource.set(d.source, [...(bySource.get(d.source) ?? []), i]);
      if (d.topic) score(`topic:${d.topic}`, 'topic', s.docs, [i], all);
    });
    for (const [src, members] of bySource) score(`source:${src}`, 'source', s.docs, members, all);
    for (let t = 1; t < T; t++) score(`position:=${t}`, 'position', s.position, [t], all);
    for (const k of positionCuts(T)) score(`position:<${k}`, 'position', s.position, range(k), all);

    return { kinds: LABEL_KINDS, labels: labels.map((l) => l.name), best, vr, positionMi: this.positionMi(signal), letterVr };
  }

  /** docs/method-notes.md: MI = mean_t[p_t log(p_t/p) + (1−p_t) log((1−p_t)/(1−p))] over positions with tokens. */
  positionMi(signal?: CancellationSignal): Float64Array {
    const s = this.s;
    const N = s.opts.nNeurons;
    const T = s.opts.nPositions;
    const out = new Float64Array(N);
    const xlog = (a: number, b: number): number => (a > 0 ? a * Math.log(a / b) : 0);
    for (let j = 0; j < N; j++) {
      if ((j & 1023) === 0) throwIfCancelled(signal);
      let fired = 0;
      for (let t = 0; t < T; t++) fired += s.fire[t * N + j]!;
      const p = s.n > 0 ? fired / s.n : 0;
      if (p <= 0 || p >= 1) continue;
      let mi = 0;
      let m = 0;
      for (let t = 0; t < T; t++) {
        const nt = s.position.count[t]!;
        if (nt === 0) continue;
        const pt = s.fire[t * N + j]! / nt;
        mi += xlog(pt, p) + xlog(1 - pt, 1 - p);
        m++;
      }
      out[j] = m > 0 ? mi / m : 0;
    }
    return out;
  }
}

const sumCounts = (g: Groups): number => g.count.reduce((a, b) => a + b, 0);
const range = (k: number): number[] => Array.from({ length: k }, (_, i) => i);

/** Cut points for the "position < k" labels: powers of two and sixteenths of the context. */
export function positionCuts(T: number): number[] {
  const cuts = new Set<number>();
  for (let k = 2; k < T; k *= 2) cuts.add(k);
  for (let i = 1; i < 16; i++) {
    const k = Math.round((i * T) / 16);
    if (k >= 2 && k < T) cuts.add(k);
  }
  return [...cuts].sort((a, b) => a - b);
}

/** Which family threshold a label kind is held to. */
function thresholdOf(kind: LabelKind, th: FamilyThresholds): number {
  const base = kind.replace(/^prev:/, '');
  if (base === 'unigram') return th.unigram;
  if (base === 'alphabet') return th.alphabet;
  if (base === 'feature') return th.feature;
  if (base === 'pos') return th.syntax;
  return th.semantic;
}

function familyOf(kind: LabelKind): Family {
  if (kind.startsWith('prev:')) return 'previous-token';
  if (kind === 'unigram' || kind === 'alphabet') return kind;
  if (kind === 'feature') return 'token-feature';
  if (kind === 'pos') return 'syntax';
  if (kind === 'position') return 'position';
  return 'semantic';
}

export interface FamilyAssignment {
  family: Family[];
  /** The label that put the neuron in its family; for `unexplained`, its best label overall ('' if none). */
  label: string[];
  vr: Float64Array;
}

/**
 * Families from the explanations. A family's test passes when its best label's VR is above the
 * kind's threshold (position: kurtosis below `positionKurtosis` and MI above `positionMi`, with
 * the best position label's VR); of the passing ones, the highest VR wins.
 *
 * Alphabet, as the paper's notebook has it: for each letter, only the neuron with the highest VR
 * on "the token is that letter" joins, if that VR is above the alphabet threshold. Its label is
 * the letter's unigram label too, with the same VR: on a tie the alphabet family wins.
 */
export function assignFamilies(ex: Explanations, kurt: Float64Array, th: FamilyThresholds = DEFAULT_THRESHOLDS): FamilyAssignment {
  const N = ex.positionMi.length;
  const family: Family[] = new Array(N);
  const label: string[] = new Array(N);
  const vr = new Float64Array(N);
  const K = ex.kinds.length;
  // Each letter's best neuron (the first on a tie), and the letter each neuron wins with its highest VR.
  const wonVr = new Float64Array(N).fill(-1);
  const wonLetter = new Int32Array(N).fill(-1);
  for (let c = 0; c < 26; c++) {
    let bj = -1;
    let bv = th.alphabet;
    for (let j = 0; j < N; j++) {
      const r = ex.letterVr[c * N + j]!;
      if (r > bv) {
        bv = r;
        bj = j;
      }
    }
    if (bj >= 0 && bv > wonVr[bj]!) {
      wonVr[bj] = bv;
      wonLetter[bj] = c;
    }
  }
  for (let j = 0; j < N; j++) {
    let win = -1;
    let winVr = -1;
    let winLabel = '';
    let top = -1;
    let topVr = -1;
    for (let k = 0; k < K; k++) {
      const b = ex.best[k * N + j]!;
      if (b < 0) continue;
      const r = ex.vr[k * N + j]!;
      if (r > topVr) {
        topVr = r;
        top = k;
      }
      const kind = ex.kinds[k]!;
      if (kind === 'alphabet') {
        // The letter this neuron is the best of, not necessarily its best letter.
        if (wonLetter[j]! >= 0 && wonVr[j]! >= winVr) {
          winVr = wonVr[j]!;
          win = k;
          winLabel = `alphabet:${String.fromCharCode(97 + wonLetter[j]!)}`;
        }
        continue;
      }
      const passes = kind === 'position' ? kurt[j]! < th.positionKurtosis && ex.positionMi[j]! > th.positionMi : r > thresholdOf(kind, th);
      if (passes && r > winVr) {
        winVr = r;
        win = k;
        winLabel = ex.labels[b]!;
      }
    }
    if (win >= 0) {
      family[j] = familyOf(ex.kinds[win]!);
      label[j] = winLabel;
      vr[j] = winVr;
    } else {
      family[j] = 'unexplained';
      label[j] = top >= 0 ? ex.labels[ex.best[top * N + j]!]! : '';
      vr[j] = top >= 0 ? ex.vr[top * N + j]! : 0;
    }
  }
  return { family, label, vr };
}

/**
 * Whether a label holds at corpus token g (row·nPositions + position), for marking examples.
 * Names as `explain` writes them.
 */
export function labelAt(name: string, g: number, corpus: FamilyStatsOptions['corpus'], classes: TokenClasses): boolean {
  const T = corpus.nPositions;
  let rest = name;
  let at = g;
  if (rest.startsWith('prev:')) {
    if (g % T === 0) return false;
    rest = rest.slice(5);
    at = g - 1;
  }
  const colon = rest.indexOf(':');
  const kind = rest.slice(0, colon);
  const value = rest.slice(colon + 1);
  const id = corpus.ids[at]!;
  const c = id === 50256 ? -1 : classes.classOf[id]!;
  switch (kind) {
    case 'unigram':
      return c >= 0 && classes.words[classes.classWord[c]!] === value;
    case 'alphabet':
      return c >= 0 && classes.classLetter[c] === value.charCodeAt(0) - 97;
    case 'feature':
      if (value.startsWith('starts-')) return c >= 0 && classes.classInitial[c] === value.charCodeAt(value.length - 1) - 97;
      return c >= 0 && (classes.classBits[c]! & (1 << FEATURES.indexOf(value as (typeof FEATURES)[number]))) !== 0;
    case 'pos':
      return !!corpus.pos && corpus.pos[at] === POS_TAGS.indexOf(value as (typeof POS_TAGS)[number]);
    case 'source':
    case 'topic': {
      const d = corpus.doc[at]!;
      if (d < 0) return false;
      const doc = corpus.documents[d]!;
      return kind === 'source' ? doc.source === value : doc.topic === value;
    }
    case 'position':
      return value.startsWith('<') ? at % T < Number(value.slice(1)) : at % T === Number(value.slice(1));
    default:
      return false;
  }
}

/** Token classes for a corpus: counts every id of its rows except BOS/EOS. */
export function corpusClasses(corpus: Pick<Corpus, 'ids' | 'tokens'>, vocabSize: number, tokenString: (id: number) => string, opts: UnigramOptions = {}): TokenClasses {
  const counts = new Uint32Array(vocabSize);
  for (const id of corpus.ids) {
    if (id === 50256) continue;
    if (id < 0 || id >= vocabSize) throw new EngineError(`corpus token id ${id} is outside the vocabulary of ${vocabSize}`);
    counts[id]!++;
  }
  // Every id's string: the unigram rule counts how many vocabulary ids share a normal form.
  const strings = Array.from({ length: vocabSize }, (_, id) => tokenString(id));
  return tokenClasses(strings, counts, corpus.tokens.kept, opts);
}
