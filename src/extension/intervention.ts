/**
 * The active neuron intervention of a prompt document (Intervene on Neuron…): the engine's
 * `Intervener` (src/engine/intervene.ts) runs the clean and the edited forward; this shades each
 * token by its Δ loss (the loss of predicting it, intervened − clean; red up, blue down (src/view/diverging.ts), the
 * heat-map's shared-scale levels from src/engine/editor.ts), adds a hover section with the loss
 * and the next tokens before and after, and shows a status-bar item that clears it. Edits re-run
 * it: the prompt analyzer debounces them and fires onDidAnalyze, as for the heat-map.
 */
import * as vscode from 'vscode';
import { clearOverlays } from './decorations';
import { heatLevels, heatScale, tokenAtOffset } from '../engine/editor';
import type { Intervener, InterventionResult, InterventionSpec } from '../engine/intervene';
import type { Model } from '../engine/runtime';
import { Command } from '../view/commandIds';
import { DIVERGING } from '../view/diverging';
import { interventionHoverMarkdown, interventionStatus, type InterventionSummary } from '../view/interventionText';
import { readSettings } from './config';
import type { EngineHost } from './engineHost';
import { promptSelector } from './hover';
import type { PromptAnalyzer, PromptResult } from './promptAnalyzer';

export const LEVELS = 5;

export interface InterventionApplied {
  summary: InterventionSummary;
  document: string;
  version: number;
  /** Tokens shaded at each level 1..LEVELS, loss up and loss down. */
  up: number[];
  down: number[];
  editors: number;
  runMs: number;
}

interface Active {
  spec: InterventionSpec;
  result?: InterventionResult;
  applied?: InterventionApplied;
  /** The version a run is in flight for. */
  running?: number;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function summaryOf(r: InterventionResult): InterventionSummary {
  const label = (e: { layer: number; neuron: number }): string => `L${e.layer}.N${e.neuron}`;
  const mode = r.mode.kind === 'fix' ? `fix=${r.mode.value}` : r.mode.kind === 'scale' ? `scale=${r.mode.factor}` : r.mode.kind;
  return {
    mode,
    neurons: r.edits.map(label),
    hook: r.hook,
    range: [r.tokenRange.start, r.tokenRange.end],
    nTokens: r.tokens.length,
    meanDeltaLoss: mean(r.intervened.loss) - mean(r.clean.loss),
    ...(r.meanSource ? { meanSource: r.meanSource } : {}),
    windows: r.windows,
    nPositions: r.nPositions,
  };
}

export class InterventionView implements vscode.Disposable {
  private readonly up: vscode.TextEditorDecorationType[] = [];
  private readonly down: vscode.TextEditorDecorationType[] = [];
  private readonly active = new Map<string, Active>();
  private readonly disposables: vscode.Disposable[] = [];
  private status?: vscode.StatusBarItem;
  private intervener?: { model: Model; iv: Promise<Intervener> };

  constructor(
    private readonly host: EngineHost,
    analyzer: PromptAnalyzer,
    private readonly log: vscode.OutputChannel,
  ) {
    this.disposables.push(
      analyzer.onDidAnalyze((r) => void this.rerun(r)),
      vscode.window.onDidChangeVisibleTextEditors(() => this.redrawVisible()),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateStatus()),
      vscode.workspace.onDidCloseTextDocument((d) => {
        if (this.active.delete(d.uri.toString())) this.updateStatus();
      }),
      vscode.languages.registerHoverProvider(promptSelector(readSettings().promptGlobs), { provideHover: (doc, pos) => this.hover(doc, pos) }),
    );
  }

