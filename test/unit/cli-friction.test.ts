// Issue #19 items 2 and 6: failed and killed runs say so, and the CLI friction list — per-command
// help, --version, token counts as people write them, negative values, family-threshold ranges,
// `table` on another schema, the summary's legend, the same checkpoint folders for every command,
// and every argument and budget checked before a model is opened.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { asRunError, runAnalysis, type Progress } from '../../src/engine/analysis/pipeline';
import { defaultPlan } from '../../src/engine/analysis/plan';
import { hashFile } from '../../src/engine/checkpoint';
import { CancelledError, EngineError } from '../../src/engine/errors';
import { runLiveness } from '../../src/engine/run/liveness';
import { readManifest } from '../../src/engine/run/manifest';
import { readNeuronCsv } from '../../src/engine/run/neurons';
import { runStatus } from '../../src/engine/run/view';
import { setWriteFn } from '../../src/engine/store';
import { runSummaryOf, runTable } from '../../src/cli/analyze';
import { commandHelp, HELP, parseCli, parseCount, UsageError } from '../../src/cli/args';
import { SUMMARY_LEGEND, summarizeTable } from '../../src/cli/summary';

const ROOT = resolve(__dirname, '..', '..');
const FIX = join(ROOT, 'test', 'fixtures');
const MODELS = ['gpt2-tiny-crfm', 'gpt2-tiny-crfm-f16'].map((m) => join(FIX, m));
const CORPUS = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-friction-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const usage = (argv: string[], re: RegExp) =>
  assert.throws(() => parseCli(argv), (e: unknown) => e instanceof UsageError && re.test(e.message) && !/ambiguous/.test(e.message));
const ANALYZE = ['analyze', '--models', ...MODELS, '--corpus', CORPUS, '--tokens', '64'];
const noFamilies = defaultPlan({ families: { enabled: false } });

describe('help and version', () => {
  test('CMD --help and help CMD give that command\'s help', () => {
    for (const c of ['analyze', 'summary', 'table', 'activations', 'demo']) {
      assert.deepEqual(parseCli([c, '--help']), { kind: 'help', command: c });
      assert.deepEqual(parseCli(['help', c]), { kind: 'help', command: c });
      const h = commandHelp(c);
      assert.match(h, new RegExp(`universal-neurons ${c}`));
      assert.ok(h.length < HELP.length, `${c}'s help is shorter than the whole help`);
    }
    assert.deepEqual(parseCli(['--help']), { kind: 'help' });
    assert.match(commandHelp('activations'), /--json OUT/);
    assert.doesNotMatch(commandHelp('activations'), /--family-vr|universal-neurons analyze/);
    assert.match(commandHelp('analyze'), /--family-vr/);
    assert.doesNotMatch(commandHelp('summary'), /--json/);
  });

  test('merge, status and slurm are in the command table: help CMD, CMD --help, the top-level help', () => {
    for (const c of ['merge', 'status', 'slurm']) {
      assert.deepEqual(parseCli(['help', c]), { kind: 'help', command: c });
      const h = commandHelp(c);
      assert.match(h, new RegExp(`universal-neurons ${c} `));
      assert.match(HELP, new RegExp(`^  ${c}\\s{2,}\\S`, 'm'), `${c} is described in the top-level help`);
    }
    assert.match(commandHelp('merge'), /--partial/);
    assert.match(commandHelp('merge'), /--threads N/);
    assert.match(commandHelp('slurm'), /--mem M/);
    assert.doesNotMatch(commandHelp('status'), /--mem|--json/);
    const viaCli = cli('slurm', '--help');
    assert.equal(viaCli.code, 0, viaCli.err);
    assert.match(viaCli.out, /universal-neurons slurm --models/);
    assert.doesNotMatch(viaCli.out, /universal-neurons merge/);
  });

  test('merge and status go through parseCli: typed commands, the same numeric checks', () => {
    assert.deepEqual(parseCli(['merge', 'p0', 'p1', '--out', 'RUN', '--threads', '4']), { kind: 'merge', parts: ['p0', 'p1'], out: 'RUN', partial: false, threads: 4 });
    assert.deepEqual(parseCli(['merge', 'parts', '--out', 'P', '--partial']), { kind: 'merge', parts: ['parts'], out: 'P', partial: true, threads: 0 });
    assert.deepEqual(parseCli(['status', 'parts']), { kind: 'status', dir: 'parts' });
    assert.throws(() => parseCli(['merge', 'p0', '--out', 'R', '--threads', '-1']), /--threads needs an integer >= 0, got "-1"/);
    assert.throws(() => parseCli(['merge', 'p0']), /merge needs --out RUN/);
    assert.throws(() => parseCli(['merge', '--out', 'R']), /merge needs the parts/);
    assert.throws(() => parseCli(['merge', 'p0', '--out', 'R', '--tokens', '5']), /merge does not take --tokens/);
    assert.throws(() => parseCli(['status']), /status needs one folder/);
    assert.throws(() => parseCli(['status', 'a', 'b']), /unexpected argument "b"/);
    assert.throws(() => parseCli(['status', 'a', '--partial']), /status does not take --partial/);
  });

  test('slurm --mem is checked before anything is written', async () => {
    const { writeSlurm } = await import('../../src/cli/slurm');
    const dir = join(tmpdir(), `un-slurm-mem-${process.pid}`);
    const base = ['--dir', dir, '--models', 'a', 'b', '--corpus', 'c', '--tokens', '2k', '--block-size', '4'];
    for (const bad of ['16 GB', '1.5G', 'lots']) {
      await assert.rejects(writeSlurm([...base, '--mem', bad]), (e: Error) => e instanceof UsageError && e.message.includes(`--mem needs a whole number with K, M, G or T (e.g. 16G), got ${JSON.stringify(bad)}`));
    }
    assert.equal(existsSync(dir), false);
  });

  test('the CLI prints them; --version prints the package version', () => {
    const h = cli('summary', '--help');
    assert.equal(h.code, 0, h.err);
    assert.match(h.out, /universal-neurons summary RUN/);
    assert.doesNotMatch(h.out, /universal-neurons activations/);
    const v = cli('--version');
    assert.equal(v.code, 0, v.err);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(v.out.trim(), `universal-neurons ${pkg.version}`);
  });
});

