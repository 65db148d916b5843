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
