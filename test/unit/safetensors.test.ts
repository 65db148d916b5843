import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/engine/safetensors';
import { EngineError } from '../../src/engine/errors';
import { buildSafetensors, floatToHalf, rawHeader, rawSafetensors, writeSafetensors } from '../helpers/safetensors-writer';
import { throwsEngine } from '../helpers/assert-engine';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'un-safetensors-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
function file(contents: Uint8Array): string {
  const p = path.join(dir, `t${counter++}.safetensors`);
  fs.writeFileSync(p, contents);
  return p;
}


function u16bytes(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values).buffer);
}

test('reads F32, F16 and BF16 tensors, shapes and metadata', () => {
  const p = path.join(dir, 'ok.safetensors');
  writeSafetensors(
    p,
    {
      'wte.weight': { shape: [2, 3], data: [1, -2, 3.5, 0.1, 1e-30, -0] },
      'h.0.mlp.c_fc.bias': { dtype: 'F16', shape: [4], data: [1, -2, 0.5, 65504] },
      'h.0.ln_1.weight': { dtype: 'BF16', shape: [3], data: [1, -3, 0.15625] },
      empty: { shape: [0, 5], data: [] },
    },
    { format: 'pt' },
  );
  const f = SafetensorsFile.open(p);
  try {
    assert.deepEqual([...f.tensors.keys()], ['wte.weight', 'h.0.mlp.c_fc.bias', 'h.0.ln_1.weight', 'empty']);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(f.info('wte.weight').shape, [2, 3]);
    assert.equal(f.info('h.0.mlp.c_fc.bias').dtype, 'F16');
    assert.ok(f.has('empty') && !f.has('nope'));
    assert.deepEqual(f.readF32('wte.weight'), Float32Array.of(1, -2, 3.5, 0.1, 1e-30, -0));
    assert.ok(Object.is(f.readF32('wte.weight')[5], -0));
    assert.deepEqual(f.readF32('h.0.mlp.c_fc.bias'), Float32Array.of(1, -2, 0.5, 65504));
    assert.deepEqual(f.readF32('h.0.ln_1.weight'), Float32Array.of(1, -3, 0.15625));
    assert.equal(f.readF32('empty').length, 0);
    // each read is a fresh array, not a view callers could alias
    const a = f.readF32('wte.weight');
    a[0] = 42;
    assert.equal(f.readF32('wte.weight')[0], 1);
  } finally {
    f.close();
  }
});

test('F16 upcast is exact IEEE half for all 65536 bit patterns', () => {
  const all = Array.from({ length: 65536 }, (_, i) => i);
  const p = file(buildSafetensors({ h: { dtype: 'F16', shape: [65536], bytes: u16bytes(all) } }));
  const f = SafetensorsFile.open(p);
  const v = f.readF32('h');
  f.close();
  // known values: normals, max, smallest subnormal, largest subnormal, signed zero, inf, nan
  assert.equal(v[0x3c00], 1);
  assert.equal(v[0xc000], -2);
  assert.equal(v[0x3555], 0.333251953125);
  assert.equal(v[0x7bff], 65504);
  assert.equal(v[0x0001], 2 ** -24);
  assert.equal(v[0x03ff], 1023 * 2 ** -24);
  assert.equal(v[0x0400], 2 ** -14);
  assert.ok(Object.is(v[0x8000], -0));
  assert.equal(v[0x8001], -(2 ** -24));
  assert.equal(v[0x7c00], Infinity);
  assert.equal(v[0xfc00], -Infinity);
  assert.ok(Number.isNaN(v[0x7c01]) && Number.isNaN(v[0x7e00]) && Number.isNaN(v[0xffff]));
  // and every non-NaN pattern round-trips through an independent fp32 -> fp16 conversion
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(v[h])) continue;
    assert.equal(floatToHalf(v[h]!), h, `pattern 0x${h.toString(16)}`);
  }
});

