// Bit-for-bit comparison of two accumulator states (kernel against JS loop, threads against one).
import assert from 'node:assert/strict';
import type { AccumulatorState } from '../../src/engine/analysis/types';

export function assertSameState(a: AccumulatorState, b: AccumulatorState, what: string): void {
  assert.deepEqual(Object.keys(b), Object.keys(a), what);
  for (const k of Object.keys(a)) {
    const u = a[k]!;
    const v = b[k]!;
    if (typeof u === 'object' && !Array.isArray(u)) {
      assert.equal((v as typeof u).length, u.length, `${what} ${k}`);
      for (let i = 0; i < u.length; i++) if (!Object.is(u[i], (v as typeof u)[i])) assert.fail(`${what} ${k}[${i}]: ${u[i]} vs ${(v as typeof u)[i]}`);
    } else assert.deepEqual(v, u, `${what} ${k}`);
  }
}
