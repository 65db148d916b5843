// The run's cache of rotation matrices: the same numbers as drawing, each matrix drawn once, no
// file left behind, and drawing again when the file cannot be written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { rotationMatrix } from '../../src/engine/analysis/crossmoments';
import { RotationCache } from '../../src/engine/analysis/rotations';

describe('RotationCache', () => {
  it('gives rotationMatrix bit for bit, draws each (seed, layer, d) once and leaves no file', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'rotcache-test-'));
    try {
      const c = new RotationCache(dir);
      const d = 48;
      const out = new Float64Array(d * d);
      for (let rep = 0; rep < 3; rep++) {
        for (const [seed, layer] of [
          [7, 0],
          [7, 1],
          [8, 0],
        ] as const) {
          out.fill(NaN);
          const got = c.get(seed, layer, d, out);
          assert.equal(got, out);
          assert.deepEqual(got, rotationMatrix(seed, layer, d));
        }
        // Nothing on disk at any time: the file is unlinked once open.
        assert.deepEqual(fs.readdirSync(dir), []);
      }
      assert.equal(c.drawn, 3);
      assert.equal(c.read, 6);
      // Another size is another matrix.
      const small = c.get(7, 0, 5, new Float64Array(25));
      assert.deepEqual(small, rotationMatrix(7, 0, 5));
      c.close();
      assert.deepEqual(c.get(7, 1, d, new Float64Array(d * d)), rotationMatrix(7, 1, d));
      assert.equal(c.drawn, 5, 'after close() the matrices are drawn again');
      c.close();
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('draws every time, with the same numbers, when its folder cannot be used', () => {
    const c = new RotationCache(join(tmpdir(), 'no-such-folder-for-rotcache', 'x'));
    for (let rep = 0; rep < 2; rep++) assert.deepEqual(c.get(3, 2, 16, new Float64Array(256)), rotationMatrix(3, 2, 16));
    assert.equal(c.drawn, 2);
    assert.equal(c.read, 0);
    c.close();
  });
});
