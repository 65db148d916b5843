// A development run on real GPT-NeoX training checkpoints (issue #15): test/fixtures/neox-checkpoints
// holds steps 250, 500, 1000 and 2000 (main) of the tiny GPT-NeoX trained by the family's recipe
// (tools/train_family.py --arch gpt_neox, command in its docstring), the checkpoints the e2e's
// development chart shows. Its corpus is text (heldout.jsonl): heldout.tokens.bin holds GPT-2 ids.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runDevelopment } from '../../src/cli/development';
import { summarizeDevelopment } from '../../src/engine/development';
import { loadRun } from '../../src/engine/run/data';
import { readManifest } from '../../src/engine/run/manifest';

const ROOT = resolve(__dirname, '..', '..');
const ENTRY = join(ROOT, 'test', 'fixtures', 'neox-checkpoints', 'models--local--tiny-neox-a');
const STEPS = [250, 500, 1000];
const FINAL = 2000;
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
const tmp = fs.mkdtempSync(join(tmpdir(), 'un-neox-dev-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('a development run on the tiny GPT-NeoX checkpoints of the family recipe', () => {
  const out = join(tmp, 'dev');
  const lines: string[] = [];
  before(async () => {
    await runDevelopment(
      { kind: 'development', final: ENTRY, checkpoints: STEPS.map((s) => `${ENTRY}@step${s}`), corpus: [HELDOUT], tokens: 128 * 64, out, threads: 1 },
      (l) => lines.push(l),
      () => {},
      { cancelled: false },
      true,
    );
  });

  test('every checkpoint is a GPT-NeoX snapshot of the entry; the manifest records revision, commit and step', () => {
    const m = readManifest(out);
    assert.deepEqual(
      m.models.map((x) => [x.label, x.revision, x.step]),
      [['tiny-neox-a@main', 'main', FINAL], ...STEPS.map((s) => [`tiny-neox-a@step${s}`, `step${s}`, s])],
    );
    for (const x of m.models) {
      assert.equal(x.dir, join(ENTRY, 'snapshots', x.commit!));
      const cfg = JSON.parse(fs.readFileSync(join(x.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg['model_type'], 'gpt_neox');
      assert.equal(cfg['tie_word_embeddings'], false);
    }
  });

  test('correlation with the final neurons rises with the step', async () => {
    const run = await loadRun(out);
    assert.ok(run.development, run.developmentNote);
    const rows = summarizeDevelopment(run.development, run.partners!);
    assert.deepEqual(rows.map((r) => r.step), STEPS);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i]!.mean > rows[i - 1]!.mean, `mean max corr at step ${rows[i]!.step} (${rows[i]!.mean}) > step ${rows[i - 1]!.step} (${rows[i - 1]!.mean})`);
    const printed = lines.join('\n');
    for (const r of rows) assert.match(printed, new RegExp(`^\\s+${r.step}\\s+tiny-neox-a@step${r.step}\\s+${r.mean.toFixed(3)}`, 'm'));
  });
});
