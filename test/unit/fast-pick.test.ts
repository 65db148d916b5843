// Fast mode's candidate picking (cross/fast.ts pick): the largest values at or above a limit,
// ordered by value, then a second key, then index, at most `cap`. It selects the cap-th largest
// value first (quickselect) so that the comparator sort sees only what can be taken; the result
// must be exactly the plain "filter, sort, slice" it replaced, ties included.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kthLargest, pick } from '../../src/engine/analysis/cross/fast';

function plain(v: Float64Array, lim: number, cap: number, then: Float64Array = v): number[] {
  const idx: number[] = [];
  for (let j = 0; j < v.length; j++) if (v[j]! >= lim) idx.push(j);
  idx.sort((a, b) => v[b]! - v[a]! || then[b]! - then[a]! || a - b);
  return idx.slice(0, cap);
}

let seed = 7;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;

test('pick equals filter, sort and slice, ties and a second key included (3,000 random rows)', () => {
  for (let t = 0; t < 3000; t++) {
    const n = 1 + Math.floor(rnd() * 3000);
    const v = new Float64Array(n);
    const then = new Float64Array(n);
    // Coarse values in half the cases: many ties at the cap-th value.
    const q = rnd() < 0.5 ? 8 : 1e6;
    for (let j = 0; j < n; j++) {
      v[j] = Math.round((rnd() * 2 - 1) * q) / q;
      then[j] = Math.round(rnd() * 4);
    }
    const lim = rnd() < 0.3 ? -Infinity : rnd() * 2 - 1.5;
    const cap = 1 + Math.floor(rnd() * 300);
    assert.deepEqual(pick(v, lim, cap, then), plain(v, lim, cap, then), `case ${t}: n ${n}, lim ${lim}, cap ${cap}`);
  }
});

test('kthLargest is the k-th value of the sorted array', () => {
  for (let t = 0; t < 2000; t++) {
    const n = 1 + Math.floor(rnd() * 500);
    const v = Float64Array.from({ length: n }, () => Math.round(rnd() * (rnd() < 0.5 ? 10 : 1e6)));
    const k = 1 + Math.floor(rnd() * n);
    const sorted = Float64Array.from(v).sort();
    assert.equal(kthLargest(Float64Array.from(v), n, k), sorted[n - k]);
  }
});
