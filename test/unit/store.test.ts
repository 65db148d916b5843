// Results store: atomic writes (a failing disk leaves earlier files intact and no temp files),
// checkpoint encoding, Arrow IPC files readable by apache-arrow, the paper's CSV schema, run ids.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import { EngineError } from '../../src/engine/errors';
import {
  arrowBytes,
  createRunDir,
  csvText,
  decodeCheckpoint,
  encodeCheckpoint,
  newRunId,
  readCheckpoint,
  resolveRunDir,
  setWriteFn,
  writeArrowAtomic,
  writeCheckpoint,
  writeFileAtomic,
  writeJsonAtomic,
} from '../../src/engine/store';
import { PAPER_COLUMNS, readNeuronArrow, readNeuronCsv } from '../../src/engine/run/neurons';

const tmp = mkdtempSync(join(tmpdir(), 'un-store-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const concat = (chunks: (Uint8Array | string)[]): Uint8Array =>
  new Uint8Array(Buffer.concat(chunks.map((c) => (typeof c === 'string' ? new Uint8Array(Buffer.from(c)) : c))));

/** A writer that accepts `limit` bytes in total, then fails as a full disk does. */
function fillingDisk(limit: number) {
  let written = 0;
  return (fd: number, data: Uint8Array, position: number): number => {
    if (written >= limit) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const n = Math.min(data.byteLength, limit - written);
    const w = require('node:fs').writeSync(fd, data, 0, n, position) as number;
    written += w;
    return w;
  };
}

describe('atomic writes', () => {
  test('writes and replaces whole files', () => {
    const p = join(tmp, 'a.json');
    writeJsonAtomic(p, { x: 1 });
    assert.deepEqual(JSON.parse(readFileSync(p, 'utf8')), { x: 1 });
    writeFileAtomic(p, ['{"x":', '2}']);
    assert.equal(readFileSync(p, 'utf8'), '{"x":2}');
  });

  test('disk full mid-write: the earlier file and earlier runs stay intact, no temp file remains', () => {
    const earlier = join(tmp, 'runs', 'earlier');
    const current = join(tmp, 'runs', 'current');
    mkdirSync(earlier, { recursive: true });
    mkdirSync(current, { recursive: true });
    writeJsonAtomic(join(earlier, 'manifest.json'), { status: 'complete' });
    writeFileAtomic(join(earlier, 'universal.csv'), 'layer,neuron\n0,1\n');
    const target = join(current, 'neurons.bin');
    const old = new Uint8Array(1000).fill(7);
    writeFileAtomic(target, old);

    const restore = setWriteFn(fillingDisk(300));
    try {
      assert.throws(
        () => writeFileAtomic(target, [new Uint8Array(200).fill(1), new Uint8Array(200).fill(2)]),
        (e: Error) => e instanceof EngineError && e.message.includes(target) && /disk is full/.test(e.message),
      );
    } finally {
      restore();
    }
    assert.deepEqual(new Uint8Array(readFileSync(target)), old, 'the old content is untouched');
    assert.deepEqual(readdirSync(current), ['neurons.bin'], 'no temp file is left');
    assert.equal(readFileSync(join(earlier, 'universal.csv'), 'utf8'), 'layer,neuron\n0,1\n');
    assert.deepEqual(JSON.parse(readFileSync(join(earlier, 'manifest.json'), 'utf8')), { status: 'complete' });

    // A first write that fails leaves no file at all under the final name.
    const fresh = join(current, 'partners.arrow');
    const restore2 = setWriteFn(fillingDisk(10));
    try {
      assert.throws(() => writeFileAtomic(fresh, new Uint8Array(100)), EngineError);
    } finally {
      restore2();
    }
    assert.equal(existsSync(fresh), false);
    assert.deepEqual(readdirSync(current), ['neurons.bin']);
  });

  test('a failing checkpoint write keeps the previous checkpoint readable', () => {
    const run = join(tmp, 'ckrun');
    mkdirSync(run);
    writeCheckpoint(run, { nextBatch: 3, meta: { a: 1 }, states: { s: { sum: new Float64Array([1, 2, 3]) } } });
    const restore = setWriteFn(fillingDisk(40));
    try {
      assert.throws(() => writeCheckpoint(run, { nextBatch: 6, meta: {}, states: { s: { sum: new Float64Array(1000) } } }), /disk is full/);
    } finally {
      restore();
    }
    const ck = readCheckpoint(run)!;
    assert.equal(ck.nextBatch, 3);
    assert.deepEqual(Array.from(ck.states.s!.sum as Float64Array), [1, 2, 3]);
  });
});

describe('checkpoint encoding', () => {
  test('round-trips typed arrays, numbers, strings and arrays exactly', () => {
    const f64 = new Float64Array([Math.PI, -0, 1e-300, NaN, Infinity]);
    const f32 = new Float32Array([1.5, -2.25, 3]);
    const i32 = new Int32Array([-1, 2, 2147483647]);
    const u32 = new Uint32Array([0, 4294967295, 7]);
    const ck = {
      nextBatch: 12,
      meta: { corpusHash: 'abc', batchRows: 8 },
      states: { one: { f64, f32, n: 42, s: 'hello', list: [1, 2, 3] }, two: { i32, u32, sub: f64.subarray(1, 3) } },
    };
    const back = decodeCheckpoint(concat(encodeCheckpoint(ck)));
    assert.equal(back.nextBatch, 12);
    assert.deepEqual(back.meta, ck.meta);
    const o = back.states.one!;
    assert.ok(o.f64 instanceof Float64Array);
    assert.deepEqual(new Uint8Array((o.f64 as Float64Array).buffer), new Uint8Array(f64.buffer), 'bit-exact, -0 and NaN included');
    assert.deepEqual(o.f32, f32);
    assert.equal(o.n, 42);
    assert.equal(o.s, 'hello');
    assert.deepEqual(o.list, [1, 2, 3]);
    assert.deepEqual(back.states.two!.i32, i32);
    assert.deepEqual(back.states.two!.u32, u32);
    assert.deepEqual(back.states.two!.sub, f64.subarray(1, 3));
  });

  test('truncated or corrupted checkpoints are refused', () => {
    const bytes = concat(encodeCheckpoint({ nextBatch: 1, meta: {}, states: { a: { x: new Float64Array(16).fill(3) } } }));
    assert.throws(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 8)), /not a usable checkpoint/);
    const flipped = bytes.slice();
    flipped[flipped.length - 1]! ^= 1;
    assert.throws(() => decodeCheckpoint(flipped), /checksum/);
    assert.throws(() => decodeCheckpoint(new Uint8Array(4)), /magic/);
  });
});

