// Cancel within a second in every phase (issue #19 item 3): an analysis of three tiny fixture
// models (3 layers × 64 neurons, 32 positions) is cancelled in each phase, from the stream to the
// last result file, and must stop within 1 s of the cancel with nothing reported after it, its
// manifest `cancelled` with the phase in its reason, and no checkpoint written on the way out; two
// of them are resumed and must give files byte-identical to the uninterrupted run. `activations`
// is cancelled after its forward (the top-K, the JSON), and the CLI's analyze, Ctrl-C'd in the
// intervention, exits 130 within a second.
//
// The cancel is a signal that turns true on the n-th time it is read after the phase began: the
// runs are in-thread (no timer can fire inside a synchronous loop), and "within 1 s" is from the
// first read that saw it to the rejection. A phase's loops must read the signal to stop at all
// before the next phase: a missing cancel point shows as a run that reports a later phase.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAnalysis, type Progress } from '../../src/engine/analysis/pipeline';
import { defaultPlan } from '../../src/engine/analysis/plan';
import { CancelledError, type CancellationSignal } from '../../src/engine/errors';
import { readManifest } from '../../src/engine/run/manifest';
import { readCheckpoint } from '../../src/engine/store';
import { runActivations } from '../../src/cli/activations';

const ROOT = resolve(__dirname, '..', '..');
const FIX = join(ROOT, 'test', 'fixtures');
const MODELS = ['gpt2-tiny-crfm', 'gpt2-tiny-crfm-f16', 'gpt2-tiny-crfm-bf16'].map((m) => join(FIX, m));
const CORPUS = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const RESULT_FILES = ['neurons.arrow', 'universal.csv', 'partners.arrow', 'vocab.arrow', 'actstats.arrow', 'examples.json', 'examples.bin', 'families.arrow', 'universal_families.csv', 'roles.json', 'basis.json'];
const tmp = mkdtempSync(join(tmpdir(), 'un-cancel-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// 16 rows of 32 in batches of 2: 8 batches, a checkpoint every 2. One intervention neuron on 2 rows.
const options = (out: string) => ({
  models: MODELS,
  corpus: [CORPUS],
  tokens: 32 * 16,
  batchRows: 2,
  checkpointEvery: 2,
  threads: 1,
  out,
  plan: defaultPlan({ families: { interventionRows: 2, interventions: 1 } }),
});
const resumeOptions = (dir: string) => ({ models: [], corpus: [], tokens: 0, resume: dir, threads: 1, plan: defaultPlan({ families: { interventionRows: 2, interventions: 1 } }) });

/** A signal that turns true on its `n`-th read once `armed`; `firedAt` is when a read first saw it true. */
function pollSignal(n: number) {
  let armed = false;
  let reads = 0;
  let firedAt = -1;
  const signal: CancellationSignal = {
    get cancelled() {
      if (firedAt >= 0) return true;
      if (!armed) return false;
      if (++reads < n) return false;
      firedAt = performance.now();
      return true;
    },
  };
  return {
    signal,
    arm: () => void (armed = true),
    get firedAt() {
      return firedAt;
    },
  };
}

const sameFile = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));