describe('arguments', () => {
  test('--tokens as people write counts', () => {
    for (const [raw, n] of [['1000000', 1e6], ['1_000_000', 1e6], ['1,000,000', 1e6], ['1e6', 1e6], ['1.5e5', 150000], ['1M', 1e6], ['64k', 64000], ['2G', 2e9]] as const) {
      assert.equal(parseCount(raw), n, raw);
      const c = parseCli(['analyze', '--models', 'a', 'b', '--corpus', 'c', '--tokens', raw]);
      assert.equal(c.kind === 'analyze' && c.tokens, n, raw);
    }
    for (const raw of ['1.5', '1e-3', 'abc', '', '1.2345k', '-5']) assert.equal(parseCount(raw), undefined, raw);
    usage(['analyze', '--models', 'a', 'b', '--corpus', 'c', '--tokens', '1.5'], /whole number of tokens/);
    usage(['analyze', '--models', 'a', 'b', '--corpus', 'c', '--tokens', '-5'], /whole number of tokens/);
    const d = parseCli(['demo', '--tokens', '40k']);
    assert.equal(d.kind === 'demo' && d.tokens, 40000);
  });

  test('negative values reach their own check: --seed -1 is refused clearly, --threshold -0.2 is taken', () => {
    usage([...ANALYZE, '--seed', '-1'], /--seed needs an integer in \[0, 2\^32\)/);
    usage([...ANALYZE, '--seed', '4294967296'], /--seed needs an integer in \[0, 2\^32\)/);
    const c = parseCli([...ANALYZE, '--threshold', '-0.2']);
    assert.equal(c.kind === 'analyze' && c.threshold, -0.2);
    usage([...ANALYZE, '--threshold', '-3'], /strictly between -1 and 2/);
    usage([...ANALYZE, '--top', '-1'], /--top needs an integer/);
    const r = cli(...ANALYZE, '--seed', '-1');
    assert.equal(r.code, 2);
    assert.match(r.err, /--seed needs an integer in \[0, 2\^32\)/);
  });

  test('--family-vr: VR thresholds in [0, 1], position-mi and position-kurtosis >= 0', () => {
    usage([...ANALYZE, '--family-vr', 'unigram=2'], /unigram needs a variance reduction in \[0, 1\], got "2"/);
    usage([...ANALYZE, '--family-vr', 'syntax=1.01'], /\[0, 1\]/);
    usage([...ANALYZE, '--family-vr', 'position-mi=-1'], /position-mi needs a mutual information in nats, >= 0/);
    usage([...ANALYZE, '--family-vr', 'wat=1'], /unknown threshold "wat"/);
    const c = parseCli([...ANALYZE, '--family-vr', 'unigram=1,position-mi=3,position-kurtosis=10']);
    assert.deepEqual(c.kind === 'analyze' && c.familyThresholds, { unigram: 1, positionMi: 3, positionKurtosis: 10 });
  });
});

