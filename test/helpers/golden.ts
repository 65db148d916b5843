// The parity goldens written by tools/torch_reference.py (GPT-2) and tools/torch_reference_neox.py
// (GPT-NeoX): loading them and comparing an engine forward with them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Activations } from '../../src/engine/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures');

export interface GoldenText {
  text: string;
  ids: number[];
  windows: number;
  argmax: number[];
  top2_gap: number[];
  tensors: Record<string, { offset: number; shape: number[] }>;
}
export interface Golden {
  fixture: string;
  dtype: string;
  n_layer: number;
  d_mlp: number;
  n_positions: number;
  logit_ids: number[];
  texts: GoldenText[];
  data: Float32Array;
}

export function loadGolden(name: string): Golden {
  const header = JSON.parse(readFileSync(join(FIXTURES, 'golden', `${name}.json`), 'utf8')) as Omit<Golden, 'data'>;
  const buf = readFileSync(join(FIXTURES, 'golden', `${name}.bin`));
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { ...header, data };
}

export function tensor(g: Golden, t: GoldenText, name: string): Float32Array {
  const e = t.tensors[name];
  assert.ok(e, `golden has no ${name}`);
  return g.data.subarray(e.offset, e.offset + e.shape.reduce((a, b) => a * b, 1));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}

/** Logit columns, log-sum-exp (float64) and argmax per position, from full [T, V] logits. */
export function logitSummary(logits: Float32Array, T: number, V: number, ids: number[]) {
  const slice = new Float32Array(T * ids.length);
  const lse = new Float64Array(T);
  const argmax: number[] = [];
  for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(row[v]! - row[best]!);
    lse[t] = row[best]! + Math.log(s);
    argmax.push(best);
    ids.forEach((id, k) => (slice[t * ids.length + k] = row[id]!));
  }
  return { slice, lse, argmax };
}

/** Max |engine − golden| over every output of one text; asserts ids and argmax on the way. */
export function compare(g: Golden, t: GoldenText, acts: Activations, V: number): { hooks: number; logits: number } {
  assert.deepEqual(
    acts.tokens.map((x) => x.id),
    t.ids,
  );
  let hooks = 0;
  for (let l = 0; l < g.n_layer; l++) {
    hooks = Math.max(hooks, maxAbsDiff(acts.hookPre[l]!, tensor(g, t, `L${l}.hook_pre`)));
    hooks = Math.max(hooks, maxAbsDiff(acts.hookPost[l]!, tensor(g, t, `L${l}.hook_post`)));
  }
  let logits = 0;
  if (acts.logits) {
    const s = logitSummary(acts.logits, t.ids.length, V, g.logit_ids);
    logits = Math.max(maxAbsDiff(s.slice, tensor(g, t, 'logits_slice')), maxAbsDiff(s.lse, tensor(g, t, 'logsumexp')));
    s.argmax.forEach((a, i) => {
      // A near-tie may flip between fp32 and fp64; anything clearer must agree.
      if (t.top2_gap[i]! > 1e-3) assert.equal(a, t.argmax[i], `argmax at position ${i}`);
    });
  }
  return { hooks, logits };
}

