/**
 * `basis.json`: per layer of the reference model, the top principal components' share of the
 * activation variance (analysis/layercov.ts), for "is the basis privileged?" (issue #14 item 6):
 *
 *   { "activation": "hook_post, kept tokens", "top": 5,
 *     "layers": [ { layer, tokens, total_variance, eigenvalues: [5], top_share }, … ] }
 *
 * Optional: runs made before it, and models whose covariance is too large to accumulate, have none;
 * the reader then returns null and the views say "not in this run". A malformed file reads as
 * absent with a note, never as numbers.
 */
import * as fs from 'node:fs';
import { writeJsonAtomic } from '../store';
import type { LayerPca } from '../analysis/layercov';
import { runFile } from './files';

export interface BasisFile {
  /** Per layer 0..nLayers−1, the top-k share of variance (null: missing or not finite). */
  topShare: (number | null)[];
  top: number;
  note?: string;
}

/** Writes `basis.json` of the run in `dir` (atomically). */
export function writeBasis(dir: string, layers: readonly LayerPca[], top: number): void {
  const fin = (x: number) => (Number.isFinite(x) ? x : null);
  writeJsonAtomic(runFile(dir, 'basis'), {
    activation: 'hook_post, kept tokens',
    top,
    layers: layers.map((l) => ({ layer: l.layer, tokens: l.tokens, total_variance: fin(l.totalVariance), eigenvalues: l.eigenvalues.map(fin), top_share: fin(l.topShare) })),
  });
}

/** Reads `basis.json` for a reference model of `nLayers` layers; null when the run has none. */
export function readBasis(dir: string, nLayers: number): BasisFile | null {
  const path = runFile(dir, 'basis');
  let raw: string;
  try {
    raw = fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const bad = (why: string): BasisFile => ({ topShare: new Array<number | null>(nLayers).fill(null), top: 0, note: `${path}: ${why}; the PCA share is not shown` });
  let j: unknown;
  try {
    j = JSON.parse(raw);
  } catch (e) {
    return bad(`not JSON (${(e as Error).message})`);
  }
  const o = j as { top?: unknown; layers?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.layers) || typeof o.top !== 'number') return bad('no "top" and "layers"');
  const topShare = new Array<number | null>(nLayers).fill(null);
  for (const e of o.layers as unknown[]) {
    const l = (e as { layer?: unknown })?.layer;
    const s = (e as { top_share?: unknown })?.top_share;
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= nLayers) return bad(`a layer entry out of range (${JSON.stringify(l)})`);
    if (s !== null && !(typeof s === 'number' && s >= 0 && s <= 1 + 1e-9)) return bad(`layer ${l}: top_share ${JSON.stringify(s)} is not a share in [0, 1]`);
    topShare[l] = s;
  }
  return { topShare, top: o.top };
}
