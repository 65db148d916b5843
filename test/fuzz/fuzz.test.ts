// Issue #19, "never a silent wrong number": npm test's share of the fuzz suite. 500 seeded
// mutations of a small real checkpoint (safetensors header and data, config.json, the GPT-2
// tokenizer.json) and of a corpus (.jsonl, .tokens.bin), each run through the engine's real entry
// points in worker processes with a per-case limit (harness.ts, runner.ts). Any crash, hang,
// silent wrong number or refusal that does not name its file fails the test, with the command
// that reproduces the case. `npm run fuzz` runs 10,000 and writes FUZZ.md.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runFuzz } from './harness';
import { mutationFor } from './mutators/index';
import { FAMILIES } from './mutation';

const SEED = 19;
const CASES = 500;

const digest = (m: ReturnType<typeof mutationFor>) =>
  createHash('sha256')
    .update(JSON.stringify({ ...m, changes: m.changes.map((c) => c.path) }))
    .update(new Uint8Array(m.changes.flatMap((c) => (typeof c.content === 'string' ? [] : [...createHash('sha256').update(c.content).digest()]))))
    .digest('hex');

test('a case is a function of (seed, index): the same mutation every time, and no Math.random anywhere in the suite', () => {
  const random = Math.random;
  Math.random = () => {
    throw new Error('a mutator called Math.random');
  };
  try {
    for (const i of [0, 1, 2, 3, 17, 123, 499]) assert.equal(digest(mutationFor(SEED, i)), digest(mutationFor(SEED, i)));
    assert.notEqual(digest(mutationFor(SEED, 5)), digest(mutationFor(SEED + 1, 5)));
    for (let i = 0; i < 200; i++) mutationFor(SEED + 7, i);
  } finally {
    Math.random = random;
  }
  const dir = __dirname;
  const files = [...readdirSync(dir), ...readdirSync(join(dir, 'mutators')).map((f) => join('mutators', f))].filter((f) => f.endsWith('.ts'));
  for (const f of files) assert.doesNotMatch(readFileSync(join(dir, f), 'utf8').replace(/\/\/.*|\/\*[\s\S]*?\*\//g, ''), /Math\.random\s*\(/, f);
});

test(`${CASES} fuzz cases: no crash, no hang, no silent wrong number, every refusal names its file`, { timeout: 30 * 60_000 }, async (t) => {
  const s = await runFuzz({ seed: SEED, count: CASES });
  const by = (o: string) => s.results.filter((r) => r.outcome === o).length;
  t.diagnostic(
    `${CASES} cases in ${(s.wallMs / 1000).toFixed(1)} s (${s.jobs} workers; start-up ${s.startupMs.map((m) => (m / 1000).toFixed(1)).join(', ')} s): ` +
      `${by('refused')} refused, ${by('harmless')} harmless, ${by('different-model')} valid input of a different model; ` +
      `slowest case ${(Math.max(...s.results.map((r) => r.ms)) / 1000).toFixed(1)} s`,
  );
  const lines = s.failures.map(
    (r) =>
      `#${r.index} ${r.outcome} ${r.family}/${r.op} (${r.base}): ${r.detail}\n    ` +
      Object.entries(r.paths)
        .map(([k, p]) => `${k}: ${p?.outcome} ${p?.message ?? ''}`)
        .join('\n    ') +
      `\n    reproduce: npm run fuzz -- --seed ${SEED} --case ${r.index}`,
  );
  assert.equal(s.failures.length, 0, `fuzz failures:\n${lines.join('\n')}`);
  assert.equal(s.results.length, CASES);
  for (const f of FAMILIES) assert.ok(s.results.filter((r) => r.family === f).length >= 15, `family ${f} has too few cases`);
  // The suite exercises every outcome it claims to sort: refusals, harmless rewrites, valid other models.
  assert.ok(by('refused') > CASES / 3 && by('harmless') > 20 && by('different-model') > 20);
  assert.deepEqual(s.matDebug, [], 'onnxruntime left /tmp/mat-debug-<pid>.log files');
  assert.deepEqual(s.leftovers, [], 'the workers left temp folders');
  for (const w of s.workerStats) assert.ok(w.openFds < 64, `a worker holds ${w.openFds} open files after ${w.cases} cases: a case leaks file descriptors`);
});