  private ensureTypes(): void {
    if (this.up.length) return;
    const make = (color: string, lane: vscode.OverviewRulerLane, strongest: boolean) =>
      vscode.window.createTextEditorDecorationType({
        backgroundColor: new vscode.ThemeColor(color),
        overviewRulerColor: strongest ? new vscode.ThemeColor(color) : undefined,
        overviewRulerLane: lane,
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      });
    for (let k = 1; k <= LEVELS; k++) {
      this.up.push(make(DIVERGING.positive.themeColour, vscode.OverviewRulerLane.Right, k === LEVELS));
      this.down.push(make(DIVERGING.negative.themeColour, vscode.OverviewRulerLane.Left, k === LEVELS));
    }
    const status = vscode.window.createStatusBarItem('universalNeurons.intervention', vscode.StatusBarAlignment.Left, 49);
    status.name = 'Universal Neurons intervention';
    status.command = Command.ClearIntervention;
    this.status = status;
    this.disposables.push(...this.up, ...this.down, status);
  }

  /**
   * For the prompt view: each token's Δ loss (the loss of predicting it; BOS has none) of the
   * intervention on the current version of `doc`, with the tokens and a label.
   */
  deltaLossFor(doc: vscode.TextDocument): { label: string; tokens: { text: string; start: number; end: number; id: number }[]; values: number[] } | undefined {
    const a = this.active.get(doc.uri.toString());
    const r = a?.result;
    if (!r || a.applied?.version !== doc.version) return undefined;
    const s = a.applied.summary;
    return {
      label: `Δ loss (${s.mode} ${s.neurons.join(', ')})`,
      tokens: r.tokens.map((t) => ({ text: t.start === t.end ? t.text : doc.getText().slice(t.start, t.end), start: t.start, end: t.end, id: t.id })),
      values: r.tokens.map((_, t) => (t === 0 ? NaN : r.delta.loss[t - 1]!)),
    };
  }

  activeFor(doc: vscode.TextDocument): InterventionApplied | undefined {
    return this.active.get(doc.uri.toString())?.applied;
  }

  /** Runs `spec` on the analysed `prompt` of `doc` and shades it; the spec stays active for edits. */
  async set(doc: vscode.TextDocument, spec: InterventionSpec, prompt: PromptResult): Promise<InterventionApplied> {
    this.ensureTypes();
    const a: Active = { spec };
    this.active.set(doc.uri.toString(), a);
    try {
      const r = await this.compute(doc, spec, prompt);
      a.result = r;
      const applied = this.draw(doc, a, prompt.version);
      this.updateStatus();
      return applied;
    } catch (e) {
      if (this.active.get(doc.uri.toString()) === a) this.active.delete(doc.uri.toString());
      this.updateStatus();
      throw e;
    }
  }

  clear(doc?: vscode.TextDocument): number {
    const n = clearOverlays(this.active, [...this.up, ...this.down], doc);
    this.updateStatus();
    return n;
  }

  private async compute(doc: vscode.TextDocument, spec: InterventionSpec, prompt: PromptResult): Promise<InterventionResult> {
    const settings = readSettings();
    const text = doc.getText();
    const mod = await import('../engine/intervene');
    return this.host.use(prompt.model.dir, settings.threads, async (_rt, model) => {
      // One intervention session per open model; a new model closes the previous one's.
      if (this.intervener?.model !== model) {
        const old = this.intervener;
        this.intervener = { model, iv: mod.openIntervener(model, settings.threads ? { threads: settings.threads } : {}) };
        if (old) void old.iv.then((iv) => iv.close()).catch(() => undefined);
      }
      const iv = await this.intervener.iv;
      const r = await iv.run(text, spec, { topK: settings.topK, maxTokens: settings.maxPromptTokens });
      this.log.appendLine(
        `${vscode.workspace.asRelativePath(doc.uri)} v${doc.version}: intervention ${summaryOf(r).mode} on ${summaryOf(r).neurons.join(', ')}: ` +
          `${r.tokens.length} tokens, run ${r.ms.run.toFixed(0)} ms`,
      );
      return r;
    });
  }

  /** Δ loss of predicting token t (t ≥ 1), 0 for BOS. */
  private static series(r: InterventionResult): number[] {
    return r.tokens.map((_, t) => (t === 0 ? 0 : r.delta.loss[t - 1]!));
  }

