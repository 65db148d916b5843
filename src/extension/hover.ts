/**
 * Hover on prompt documents (plaintext, markdown, and the `universalNeurons.promptGlobs`
 * patterns): the token under the mouse and its top-K neurons, universal ones marked from the
 * current run, with links that open the neuron page or heat-map the neuron. Only documents that
 * were analysed (Analyze Prompt, or a heat-map) show a hover: plain text files stay quiet.
 */
import * as vscode from 'vscode';
import { continuationTokens, neuronSeries, tokenAtOffset, topNeuronsAt } from '../engine/editor';
import { rowOf } from '../engine/run/view';
import { tokenSignal } from './cancel';
import { readSettings, SECTION } from './config';
import type { HeatMap } from './heatmap';
import { HOVER_COMMANDS, hoverMarkdown, type HoverInput, type HoverNeuron } from '../view/hoverContent';
import type { PromptAnalyzer, PromptResult } from './promptAnalyzer';
import { familyOf } from '../view/rowFamily';
import { DEMO_RUN_HOVER } from './runChoice';
import type { RunState } from './runState';

export function promptSelector(globs: readonly string[]): vscode.DocumentSelector {
  return [
    { language: 'plaintext' },
    { language: 'markdown' },
    ...globs.map((pattern) => ({ pattern })),
  ];
}

/** Pure layout input for one position (exported for the extension-host tests and the bench). */
export function hoverInput(
  result: PromptResult,
  doc: Pick<vscode.TextDocument, 'offsetAt' | 'positionAt' | 'getText'>,
  pos: vscode.Position,
  run: RunState['current'],
  topK: number,
  heat?: { ref: { layer: number; neuron: number }; label: string },
  /** How the footer names the run (default its id; the shipped demo run has a title). */
  runLabel?: string,
): { input: HoverInput; range: vscode.Range } | undefined {
  const t = tokenAtOffset(result.tokens, doc.offsetAt(pos));
  if (t < 0) return undefined;
  const tok = result.tokens[t]!;
  const T = result.tokens.length;
  const sameModel = !!run && result.model.source === 'run' && result.model.runDir === run.dir;
  const top: HoverNeuron[] = topNeuronsAt(result.post, T, t, topK).map((n) => {
    if (!sameModel) return n;
    const r = rowOf(run, n);
    if (r < 0) return n;
    return { ...n, universal: run.universal[r] === 1, excess: run.excess[r], ...familyOf(run, r) };
  });
  const start = doc.positionAt(tok.start);
  const end = doc.positionAt(tok.end);
  const range = new vscode.Range(start, end);
  const text = doc.getText(range);
  const cont = continuationTokens(result.tokens, t).map((i) => ({ index: i, id: result.tokens[i]!.id }));
  const input: HoverInput = {
    tokenIndex: t,
    nTokens: T,
    text,
    raw: result.tokenText[t],
    continuation: cont,
    id: tok.id,
    start: tok.start,
    end: tok.end,
    line: start.line,
    character: start.character,
    top,
    model: result.model.label,
    runId: sameModel ? (runLabel ?? run.id) : undefined,
    note: run ? (sameModel ? undefined : 'not the current run’s reference model: no universal marks') : 'no run open: no universal marks',
  };
  if (heat) {
    const series = neuronSeries(result.post, T, heat.ref);
    if (series.length > t) input.heat = { label: heat.label, value: series[t]! };
  }
  return { input, range };
}

export function registerHover(analyzer: PromptAnalyzer, run: RunState, heat: HeatMap): vscode.Disposable {
  let registration: vscode.Disposable | undefined;
  let globs = '';
  const provider: vscode.HoverProvider = {
    async provideHover(doc, pos, token) {
      let result = analyzer.fresh(doc);
      if (!result) {
        if (!analyzer.isFollowed(doc)) return undefined;
        // Edited since the last analysis: wait for the re-analysis (stale numbers are never shown).
        result = await analyzer.pending(doc, tokenSignal(token));
        if (!result || token.isCancellationRequested) {
          const last = analyzer.last(doc);
          if (!last || vscode.workspace.isTrusted) return undefined;
          const md = new vscode.MarkdownString(
            'Universal Neurons: this prompt changed since it was analysed. Restricted Mode analyses only on request: run **Universal Neurons: Analyze Prompt**.',
          );
          return new vscode.Hover(md);
        }
      }
      const current = run.current;
      const h = hoverInput(result, doc, pos, current, readSettings().topK, heat.activeFor(doc), run.isDemo(current) ? DEMO_RUN_HOVER : undefined);
      if (!h) return undefined;
      const md = new vscode.MarkdownString(hoverMarkdown(h.input));
      md.isTrusted = { enabledCommands: [...HOVER_COMMANDS] };
      md.supportHtml = false;
      return new vscode.Hover(md, h.range);
    },
  };
  const register = () => {
    const g = readSettings().promptGlobs;
    const key = JSON.stringify(g);
    if (key === globs && registration) return;
    globs = key;
    registration?.dispose();
    registration = vscode.languages.registerHoverProvider(promptSelector(g), provider);
  };
  register();
  const cfg = vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration(`${SECTION}.promptGlobs`)) register();
  });
  return new vscode.Disposable(() => {
    cfg.dispose();
    registration?.dispose();
  });
}