describe('cancel within 1 s in every phase of analyze, resumable', () => {
  const full = join(tmp, 'full');
  const gaps = new Map<string, number>();
  before(async () => {
    // The uninterrupted run, its signal read throughout: the longest gap between two reads per
    // phase is logged (on these tiny models every gap is small; on GPT-2 small it is the latency).
    let last = performance.now();
    let phase = 'open';
    const signal: CancellationSignal = {
      get cancelled() {
        const now = performance.now();
        gaps.set(phase, Math.max(gaps.get(phase) ?? 0, now - last));
        last = now;
        return false;
      },
    };
    await runAnalysis(options(full), (p) => {
      if (p.phase !== 'checkpoint') phase = p.phase === 'stream' ? 'stream' : (p.message ?? p.phase);
      last = performance.now();
    }, signal);
    console.log(`     longest gaps between cancel checks: ${[...gaps].map(([k, v]) => `${k.slice(0, 30)} ${v.toFixed(0)} ms`).join('; ')}`);
  });

  const phases: { name: string; when: (p: Progress) => boolean; nth: number; reason: RegExp; resume?: boolean }[] = [
    { name: 'stream (forwards)', when: (p) => p.phase === 'stream' && p.batch === 3, nth: 1, reason: /cancelled while streaming/, resume: true },
    // nth 2: the first read is between accumulators, the second inside CrossMoments' finish loop.
    { name: 'computing correlations / rotation baseline', when: (p) => p.phase === 'finish', nth: 2, reason: /while computing correlations/ },
    { name: 'weight statistics', when: (p) => /weight statistics/.test(p.message ?? ''), nth: 2, reason: /while weight statistics/ },
    { name: 'families', when: (p) => /^families: variance/.test(p.message ?? ''), nth: 2, reason: /while families: variance/ },
    { name: 'roles', when: (p) => /^roles from the weights/.test(p.message ?? ''), nth: 2, reason: /while roles/ },
    // The neuron is in the last layer, so the sweep (one forward for every value) scores it: the
    // signal is read before each onnxruntime run, one row each; nth 2 is between the two rows.
    { name: 'entropy intervention (between rows)', when: (p) => /^entropy intervention/.test(p.message ?? ''), nth: 2, reason: /while entropy intervention/, resume: true },
    { name: 'writing result files', when: (p) => /^result files: neurons/.test(p.message ?? ''), nth: 1, reason: /while result files: neurons/ },
    { name: 'examples', when: (p) => /^result files: examples/.test(p.message ?? ''), nth: 1, reason: /while result files: examples/ },
  ];

  for (const ph of phases) {
    test(`${ph.name}: stops within 1 s${ph.resume ? ', resume gives identical files' : ''}`, async () => {
      const dir = join(tmp, ph.name.replace(/\W+/g, '-'));
      const s = pollSignal(ph.nth);
      const afterCancel: string[] = [];
      let ckBefore: number | undefined;
      await assert.rejects(
        runAnalysis(options(dir), (p) => {
          if (s.firedAt >= 0) afterCancel.push(`${p.phase} ${p.message ?? p.batch ?? ''}`);
          else if (ph.when(p)) {
            ckBefore = readCheckpoint(dir)?.nextBatch;
            s.arm();
          }
        }, s.signal),
        (e: unknown) => e instanceof CancelledError,
      );
      const ms = performance.now() - s.firedAt;
      assert.ok(s.firedAt >= 0, 'the signal was never read in this phase');
      console.log(`     ${ph.name}: cancel → rejected in ${ms.toFixed(0)} ms`);
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
      assert.deepEqual(afterCancel, [], 'nothing is reported after the cancel (no later phase ran)');
      const m = readManifest(dir);
      assert.equal(m.status, 'cancelled');
      assert.match(String(m.reason), ph.reason);
      assert.match(String(m.reason), /--resume/);
      assert.equal(existsSync(join(dir, 'run.lock')), false, 'the lock is released');
      // No checkpoint on the way out: the one there is the one there was when the phase began.
      assert.equal(readCheckpoint(dir)?.nextBatch, ckBefore);
      if (!ph.resume) return;
      const r = await runAnalysis(resumeOptions(dir));
      assert.equal(r.manifest.status, 'complete');
      assert.equal(r.manifest.reason, undefined);
      for (const f of RESULT_FILES) assert.ok(sameFile(join(dir, f), join(full, f)), `${f} differs from the uninterrupted run`);
    });
  }
});

describe('activations: cancel after the forward', () => {
  const model = MODELS[0]!;
  // ~700 tokens: 22 windows of 32, one forward; the top-K and the JSON are the work after it.
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8').slice(0, 3000);
  let forwardReads = 0;
  before(async () => {
    // How many times the forward reads the signal: a cancel on the next read is after it.
    const s = pollSignal(Infinity);
    s.arm();
    let reads = 0;
    const counting: CancellationSignal = {
      get cancelled() {
        reads++;
        return false;
      },
    };
    const { openModel } = await import('../../src/engine/runtime');
    const m = await openModel(model, { threads: 1 });
    try {
      await m.activations(text, { signal: counting });
    } finally {
      await m.close();
    }
    forwardReads = reads;
  });

  for (const [what, extra] of [
    ['the top-K', 1],
    ['the JSON', 4],
  ] as const) {
    test(`cancelled in ${what}: CancelledError within 1 s, no JSON left`, async () => {
      const json = join(tmp, `acts-${extra}.json`);
      const s = pollSignal(forwardReads + extra);
      s.arm();
      const lines: string[] = [];
      await assert.rejects(runActivations({ model, text, top: 3, json, threads: 1 }, (l) => lines.push(l), s.signal), (e: unknown) => e instanceof CancelledError);
      const ms = performance.now() - s.firedAt;
      assert.ok(s.firedAt >= 0);
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
      assert.equal(existsSync(json), false);
      assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('.acts-')), [], 'no temp file left');
      assert.ok(!lines.some((l) => l.startsWith('wrote')));
    });
  }
});

describe('CLI analyze: Ctrl-C in the intervention', () => {
  test('exits 130 within 1 s, manifest cancelled', async () => {
    const dir = join(tmp, 'cli-sigint');
    const args = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'analyze', '--models', ...MODELS, '--corpus', CORPUS, '--tokens', String(32 * 16), '--batch-rows', '2', '--threads', '1', '--out', dir];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let sentAt = -1;
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (sentAt < 0 && /entropy intervention/.test(err)) {
        sentAt = performance.now();
        child.kill('SIGINT');
      }
    });
    const code = await exited;
    const ms = performance.now() - sentAt;
    assert.ok(sentAt >= 0, `never reached the intervention: ${err}`);
    console.log(`     SIGINT → exit in ${ms.toFixed(0)} ms`);
    assert.equal(code, 130, err);
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    assert.match(err, /interrupted/);
    assert.match(err, /--resume/);
    const m = readManifest(dir);
    assert.equal(m.status, 'cancelled');
    assert.match(String(m.reason), /entropy intervention/);
  });
});
