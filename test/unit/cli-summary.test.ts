// The run summary's family and activation lines (src/cli/summary.ts) on a planted table: the
// paper's sparsity beside the exact activation frequency, the kurtosis both ways, the new family
// kinds, and a line naming the families no neuron is in (syntax: why).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarizeTable } from '../../src/cli/summary';
import type { NeuronTable } from '../../src/engine/run/neurons';

test('summary: act_freq and sparsity medians, kurtosis paper and exact, token-feature, and why syntax is absent', () => {
  const n = 4;
  const f = (...xs: number[]) => Float64Array.from(xs);
  const t: NeuronTable = {
    source: 'planted',
    nRows: n,
    columns: new Map([
      ['layer', f(0, 0, 1, 1)],
      ['neuron', f(0, 1, 0, 1)],
      ['excess_corr', f(0.6, 0.1, 0.7, 0.2)],
      ['mean_corr', f(0.9, 0.4, 0.95, 0.5)],
      ['mean_baseline', f(0.3, 0.3, 0.25, 0.3)],
      ['act_freq', f(0.02, 0.5, 0.04, 0.5)],
      ['sparsity', f(0.03, 0.6, 0.05, 0.6)],
      ['kurt', f(5, 3, 7, 3)],
      ['kurt_exact', f(6, 3, 8, 3)],
    ]),
    text: new Map([['family', ['alphabet', 'unexplained', 'token-feature', 'unigram']]]),
  };
  const out = summarizeTable(t, { threshold: 0.5, top: 0 }).join('\n');
  assert.match(out, /medians over the 2 universal neurons: .*activation frequency 0\.030, sparsity 0\.040, kurtosis 6\.000 \(exact 7\.000\)/);
  assert.match(out, /^layer\s+unigram\s+alphabet\s+token-feature\s+unexplained$/m);
  assert.match(out, /^no neuron in: previous-token, position, syntax, semantic \(syntax needs part-of-speech tags: a \.jsonl corpus with "tagged" records\)$/m);
});

test('summary: properties of universal neurons as median within-layer percentiles, and the basis per layer', () => {
  // Two layers of 4 neurons; neuron 3 of each is universal and has the largest kurt and the
  // smallest sparsity of its layer: percentiles (3.5/4 and 0.5/4 of 100) = 87.5 and 12.5.
  const f = (...xs: number[]) => Float64Array.from(xs);
  const t: NeuronTable = {
    source: 'planted',
    nRows: 8,
    columns: new Map([
      ['layer', f(0, 0, 0, 0, 1, 1, 1, 1)],
      ['neuron', f(0, 1, 2, 3, 0, 1, 2, 3)],
      ['excess_corr', f(0.1, 0.2, 0.1, 0.7, 0.1, 0.1, 0.2, 0.6)],
      ['mean_corr', f(0.4, 0.5, 0.4, 0.9, 0.2, 0.2, 0.3, 0.8)],
      ['mean_baseline', f(0.3, 0.3, 0.3, 0.2, 0.25, 0.3, 0.35, 0.2)],
      ['kurt', f(3, 4, 5, 30, 103, 104, 105, 130)],
      ['sparsity', f(0.5, 0.6, 0.7, 0.01, 0.5, 0.6, 0.7, 0.03)],
    ]),
  };
  const out = summarizeTable(t, { threshold: 0.5, top: 0, pcaTop5: [0.42, null] }).join('\n');
  // Rest: ranks 12.5, 37.5, 62.5 in each layer → median 37.5 (kurt); 37.5, 62.5, 87.5 → 62.5 (sparsity).
  assert.match(out, /^ {2}kurt\s+87\.5\s+37\.5\s+80$/m);
  assert.match(out, /^ {2}sparsity\s+12\.5\s+62\.5\s+0\.02$/m);
  assert.match(out, /^ {2}not in planted: w_in_norm, input_bias, w_out_norm, in_out_sim, l2_penalty, mean, skew, vocab_mean, vocab_var, vocab_skew, vocab_kurt$/m);
  // Layer 0: median mean_corr 0.45 > the baseline's p90 0.3; layer 1: 0.25 ≤ p90 0.335.
  assert.match(out, /^ {2}0\s+0\.450\s+0\.275\s+0\.300\s+0\.300\s+0\.300\s+42\.00%$/m);
  assert.match(out, /^ {2}1\s+0\.250\s+0\.23[78]\s+0\.275\s+0\.313\s+0\.335\s+not in this run$/m);
  assert.match(out, /^ {2}L0: neurons here are more meaningful than random directions/m);
  assert.match(out, /^ {2}L1: neurons here are not more meaningful than random directions/m);
});

test('table: a paper table of universal neurons gives raw medians beside a run\'s, and names the columns it lacks', () => {
  const f = (...xs: number[]) => Float64Array.from(xs);
  const t: NeuronTable = {
    source: '/x/gpt2-small.csv',
    nRows: 3,
    columns: new Map([
      ['layer', f(0, 2, 5)],
      ['neuron', f(7, 9, 11)],
      ['mean_corr', f(0.8, 0.85, 0.9)],
      ['mean_baseline', f(0.2, 0.2, 0.3)],
      ['kurt', f(10, 20, 40)],
    ]),
  };
  const compare = { label: 'run r1 (5 universal)', medians: new Map([['kurt', 6.5], ['sparsity', 0.03]] as const), missing: [] };
  const out = summarizeTable(t, { threshold: 0.5, top: 0, compare }).join('\n');
  assert.match(out, /percentiles within a layer need every neuron of the layer; this table holds only some/);
  assert.match(out, /^ {2}statistic\s+gpt2-small\.csv \(3 universal\)\s+run r1 \(5 universal\)$/m);
  assert.match(out, /^ {2}kurt\s+20\s+6\.5$/m);
  assert.match(out, /^ {2}sparsity\s+-\s+0\.03$/m);
  assert.match(out, /^ {2}not in \/x\/gpt2-small\.csv: w_in_norm, .*sparsity, vocab_mean, vocab_var, vocab_skew, vocab_kurt$/m);
  // A table of some neurons has no per-layer basis section (its baseline distribution is of universal neurons only).
  assert.doesNotMatch(out, /is the basis privileged/);
});