test('BF16 upcast keeps the bits', () => {
  const p = file(buildSafetensors({ b: { dtype: 'BF16', shape: [5], bytes: u16bytes([0x3f80, 0xc040, 0x7f80, 0xff80, 0x0001]) } }));
  const f = SafetensorsFile.open(p);
  const v = f.readF32('b');
  f.close();
  assert.deepEqual([...v.slice(0, 4)], [1, -3, Infinity, -Infinity]);
  assert.equal(v[4], new Float32Array(Uint32Array.of(0x00010000).buffer)[0]);
});

test('non-float tensors are accepted on open but refused by readF32', () => {
  const p = file(
    buildSafetensors({
      'h.0.attn.bias': { dtype: 'BOOL', shape: [2, 2], data: [1, 0, 1, 1] },
      step: { dtype: 'I64', shape: [1], data: [7] },
      w: { shape: [2], data: [1, 2] },
    }),
  );
  const f = SafetensorsFile.open(p);
  try {
    assert.deepEqual(f.readF32('w'), Float32Array.of(1, 2));
    throwsEngine(() => f.readF32('step'), 'unsupported dtype I64', '"step"', p, 'F32, F16, BF16');
    throwsEngine(() => f.readF32('h.0.attn.bias'), 'unsupported dtype BOOL', '"h.0.attn.bias"', p);
  } finally {
    f.close();
  }
});

test('missing tensor names the file and lists near names', () => {
  const names: Record<string, { shape: number[] }> = {};
  for (let i = 0; i < 12; i++) names[`h.${i}.attn.c_attn.weight`] = { shape: [1] };
  names['h.3.mlp.c_fc.weight'] = { shape: [1] };
  const p = file(buildSafetensors(names));
  const f = SafetensorsFile.open(p);
  try {
    throwsEngine(
      () => f.readF32('transformer.h.3.mlp.c_fc.weight'),
      'no tensor "transformer.h.3.mlp.c_fc.weight"',
      p,
      /"h\.3\.mlp\.c_fc\.weight"/,
      '13 in all',
    );
    assert.throws(
      () => f.info('x'),
      (e: unknown) => e instanceof EngineError && e.tensor === 'x' && e.file === p,
    );
  } finally {
    f.close();
  }
});

test('reading after close is an EngineError', () => {
  const p = file(buildSafetensors({ w: { shape: [1], data: [1] } }));
  const f = SafetensorsFile.open(p);
  f.close();
  f.close();
  throwsEngine(() => f.readF32('w'), 'closed', p);
});

test('bad: nonexistent file and folder', () => {
  throwsEngine(() => SafetensorsFile.open(path.join(dir, 'nope.safetensors')), 'no such file', 'nope.safetensors');
  throwsEngine(() => SafetensorsFile.open(dir), dir);
});

test('bad: file shorter than 8 bytes', () => {
  const p = file(Uint8Array.of(1, 2, 3));
  throwsEngine(() => SafetensorsFile.open(p), p, '3 bytes', 'too short');
});

test('bad: header length past EOF', () => {
  const good = buildSafetensors({ w: { shape: [2] } });
  const p = file(good.subarray(0, 20));
  throwsEngine(() => SafetensorsFile.open(p), p, 'header length', 'past the end of the file');
});

test('bad: absurd header length', () => {
  const p = file(rawSafetensors({}, new Uint8Array(0), 1n << 40n));
  throwsEngine(() => SafetensorsFile.open(p), p, 'absurd');
});

test('bad: header not JSON or not an object', () => {
  const p = file(rawHeader('{"w": [1', new Uint8Array(0)));
  throwsEngine(() => SafetensorsFile.open(p), p, 'not valid JSON');
  throwsEngine(() => SafetensorsFile.open(file(rawSafetensors([1, 2], new Uint8Array(0)))), 'must be a JSON object');
  throwsEngine(
    () => SafetensorsFile.open(file(rawSafetensors({ w: 'F32' }, new Uint8Array(0)))),
    '"w"',
    'not an object',
  );
});

test('bad: unknown dtype', () => {
  const p = file(rawSafetensors({ 'wte.weight': { dtype: 'Q4_K', shape: [2], data_offsets: [0, 1] } }, new Uint8Array(1)));
  throwsEngine(() => SafetensorsFile.open(p), 'unknown dtype Q4_K for tensor "wte.weight"', p, 'supported: F32, F16, BF16');
});

