import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArrayPool } from '../../src/engine/analysis/cross/pool';

test('ArrayPool reuses a returned buffer zeroed, and drops what the next block does not take', () => {
  const pool = new ArrayPool();
  const [a, g] = pool.takeAll([
    ['f32', 1000],
    ['f64', 50],
  ]) as [Float32Array, Float64Array];
  assert.equal(pool.allocated, 2);
  a.fill(3);
  g.fill(7);
  pool.give(a, g);
  assert.equal(pool.heldBytes(), 4000 + 400);
  // 995 values fit the 1,000-value buffer (within 1%); the Float64 one is not asked for and goes.
  const [b] = pool.takeAll([['f32', 995]]) as [Float32Array];
  assert.equal(b.buffer, a.buffer);
  assert.equal(b.length, 995);
  assert.ok(b.every((v) => v === 0));
  assert.equal(pool.reused, 1);
  assert.equal(pool.heldBytes(), 0);
  // A much smaller request does not keep the big buffer: a fresh array.
  pool.give(b);
  const [c] = pool.takeAll([['f32', 500]]) as [Float32Array];
  assert.notEqual(c.buffer, a.buffer);
  assert.equal(pool.heldBytes(), 0);
  pool.give(c);
  pool.clear();
  assert.equal(pool.heldBytes(), 0);
});
