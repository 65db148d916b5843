// `analyze`, `summary`, `table` as a user runs them (a child process through tsx), on three
// shipped tiny models and a slice of the held-out corpus: the run folder's files (Arrow tables
// read back with apache-arrow, universal.csv in the paper's schema), SIGKILL mid-run then
// --resume giving byte-identical files, and the bad-input exits.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import { PAPER_COLUMNS, readNeuronCsv } from '../../src/engine/run/neurons';
import { readCheckpoint } from '../../src/engine/store';
import type { Manifest, Progress } from '../../src/engine/analysis/pipeline';
import { progressReporter } from '../../src/cli/progress';

const ROOT = resolve(__dirname, '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const MODELS = ['a', 'b', 'c'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const RESULT_FILES = ['neurons.arrow', 'universal.csv', 'partners.arrow', 'vocab.arrow', 'actstats.arrow', 'examples.json', 'examples.bin', 'basis.json'];
const tmp = mkdtempSync(join(tmpdir(), 'un-cli-an-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const nodeArgs = (...args: string[]) => ['--import', 'tsx', MAIN, ...args];
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, nodeArgs(...args), { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const analyzeArgs = (out: string) => [
  'analyze',
  '--models',
  ...MODELS,
  '--corpus',
  HELDOUT,
  '--tokens',
  String(128 * 16),
  '--batch-rows',
  '1',
  '--checkpoint-every',
  '1',
  '--out',
  out,
];
const arrow = (p: string) => tableFromIPC(new Uint8Array(readFileSync(p)));

describe('analyze', () => {
  const full = join(tmp, 'full');
  let run: ReturnType<typeof cli>;
  before(() => {
    run = cli(...analyzeArgs(full));
  });

  test('exits 0, prints the summary, progress lines on stderr (not a TTY)', () => {
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /^layer\s+neurons\s+universal\s+%\s+median excess\s+median baseline$/m);
    for (let l = 0; l < 4; l++) assert.match(run.out, new RegExp(`^${l}\\s+512\\s+\\d+\\s+\\d+\\.\\d\\d%`, 'm'));
    assert.match(run.out, /^all\s+2048\s+\d+/m);
    assert.match(run.out, /> 0\.3: \d+ .*> 0\.4: \d+ .*> 0\.5: \d+/);
    assert.match(run.err, /\[#+\] 100%\s+2,048\/2,048 tokens\s+[\d,]+ tok\/s\s+ETA/);
    assert.doesNotMatch(run.err, /\r/, 'no carriage returns when stderr is not a terminal');
  });

  test('the run folder: manifest complete, every result file, no checkpoint or lock left', () => {
    const m = JSON.parse(readFileSync(join(full, 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(m.status, 'complete');
    assert.deepEqual(m.models.map((x) => x.label), ['tiny-gpt2-a', 'tiny-gpt2-b', 'tiny-gpt2-c']);
    assert.equal(m.corpus.tokens.used, 2048);
    assert.equal(m.corpus.files[0]!.sha256, require('node:crypto').createHash('sha256').update(readFileSync(HELDOUT)).digest('hex'));
    assert.equal(m.settings.threshold, 0.5);
    assert.ok(m.choices.token_filter && m.choices.rows);
    for (const f of RESULT_FILES) assert.ok(existsSync(join(full, f)), f);
    assert.equal(existsSync(join(full, 'checkpoint')), false);
    assert.equal(existsSync(join(full, 'run.lock')), false);
    assert.deepEqual(readdirSync(full).filter((n) => n.endsWith('.tmp')), []);
  });

  test('neurons.arrow: every reference neuron, the paper columns, universal flag and partners', () => {
    const t = arrow(join(full, 'neurons.arrow'));
    assert.equal(t.numRows, 2048);
    const names = t.schema.fields.map((f) => f.name);
    assert.deepEqual(names.slice(0, PAPER_COLUMNS.length), [...PAPER_COLUMNS]);
    for (const extra of ['universal', 'partner_layer_tiny-gpt2-b', 'partner_neuron_tiny-gpt2-b', 'corr_tiny-gpt2-c', 'baseline_tiny-gpt2-c']) {
      assert.ok(names.includes(extra), extra);
    }
    const col = (n: string) => Array.from(t.getChild(n)!.toArray() as ArrayLike<number>);
    const layer = col('layer');
    const neuron = col('neuron');
    for (const j of [0, 511, 512, 2047]) {
      assert.equal(layer[j], Math.floor(j / 512));
      assert.equal(neuron[j], j % 512);
    }
    const mean = col('mean_corr');
    const base = col('mean_baseline');
    const excess = col('excess_corr');
    const universal = [...t.getChild('universal')!] as boolean[];
    const cb = col('corr_tiny-gpt2-b');
    const cc = col('corr_tiny-gpt2-c');
    for (let j = 0; j < 2048; j++) {
      assert.ok(Math.abs(mean[j]! - (cb[j]! + cc[j]!) / 2) < 1e-12);
      assert.ok(Math.abs(excess[j]! - (mean[j]! - base[j]!)) < 1e-12);
      assert.equal(universal[j], excess[j]! > 0.5);
      assert.ok(cb[j]! <= 1 && cb[j]! >= -1);
    }
    // Partner columns agree with partners.arrow (long format).
    const p = arrow(join(full, 'partners.arrow'));
    assert.equal(p.numRows, 2048 * 2);
    assert.deepEqual(p.schema.fields.map((f) => f.name), ['layer', 'neuron', 'model', 'partner_layer', 'partner_neuron', 'corr', 'baseline']);
    const pm = [...p.getChild('model')!] as string[];
    const pc = Array.from(p.getChild('corr')!.toArray() as Float64Array);
    const pl = Array.from(p.getChild('partner_layer')!.toArray() as Int32Array);
    const refPl = col('partner_layer_tiny-gpt2-c');
    for (const j of [3, 700, 2040]) {
      assert.equal(pm[2 * j + 1], 'tiny-gpt2-c');
      assert.equal(pc[2 * j + 1], cc[j]);
      assert.equal(pl[2 * j + 1], refPl[j]);
    }
  });

  test('universal.csv: exactly the paper schema, the universal neurons, the same numbers', () => {
    const text = readFileSync(join(full, 'universal.csv'), 'utf8');
    assert.equal(text.split('\n')[0], PAPER_COLUMNS.join(','));
    const csv = readNeuronCsv(join(full, 'universal.csv'));
    const t = arrow(join(full, 'neurons.arrow'));
    const universal = [...t.getChild('universal')!] as boolean[];
    const idx = universal.flatMap((u, j) => (u ? [j] : []));
    assert.equal(csv.nRows, idx.length);
    for (const c of PAPER_COLUMNS) {
      const a = t.getChild(c)!.toArray() as ArrayLike<number>;
      idx.forEach((j, r) => assert.equal(csv.columns.get(c)![r], Number(a[j]), `${c} row ${r}`));
    }
  });

  test('summary RUN prints the same summary; table on universal.csv says what it cannot know', () => {
    const s = cli('summary', full);
    assert.equal(s.code, 0, s.err);
    const tableOf = (out: string) => out.slice(out.indexOf('layer  '));
    assert.equal(tableOf(s.out), tableOf(run.out));
    const t = cli('table', join(full, 'universal.csv'));
    assert.equal(t.code, 0, t.err);
    const nU = readNeuronCsv(join(full, 'universal.csv')).nRows;
    if (nU > 0) {
      assert.match(t.out, /neurons per layer unknown/);
      assert.match(t.out, new RegExp(`^all\\s+\\?\\s+${nU}\\s`, 'm'));
      assert.match(t.out, /> 0\.3: \d+ \(at least/);
      const t2 = cli('table', join(full, 'universal.csv'), '--d-mlp', '512');
      assert.match(t2.out, new RegExp(`^all\\s+2048\\s+${nU}\\s`, 'm'));
    }
  });

  test('table on a CSV of all neurons gives the run summary back', () => {
    // Write every neuron in the paper schema from neurons.arrow, shuffled and with a pandas index.
    const t = arrow(join(full, 'neurons.arrow'));
    const cols = PAPER_COLUMNS.map((c) => Array.from(t.getChild(c)!.toArray() as ArrayLike<number>));
    const order = [...Array(2048).keys()].reverse();
    const lines = [',' + PAPER_COLUMNS.join(','), ...order.map((j, i) => `${i},` + cols.map((c) => String(c[j])).join(','))];
    const p = join(tmp, 'all.csv');
    writeFileSync(p, lines.join('\n') + '\n');
    const r = cli('table', p);
    assert.equal(r.code, 0, r.err);
    const block = (out: string) => out.slice(out.indexOf('layer  '), out.indexOf('universal neurons by'));
    assert.equal(block(r.out), block(run.out));
  });

  test('SIGKILL mid-run, then --resume: byte-identical result files', async () => {
    const dir = join(tmp, 'killed');
    const child = spawn(process.execPath, nodeArgs(...analyzeArgs(dir)), { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let killedAt = -1;
    for (let i = 0; i < 3000 && killedAt < 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        const ck = readCheckpoint(dir);
        if (ck && ck.nextBatch >= 3) {
          child.kill('SIGKILL');
          killedAt = ck.nextBatch;
        }
      } catch {
        // mid-rename: try again
      }
    }
    await exited;
    assert.ok(killedAt >= 3 && killedAt < 16, `killed after batch ${killedAt}`);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(m.status, 'running', 'a killed run never marked itself');
    for (const f of RESULT_FILES) assert.equal(existsSync(join(dir, f)), false, `${f} must not exist yet`);

    const r = cli('analyze', '--resume', dir);
    assert.equal(r.code, 0, r.err);
    const m2 = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(m2.status, 'complete');
    assert.equal(m2.timings.sessions, 2);
    for (const f of RESULT_FILES) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(full, f))), `${f} differs from the uninterrupted run`);
  });
});

describe('progress', () => {
  const step = (b: number): Progress => ({ phase: 'stream', batch: b, batches: 4, tokensDone: 256 * b, tokensTotal: 1024, tokensPerSec: 500, etaSec: (1024 - 256 * b) / 500 });
  test('a terminal gets one line rewritten with \\r; a log gets periodic lines', () => {
    let clock = 0;
    const tty = { isTTY: true, text: '', write(s: string) { this.text += s; } };
    const r = progressReporter(tty, 5000, () => clock);
    for (let b = 1; b <= 4; b++) {
      clock += 1000;
      r.update(step(b));
    }
    r.update({ phase: 'finish', message: 'computing' });
    assert.equal(tty.text.split('\r').length - 1, 4);
    assert.match(tty.text, /\[#{24}\] 100%  1,024\/1,024 tokens  500 tok\/s  ETA 0s\u001b\[K\ncomputing\n$/);

    clock = 0;
    const log = { isTTY: false, text: '', write(s: string) { this.text += s; } };
    const p = progressReporter(log, 5000, () => clock);
    for (let b = 1; b <= 4; b++) {
      clock += 2000;
      p.update(step(b));
    }
    assert.doesNotMatch(log.text, /\r/);
    // t=2s printed, 4s and 6s skipped (under 5 s since), the last batch always printed.
    assert.deepEqual(log.text.trim().split('\n').map((l) => l.match(/(\d+)%/)![1]), ['25', '100']);
  });
});

describe('bad input', () => {
  test('usage errors exit 2', () => {
    for (const args of [
      ['analyze', '--models', MODELS[0]!, '--corpus', HELDOUT, '--tokens', '1000'],
      ['analyze', '--models', ...MODELS, '--tokens', '1000'],
      ['analyze', '--models', ...MODELS, '--corpus', HELDOUT],
      ['analyze', '--models', ...MODELS, '--corpus', HELDOUT, '--tokens', 'lots'],
      ['analyze', '--models', ...MODELS, '--corpus', HELDOUT, '--tokens', '1000', '--mode', 'quick'],
      ['analyze', '--resume', 'x', '--tokens', '5'],
      ['summary'],
      ['table'],
      ['table', 'a.csv', '--models', 'm'],
    ]) {
      const r = cli(...args);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.err}`);
      assert.match(r.err, /^universal-neurons: .+\nTry 'universal-neurons --help'\.\n$/, r.err);
    }
  });

  test('a corpus shorter than one row, an unreadable corpus file, a missing run: exit 1 with the reason', () => {
    const short = join(tmp, 'short.txt');
    writeFileSync(short, 'Too short for a row of 128 tokens.');
    let r = cli('analyze', '--models', MODELS[0]!, MODELS[1]!, '--corpus', short, '--tokens', '1000', '--out', join(tmp, 'x1'));
    assert.equal(r.code, 1);
    assert.match(r.err, /fewer than one row of 128/);
    const bin = join(tmp, 'bin.txt');
    writeFileSync(bin, new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00]));
    r = cli('analyze', '--models', MODELS[0]!, MODELS[1]!, '--corpus', bin, '--tokens', '1000', '--out', join(tmp, 'x2'));
    assert.equal(r.code, 1);
    assert.ok(r.err.includes(bin) && /binary/.test(r.err), r.err);
    r = cli('summary', join(tmp, 'nope'));
    assert.equal(r.code, 1);
    assert.match(r.err, /no run at/);
    r = cli('table', join(tmp, 'nope.csv'));
    assert.equal(r.code, 1);
    assert.match(r.err, /no such file/);
  });
});