describe('table and summary', () => {
  test('table on a CSV of another schema: an error naming the missing columns, exit 1', async () => {
    const p = join(tmp, 'other.csv');
    writeFileSync(p, 'layer,neuron,score\n0,1,0.5\n1,2,0.7\n');
    await assert.rejects(runTable({ kind: 'table', file: p, top: 5 }, () => {}), (e: unknown) => e instanceof EngineError && /lacks the columns excess_corr, mean_corr, mean_baseline/.test(e.message) && /layer, neuron, score/.test(e.message));
    const r = cli('table', p);
    assert.equal(r.code, 1);
    assert.match(r.err, /not in the paper's universal.csv schema/);
  });

  test('the summary ends with a legend: brackets, sparsity vs activation frequency, kept', () => {
    const p = join(tmp, 'paper.csv');
    writeFileSync(p, 'layer,neuron,mean_corr,mean_baseline,excess_corr,sparsity\n0,0,0.9,0.2,0.7,0.1\n0,1,0.3,0.2,0.1,0.5\n');
    const lines = summarizeTable(readNeuronCsv(p), { threshold: 0.5, top: 5 });
    const legend = lines.slice(lines.indexOf('legend:')).join('\n');
    assert.deepEqual(lines.slice(lines.indexOf('legend:')), SUMMARY_LEGEND);
    assert.match(legend, /all neurons \(universal ones\)/);
    assert.match(legend, /in brackets is unexplained/);
    assert.match(legend, /act_freq: activation frequency/);
    assert.match(legend, /sparsity: the same as the paper's code computes it/);
    assert.match(legend, /kept: tokens counted/);
  });
});

describe('runs that stop say so', () => {
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(r.stdout);
  };
  const fakeRun = (name: string, extra: Record<string, unknown>): string => {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'universal-neurons/run@1', id: name, status: 'running', models: [{ dir: MODELS[0], nLayers: 3, dMlp: 64 }], ...extra }));
    return dir;
  };

  test('runLiveness: this process alive, an exited one dead, another host or no pid unknown', () => {
    assert.equal(runLiveness({ pid: process.pid, hostname: hostname() }), 'alive');
    assert.equal(runLiveness({ pid: deadPid(), hostname: hostname() }), 'dead');
    assert.equal(runLiveness({ pid: process.pid, hostname: 'elsewhere.invalid' }), 'unknown');
    assert.equal(runLiveness({}), 'unknown');
  });

  test('summary of a killed run: interrupted, how to resume; the Runs view says interrupted', async () => {
    const dir = fakeRun('killed', { pid: deadPid(), hostname: hostname() });
    await assert.rejects(runSummaryOf(dir, () => {}, 5), (e: unknown) => e instanceof EngineError && /was interrupted/.test(e.message) && /analyze --resume/.test(e.message) && !/is running/.test(e.message));
    assert.equal(runStatus(dir).status, 'interrupted');
    assert.match(runStatus(dir).detail ?? '', /interrupted/);
    const live = fakeRun('live', { pid: process.pid, hostname: hostname() });
    await assert.rejects(runSummaryOf(live, () => {}, 5), /is still running \(process \d+\)/);
    assert.equal(runStatus(live).status, 'running');
  });

  test('ENOSPC at the end-of-stream checkpoint: an error naming the file, the manifest failed with the reason', async () => {
    const dir = join(tmp, 'enospc');
    let restore: (() => void) | undefined;
    try {
      await assert.rejects(
        runAnalysis({ models: MODELS, corpus: [CORPUS], tokens: 32 * 4, batchRows: 1, checkpointEvery: 100, threads: 1, out: dir, plan: noFamilies }, (p: Progress) => {
          if (p.phase === 'checkpoint' && p.batch === p.batches && !restore) {
            // The next write (the checkpoint) fails once; the manifest's write after it succeeds.
            let failed = false;
            restore = setWriteFn((fd, data, pos) => {
              if (!failed) {
                failed = true;
                throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
              }
              restore?.();
              return writeSync(fd, data, 0, data.byteLength, pos);
            });
          }
        }),
        (e: unknown) => e instanceof EngineError && /checkpoint/.test(e.message) && /disk is full \(ENOSPC\)/.test(e.message),
      );
    } finally {
      restore?.();
    }
    const m = readManifest(dir);
    assert.equal(m.status, 'failed');
    assert.match(String(m.error), /disk is full/);
    assert.match(String(m.reason), /^failed while /);
    assert.equal(m.pid, process.pid);
    assert.equal(m.hostname, hostname());
  });

  test('a raw file-system error is rewrapped to name the file and what to do', () => {
    for (const [code, re] of [['ENOSPC', /disk is full/], ['EACCES', /permission denied/], ['EROFS', /read-only/]] as const) {
      const e = asRunError(Object.assign(new Error(`${code}: raw, open`), { code, path: '/x/file.arrow' }), '/runs/r1');
      assert.ok(e instanceof EngineError);
      assert.match(e.message, /\/x\/file\.arrow/);
      assert.match(e.message, re);
    }
    const c = new CancelledError();
    assert.equal(asRunError(c, '/r'), c);
  });
});