describe('tables', () => {
  test('Arrow IPC file: apache-arrow reads every column back with its type', async () => {
    const p = join(tmp, 't.arrow');
    const layer = new Int32Array([0, 0, 1]);
    const corr = new Float64Array([0.25, NaN, 0.75]);
    await writeArrowAtomic(p, { layer, neuron: new Int32Array([0, 1, 0]), mean_corr: corr, universal: [false, false, true], model: ['b', 'c', 'd'] }, { threshold: '0.5' });
    const bytes = readFileSync(p);
    assert.equal(bytes.subarray(0, 6).toString('latin1'), 'ARROW1', 'IPC file format (magic), not the stream format');
    const t = tableFromIPC(new Uint8Array(bytes));
    assert.deepEqual(t.schema.fields.map((f) => [f.name, String(f.type)]), [
      ['layer', 'Int32'],
      ['neuron', 'Int32'],
      ['mean_corr', 'Float64'],
      ['universal', 'Bool'],
      ['model', 'Utf8'],
    ]);
    assert.equal(t.numRows, 3);
    assert.deepEqual(Array.from(t.getChild('layer')!.toArray() as Int32Array), [0, 0, 1]);
    const mc = t.getChild('mean_corr')!.toArray() as Float64Array;
    assert.equal(mc[0], 0.25);
    assert.ok(Number.isNaN(mc[1]));
    assert.deepEqual([...t.getChild('universal')!], [false, false, true]);
    assert.equal(t.schema.metadata.get('threshold'), '0.5');
    await assert.rejects(arrowBytes({ a: new Int32Array(2), b: new Int32Array(3) }), /differ in length/);
  });

  test('CSV in the given column order; full precision; missing values empty', () => {
    const text = csvText(PAPER_COLUMNS, [{ layer: 1, neuron: 5, mean_corr: 0.1 + 0.2, excess_corr: NaN }]);
    const [head, line] = text.trim().split('\n');
    assert.equal(head, PAPER_COLUMNS.join(','));
    const cells = line!.split(',');
    assert.equal(cells.length, PAPER_COLUMNS.length);
    assert.equal(Number(cells[PAPER_COLUMNS.indexOf('mean_corr')]), 0.1 + 0.2);
    assert.equal(cells[PAPER_COLUMNS.indexOf('excess_corr')], '');
  });
});

