/** CrossMoments results: joining a pair's reference blocks, and a result as checkpoint state. */
import { EngineError } from '../../errors';
import type { AccumulatorState } from '../types';
import { num } from './common';
import type { CrossMomentsResult } from './types';

/**
 * Joins the results of reference blocks (any order) into one over all N reference neurons.
 * Refuses gaps, overlaps and blocks of different runs (token count, seed or mode).
 */
export function mergeBlocks(parts: readonly CrossMomentsResult[], N: number): CrossMomentsResult {
  if (parts.length === 0) throw new EngineError('mergeBlocks: no blocks');
  const sorted = [...parts].sort((a, b) => a.refStart - b.refStart);
  const first = sorted[0]!;
  const out: CrossMomentsResult = {
    refStart: 0,
    n: first.n,
    seed: first.seed,
    mode: first.mode,
    maxCorr: new Float64Array(N),
    partner: new Int32Array(N),
    baseline: new Float64Array(N),
    baselinePartner: new Int32Array(N),
  };
  let next = 0;
  for (const p of sorted) {
    if (p.n !== first.n || p.seed !== first.seed || p.mode !== first.mode) {
      throw new EngineError(`mergeBlocks: block at ${p.refStart} comes from another run (n ${p.n}, seed ${p.seed}, ${p.mode})`);
    }
    if (p.refStart !== next) throw new EngineError(`mergeBlocks: blocks leave a gap or overlap at reference neuron ${Math.min(p.refStart, next)}`);
    out.maxCorr.set(p.maxCorr, next);
    out.partner.set(p.partner, next);
    out.baseline.set(p.baseline, next);
    out.baselinePartner.set(p.baselinePartner, next);
    next += p.maxCorr.length;
  }
  if (next !== N) throw new EngineError(`mergeBlocks: blocks cover ${next} of ${N} reference neurons`);
  return out;
}

/**
 * A result as checkpoint state, for a blocked run that finishes some blocks before others stream
 * (see `unpackResult`).
 */
export function packResult(r: CrossMomentsResult): AccumulatorState {
  const s: AccumulatorState = {
    kind: 'CrossMomentsResult',
    refStart: r.refStart,
    n: r.n,
    seed: r.seed,
    mode: r.mode,
    maxCorr: r.maxCorr,
    partner: r.partner,
    baseline: r.baseline,
    baselinePartner: r.baselinePartner,
  };
  if (r.y) {
    s['y.n'] = r.y.n;
    s['y.seed'] = r.y.seed;
    s['y.syy'] = r.y.syy;
    s['y.rotVar'] = r.y.rotVar;
  }
  return s;
}

export function unpackResult(s: AccumulatorState): CrossMomentsResult {
  const f64 = (k: string): Float64Array => {
    const v = s[k];
    if (!(v instanceof Float64Array)) throw new EngineError(`CrossMoments: checkpoint result field ${k} is missing or not a Float64Array`);
    return v;
  };
  const i32 = (k: string): Int32Array => {
    const v = s[k];
    if (!(v instanceof Int32Array)) throw new EngineError(`CrossMoments: checkpoint result field ${k} is missing or not an Int32Array`);
    return v;
  };
  if (s.kind !== 'CrossMomentsResult' || (s.mode !== 'exact' && s.mode !== 'fast')) throw new EngineError('CrossMoments: the checkpoint holds no CrossMoments result');
  const r: CrossMomentsResult = {
    refStart: num(s, 'refStart'),
    n: num(s, 'n'),
    seed: num(s, 'seed'),
    mode: s.mode,
    maxCorr: f64('maxCorr'),
    partner: i32('partner'),
    baseline: f64('baseline'),
    baselinePartner: i32('baselinePartner'),
  };
  const B = r.maxCorr.length;
  if (r.partner.length !== B || r.baseline.length !== B || r.baselinePartner.length !== B) throw new EngineError('CrossMoments: the checkpoint result arrays differ in length');
  if (s['y.syy'] !== undefined) r.y = { n: num(s, 'y.n'), seed: num(s, 'y.seed'), syy: f64('y.syy'), rotVar: f64('y.rotVar') };
  return r;
}