describe('checked before any model is opened; same folders for every command', () => {
  const opened = (events: Progress[]) => events.some((p) => p.phase === 'open' && /^opening/.test(p.message ?? ''));

  test('--tokens below one row, an --out that is a run, a missing corpus: refused before opening', async () => {
    const cases: [{ tokens?: number; corpus?: string[]; out?: string }, RegExp][] = [
      [{ tokens: 10 }, /token budget 10 is less than one row: the reference model.s context is 32 tokens/],
      [{ corpus: [join(tmp, 'nope.txt')] }, /corpus path .*nope\.txt does not exist/],
      [{ out: join(tmp, 'killed-out') }, /already holds a run/],
    ];
    for (const [opts, re] of cases) {
      if (opts.out) {
        mkdirSync(opts.out, { recursive: true });
        writeFileSync(join(opts.out, 'manifest.json'), '{}');
      }
      const events: Progress[] = [];
      await assert.rejects(runAnalysis({ models: MODELS, corpus: opts.corpus ?? [CORPUS], tokens: opts.tokens ?? 64, threads: 1, plan: noFamilies, out: opts.out ?? join(tmp, 'never') }, (p) => events.push(p)), re);
      assert.equal(opened(events), false, `no model opened for ${JSON.stringify(opts)}`);
    }
    const r = cli(...ANALYZE.slice(0, -1), '10');
    assert.equal(r.code, 1);
    assert.match(r.err, /less than one row/);
  });

  test('a budget that is not a multiple of the row: the warning comes first', async () => {
    const events: Progress[] = [];
    const signal = { cancelled: false };
    await assert.rejects(
      runAnalysis({ models: MODELS, corpus: [CORPUS], tokens: 70, threads: 1, plan: noFamilies, out: join(tmp, 'warned') }, (p) => {
        events.push(p);
        signal.cancelled = true; // stop at once: only the order matters here
      }, signal),
      CancelledError,
    );
    assert.match(events[0]?.message ?? '', /^warning: the token budget 70 is not a multiple of the row length 32; using 64 tokens \(2 rows\)/);
  });

  test('weights under another name: activations and analyze both read the folder', async () => {
    const dirs = MODELS.map((m, i) => {
      const d = join(tmp, `renamed-${i}`);
      mkdirSync(d, { recursive: true });
      for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(m, f), join(d, f));
      copyFileSync(join(m, 'model.safetensors'), join(d, 'weights.safetensors'));
      return d;
    });
    const a = cli('activations', '--model', dirs[0]!, '--text', 'Hello world', '--top', '1');
    assert.equal(a.code, 0, a.err);
    const r = await runAnalysis({ models: dirs, corpus: [CORPUS], tokens: 64, threads: 1, plan: noFamilies, out: join(tmp, 'renamed-run') });
    assert.equal(r.manifest.status, 'complete');
    assert.equal(r.manifest.models[0]!.safetensors_sha256, await hashFile(join(dirs[0]!, 'weights.safetensors')));
  });
});

test('a reader that closes the pipe early (`| head -1`): exit 0, no EPIPE trace', () => {
  // bash runs the pipeline so that the CLI writes into a pipe whose reader has gone.
  const text = 'The cat sat on the mat. ' + 'word '.repeat(300);
  const cmd = `"${process.execPath}" --import tsx src/cli/main.ts activations --model models/tiny-gpt2-a --top 50 --text "${text}" | head -1; exit \${PIPESTATUS[0]}`;
  const r = spawnSync('bash', ['-c', cmd], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|Error/);
  assert.match(r.stdout, /^model .*tiny-gpt2-a/);
});
