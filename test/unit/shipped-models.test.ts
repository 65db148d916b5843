// The shipped model family (models/tiny-gpt2-{a..e}; neuron families are family-stats.test.ts):
// every model loads through our engine, and the engine reproduces the model card's figures
// (models/family.json, written by tools/family_card.py from an independent torch forward) on the
// card's fixed held-out slice.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { scoreMeans } from '../../src/engine/analysis/intervention';
import { openScorer } from '../../src/engine/scorer';

const root = join(__dirname, '..', '..');
const card = JSON.parse(readFileSync(join(root, 'models', 'family.json'), 'utf8')) as {
  slice: { file: string; ctx: number; stride: number; rows: number };
  unigram_baseline_nats: number;
  seeds: Record<string, { heldout_loss: number; predictions: number }>;
};
const SEEDS = ['a', 'b', 'c', 'd', 'e'];
const BOS = 50256;

/** The card's slice: rows of BOS + (ctx-1) held-out tokens, every `stride`-th row from row 0. */
function sliceRows(): number[][] {
  const buf = readFileSync(join(root, card.slice.file));
  const toks = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2);
  const body = card.slice.ctx - 1;
  const nRows = Math.floor(toks.length / body);
  const rows: number[][] = [];
  for (let r = 0; r < nRows; r += card.slice.stride) rows.push([BOS, ...toks.subarray(r * body, (r + 1) * body)]);
  return rows;
}

test('the card covers all five seeds and its slice is what the card says', () => {
  assert.deepEqual(Object.keys(card.seeds).sort(), SEEDS);
  assert.equal(sliceRows().length, card.slice.rows);
});

for (const seed of SEEDS) {
  test(`tiny-gpt2-${seed}: loads, and its held-out loss matches the model card within 0.01`, async () => {
    const scorer = await openScorer(join(root, 'models', `tiny-gpt2-${seed}`), { threads: 2 });
    try {
      assert.equal(scorer.config.nLayer, 4);
      assert.equal(scorer.config.dMlp, 512);
      assert.equal(scorer.config.vocabSize, 50257);
      // Per-token loss from the graph: the 50,257 logits per token never reach JS.
      const scores = await scorer.score(sliceRows());
      const loss = scoreMeans(scores).loss;
      const n = scores.nTokens - scores.offsets.length + 1; // every position but each row's last
      assert.equal(n, card.seeds[seed]!.predictions);
      assert.ok(Math.abs(loss - card.seeds[seed]!.heldout_loss) <= 0.01, `engine loss ${loss.toFixed(4)} vs card ${card.seeds[seed]!.heldout_loss}`);
      assert.ok(loss <= card.unigram_baseline_nats - 1.5, `loss ${loss.toFixed(3)} is not 1.5 nats below the unigram baseline ${card.unigram_baseline_nats}`);
    } finally {
      await scorer.close();
    }
  });
}

test('models/README.md shows the figures of family.json', () => {
  const md = readFileSync(join(root, 'models', 'README.md'), 'utf8');
  for (const seed of SEEDS) {
    const row = new RegExp(`^\\| ${seed} \\| (\\d+\\.\\d+) \\|`, 'm').exec(md);
    assert.ok(row, `no held-out loss row for seed ${seed}`);
    assert.equal(Number(row[1]), card.seeds[seed]!.heldout_loss);
  }
  assert.ok(md.includes(card.unigram_baseline_nats.toFixed(4)));
});