describe('reading neuron tables', () => {
  test('the paper schema as written by csvText reads back exactly', () => {
    const rows = [0, 1, 2].map((i) => Object.fromEntries(PAPER_COLUMNS.map((c, k) => [c, c === 'layer' ? i : c === 'neuron' ? 7 * i : (k + 1) / (i + 3)])));
    const p = join(tmp, 'paper.csv');
    writeFileSync(p, csvText(PAPER_COLUMNS, rows));
    const t = readNeuronCsv(p);
    assert.equal(t.nRows, 3);
    assert.deepEqual([...t.columns.keys()], [...PAPER_COLUMNS]);
    for (const c of PAPER_COLUMNS) assert.deepEqual(Array.from(t.columns.get(c)!), rows.map((r) => r[c]));
  });

  test('a pandas index column is dropped; booleans, nan and quotes are understood', () => {
    const p = join(tmp, 'pandas.csv');
    writeFileSync(p, ',layer,neuron,excess_corr,universal,"note"\r\n0,1,2,0.6,True,"a, b"\r\n1,0,3,nan,False,x\r\n');
    const t = readNeuronCsv(p);
    assert.deepEqual([...t.columns.keys()], ['layer', 'neuron', 'excess_corr', 'universal', 'note']);
    assert.deepEqual(Array.from(t.columns.get('universal')!), [1, 0]);
    assert.ok(Number.isNaN(t.columns.get('excess_corr')![1]));
  });

  test('bad tables are named', () => {
    const noLayer = join(tmp, 'nolayer.csv');
    writeFileSync(noLayer, 'neuron,excess_corr\n1,0.5\n');
    assert.throws(() => readNeuronCsv(noLayer), (e: Error) => e instanceof EngineError && e.message.includes(noLayer) && /"layer"/.test(e.message));
    const ragged = join(tmp, 'ragged.csv');
    writeFileSync(ragged, 'layer,neuron,excess_corr\n1,2\n');
    assert.throws(() => readNeuronCsv(ragged), /ragged\.csv:2/);
    const frac = join(tmp, 'frac.csv');
    writeFileSync(frac, 'layer,neuron\n1.5,2\n');
    assert.throws(() => readNeuronCsv(frac), /non-negative integers/);
    assert.throws(() => readNeuronCsv(join(tmp, 'none.csv')), /no such file/);
  });

  test('neurons.arrow reads back as numeric columns (booleans as 0/1)', async () => {
    const p = join(tmp, 'n.arrow');
    await writeArrowAtomic(p, { layer: new Int32Array([0, 1]), neuron: new Int32Array([3, 4]), excess_corr: new Float64Array([0.1, 0.9]), universal: [false, true], model: ['x', 'y'] });
    const t = await readNeuronArrow(p);
    assert.deepEqual([...t.columns.keys()], ['layer', 'neuron', 'excess_corr', 'universal']);
    assert.deepEqual(Array.from(t.columns.get('universal')!), [0, 1]);
    writeFileSync(join(tmp, 'junk.arrow'), 'not arrow');
    await assert.rejects(readNeuronArrow(join(tmp, 'junk.arrow')), /not an Arrow IPC file/);
  });
});

describe('run folders', () => {
  test('run ids sort by time and differ within a second', () => {
    const d = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const a = newRunId(d);
    const b = newRunId(d);
    assert.match(a, /^20260102-030405-[0-9a-f]{6}$/);
    assert.notEqual(a, b);
  });

  test('createRunDir makes a fresh folder and refuses to overwrite a run', () => {
    const ws = join(tmp, 'ws');
    const { dir, id } = createRunDir({ workspace: ws });
    assert.equal(dir, join(ws, '.universal-neurons', 'runs', id));
    writeFileSync(join(dir, 'manifest.json'), '{}');
    assert.throws(() => createRunDir({ out: dir }), /already holds a run/);
    assert.equal(resolveRunDir(id, ws), dir);
    assert.equal(resolveRunDir(dir), dir);
    assert.throws(() => resolveRunDir('nope', ws), /no run at nope/);
  });
});