  private draw(doc: vscode.TextDocument, a: Active, version: number): InterventionApplied {
    const r = a.result!;
    const series = InterventionView.series(r);
    const scale = heatScale(series, 1);
    const levels = heatLevels(series, scale, LEVELS, 1);
    const upRanges: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    const downRanges: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    const up = new Array<number>(LEVELS).fill(0);
    const down = new Array<number>(LEVELS).fill(0);
    for (let t = 1; t < r.tokens.length; t++) {
      const lv = levels[t]!;
      const tok = r.tokens[t]!;
      if (lv === 0 || tok.end <= tok.start) continue;
      const range = new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end));
      const k = Math.abs(lv);
      (lv > 0 ? up : down)[k - 1]!++;
      for (let j = 0; j < k; j++) (lv > 0 ? upRanges : downRanges)[j]!.push(range);
    }
    let editors = 0;
    for (const ed of vscode.window.visibleTextEditors) {
      if (ed.document.uri.toString() !== doc.uri.toString()) continue;
      editors++;
      for (let j = 0; j < LEVELS; j++) {
        ed.setDecorations(this.up[j]!, upRanges[j]!);
        ed.setDecorations(this.down[j]!, downRanges[j]!);
      }
    }
    a.applied = { summary: summaryOf(r), document: doc.uri.toString(), version, up, down, editors, runMs: r.ms.run };
    return a.applied;
  }

  /** A fresh analysis of an intervened document (after an edit): run the intervention again. */
  private async rerun(prompt: PromptResult): Promise<void> {
    const a = this.active.get(prompt.uri);
    if (!a || a.running === prompt.version || a.applied?.version === prompt.version) return;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === prompt.uri);
    if (!doc || doc.version !== prompt.version) return;
    a.running = prompt.version;
    try {
      // A token range past the edited prompt's end is cut to it.
      const n = prompt.tokens.length;
      const tokens = a.spec.tokens && { start: Math.min(a.spec.tokens.start ?? 0, n - 1), end: Math.min(a.spec.tokens.end ?? n, n) };
      const r = await this.compute(doc, { ...a.spec, ...(tokens ? { tokens } : {}) }, prompt);
      if (this.active.get(prompt.uri) !== a || doc.version !== prompt.version) return; // cleared or edited meanwhile
      a.result = r;
      this.draw(doc, a, prompt.version);
      this.updateStatus();
    } catch (e) {
      this.log.appendLine(`intervention on ${vscode.workspace.asRelativePath(doc.uri)} v${prompt.version} failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      if (a.running === prompt.version) a.running = undefined;
    }
  }

  private redrawVisible(): void {
    for (const ed of vscode.window.visibleTextEditors) {
      const a = this.active.get(ed.document.uri.toString());
      if (a?.result && a.applied && a.applied.version === ed.document.version) this.draw(ed.document, a, a.applied.version);
    }
    this.updateStatus();
  }

  private hover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const a = this.active.get(doc.uri.toString());
    const r = a?.result;
    if (!r || a.applied?.version !== doc.version) return undefined;
    const t = tokenAtOffset(r.tokens, doc.offsetAt(pos));
    if (t < 0) return undefined;
    const md = interventionHoverMarkdown({
      summary: a.applied.summary,
      loss: t > 0 ? { before: r.clean.loss[t - 1]!, after: r.intervened.loss[t - 1]! } : undefined,
      next: r.topChange[t]!,
    });
    const s = new vscode.MarkdownString(md);
    s.supportHtml = false;
    return new vscode.Hover(s, new vscode.Range(doc.positionAt(r.tokens[t]!.start), doc.positionAt(r.tokens[t]!.end)));
  }

  private updateStatus(): void {
    if (!this.status) return;
    const ed = vscode.window.activeTextEditor;
    const mine = ed && this.active.get(ed.document.uri.toString());
    const any = mine ?? [...this.active.values()].find((x) => x.applied);
    if (!any?.applied) {
      this.status.hide();
      return;
    }
    const s = interventionStatus(any.applied.summary, !mine);
    this.status.text = s.text;
    this.status.tooltip = new vscode.MarkdownString(s.tooltip);
    this.status.show();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    void this.intervener?.iv.then((iv) => iv.close()).catch(() => undefined);
  }
}