test('bad: shape x dtype size != byte length', () => {
  const p = file(rawSafetensors({ 'wpe.weight': { dtype: 'F16', shape: [2, 3], data_offsets: [0, 24] } }, new Uint8Array(24)));
  throwsEngine(() => SafetensorsFile.open(p), p, '"wpe.weight"', 'shape [2, 3] of F16 (12 bytes)', 'span 24 bytes');
});

test('bad: invalid shape and offsets', () => {
  const d = new Uint8Array(8);
  throwsEngine(
    () => SafetensorsFile.open(file(rawSafetensors({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d))),
    '"w"',
    'invalid shape',
  );
  throwsEngine(
    () => SafetensorsFile.open(file(rawSafetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, d))),
    '"w"',
    'invalid data_offsets',
  );
  throwsEngine(
    () => SafetensorsFile.open(file(rawSafetensors({ w: { dtype: 'F32', shape: [2.5], data_offsets: [0, 8] } }, d))),
    'invalid shape',
  );
});

test('bad: offsets out of range of the data section', () => {
  const p = file(
    rawSafetensors(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [1000, 1008] },
      },
      new Uint8Array(16),
    ),
  );
  throwsEngine(() => SafetensorsFile.open(p), p, 'tensor "b"', 'out of range', 'data section is 16 bytes');
});

test('bad: overlapping tensors', () => {
  const p = file(
    rawSafetensors(
      {
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      },
      new Uint8Array(12),
    ),
  );
  throwsEngine(() => SafetensorsFile.open(p), p, '"a" [0, 8)', '"b" [4, 12)', 'overlap');
});

test('bad: truncated file names the tensor that runs past EOF', () => {
  const full = buildSafetensors({
    'wte.weight': { shape: [4, 4] },
    'wpe.weight': { shape: [8, 4] },
    'ln_f.bias': { shape: [4] },
  });
  const p = file(full.subarray(0, full.length - 100));
  throwsEngine(() => SafetensorsFile.open(p), p, 'is truncated', 'tensor "wpe.weight"', 're-download');
});

test('bad: tensors must tile the data section exactly (no gap, no unclaimed head or tail)', () => {
  const f32 = (begin: number) => ({ dtype: 'F32', shape: [2], data_offsets: [begin, begin + 8] });
  const gap = file(rawSafetensors({ a: f32(0), b: f32(12) }, new Uint8Array(20)));
  throwsEngine(() => SafetensorsFile.open(gap), gap, 'data bytes [8, 12) between tensors "a" and "b" belong to no tensor');
  const head = file(rawSafetensors({ a: f32(4) }, new Uint8Array(12)));
  throwsEngine(() => SafetensorsFile.open(head), head, 'data bytes [0, 4) before the first tensor "a"');
  const tail = file(rawSafetensors({ a: f32(0), b: f32(8) }, new Uint8Array(20)));
  throwsEngine(() => SafetensorsFile.open(tail), tail, 'the data section is 20 bytes, but its tensors end at byte 16 (last: "b")', 'the last 4 bytes belong to no tensor');
  // Zero-byte tensors take no room and may sit anywhere in range; an empty file of them is fine.
  const empty = file(rawSafetensors({ a: f32(0), z: { dtype: 'F32', shape: [0], data_offsets: [8, 8] } }, new Uint8Array(8)));
  SafetensorsFile.open(empty).close();
});

test('firstNonFinite scans the stored bits of F32, F16 and BF16 without upcasting', () => {
  const p = file(
    buildSafetensors({
      f32: { shape: [3], data: [1, NaN, 2] },
      f16: { dtype: 'F16', shape: [3], bytes: u16bytes([0x3c00, 0x7bff, 0xfc00]) },
      bf16: { dtype: 'BF16', shape: [2], bytes: u16bytes([0x3f80, 0x7f7f]) },
    }),
  );
  const f = SafetensorsFile.open(p);
  try {
    assert.equal(f.firstNonFinite('f32'), 1);
    assert.equal(f.firstNonFinite('f16'), 2);
    assert.equal(f.firstNonFinite('bf16'), -1);
  } finally {
    f.close();
  }
});
