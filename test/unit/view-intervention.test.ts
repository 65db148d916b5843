// What the editor says about an active intervention (src/view/interventionText.ts): the status
// item and the hover section; and the package.json side of the two commands.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from '../../src/view/commandIds';
import { DIVERGING } from '../../src/view/diverging';
import { HOVER_COMMANDS, hoverMarkdown } from '../../src/view/hoverContent';
import { interventionHoverMarkdown, interventionLabel, interventionStatus, type InterventionSummary } from '../../src/view/interventionText';

const s: InterventionSummary = { mode: 'zero', neurons: ['L3.N120', 'L1.N5'], hook: 'post', range: [0, 12], nTokens: 12, meanDeltaLoss: 0.01234 };

test('status item: mode, first neuron and how many more, mean Δloss, click to clear', () => {
  assert.equal(interventionLabel(s), 'zero L3.N120 +1');
  assert.equal(interventionLabel({ mode: 'fix=2', neurons: ['L0.N0'] }), 'fix=2 L0.N0');
  const st = interventionStatus(s);
  assert.equal(st.text, '$(beaker) zero L3.N120 +1  Δloss +0.012');
  assert.match(st.tooltip, /\*\*zero\*\* on L3\.N120, L1\.N5 at hook_post, every token\./);
  assert.match(st.tooltip, /Click to clear\.$/);
  const mean = interventionStatus({ ...s, mode: 'mean', meanSource: 'prompt', range: [2, 5], meanDeltaLoss: -0.5 }, true);
  assert.equal(mean.text, '$(beaker) mean L3.N120 +1  Δloss −0.500');
  assert.match(mean.tooltip, /tokens 2–4 \(means: this prompt's own; no run statistics given\) on another document\./);
  assert.doesNotMatch(mean.tooltip, /windows/);
  assert.match(interventionStatus({ ...s, windows: 3, nPositions: 128 }).tooltip, /ran as 3 windows of at most 128 tokens/);
});

test('hover section: loss before → after and the next tokens, Markdown-escaped', () => {
  const md = interventionHoverMarkdown({
    summary: s,
    loss: { before: 2.5, after: 2.75 },
    next: [
      { text: ' the|*', before: 0.2, after: 0.1 },
      { text: '\n', before: 0.0001, after: 0.05 },
    ],
  });
  assert.match(md, /^\*\*Intervention\*\* zero L3\\\.N120 \\\+1 \(hook_post, every token\)/);
  assert.match(md, /Loss of this token: 2\.500 → 2\.750 nats \(Δ \+0\.250\)/);
  assert.match(md, /\| " the\\\|\\\*" \| 0\.200 \| 0\.100 \|/);
  assert.match(md, /\| "\\\\n" \| 1\.0e-4 \| 0\.050 \|/);
  assert.doesNotMatch(interventionHoverMarkdown({ summary: s, next: [] }), /Loss of this token/);
});

test('package.json: the commands, their palette entries and the Δloss colours', () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
  const titles = Object.fromEntries((pkg.contributes.commands as { command: string; title: string }[]).map((c) => [c.command, c.title]));
  assert.equal(titles[Command.InterveneNeuron], 'Intervene on Neuron…');
  assert.equal(titles[Command.ClearIntervention], 'Clear Intervention');
  const colors = pkg.contributes.colors as { id: string; defaults: Record<string, string> }[];
  for (const side of [DIVERGING.positive, DIVERGING.negative]) {
    assert.deepEqual(colors.find((c) => c.id === side.themeColour)?.defaults, side.defaults, `${side.themeColour}: the defaults of src/view/diverging.ts`);
  }
});

test('one diverging scale: the prompt view and the editor shade Δ loss red up, blue down, as the status tooltip says', () => {
  assert.equal(DIVERGING.positive.name, 'red');
  assert.equal(DIVERGING.negative.name, 'blue');
  // The editor's translucent defaults are the webview's chart colours' hues (VS Code's dark theme).
  assert.match(DIVERGING.positive.css, /charts-red/);
  assert.match(DIVERGING.negative.css, /charts-blue/);
  const css = readFileSync(join(__dirname, '..', '..', 'media', 'webview.css'), 'utf8');
  assert.match(css, /\.tok\.pos \{\s*--tok-colour: var\(--diverging-pos/);
  assert.match(css, /\.tok\.neg \{\s*--tok-colour: var\(--diverging-neg/);
  const prompt = readFileSync(join(__dirname, '..', '..', 'webview', 'prompt.ts'), 'utf8');
  assert.match(prompt, /--diverging-pos', DIVERGING\.positive\.css/);
  const tip = interventionStatus({ mode: 'zero', neurons: ['L1.N2'], hook: 'post', range: [0, 3], nTokens: 3, meanDeltaLoss: 0.1 }).tooltip;
  assert.match(tip, /shaded red where their loss rose, blue where it fell/);
});

test("the token hover links each neuron's ablation (Intervene on Neuron, mode zero), a trusted command", () => {
  const md = hoverMarkdown({ tokenIndex: 1, nTokens: 3, text: ' cat', id: 3797, start: 0, end: 4, line: 0, character: 0, top: [{ layer: 3, neuron: 120, value: 2.5 }], model: 'm' });
  const m = /\[ablate\]\(command:universalNeurons\.interveneNeuron\?([^ )]+)/.exec(md);
  assert.ok(m, md);
  assert.deepEqual(JSON.parse(decodeURIComponent(m[1]!)), [{ neurons: 'L3.N120', mode: 'zero' }]);
  assert.ok((HOVER_COMMANDS as readonly string[]).includes(Command.InterveneNeuron));
});

test('the neuron page may ask for an ablation: the protocol accepts {type: intervene, layer, neuron} and nothing looser', async () => {
  const { isFromWebview } = await import('../../src/protocol');
  assert.ok(isFromWebview({ type: 'intervene', layer: 3, neuron: 120 }));
  for (const bad of [{ type: 'intervene', layer: -1, neuron: 0 }, { type: 'intervene', layer: 1 }, { type: 'intervene', layer: 1, neuron: 1.5 }]) assert.ok(!isFromWebview(bad), JSON.stringify(bad));
});
