/**
 * Heat-map decorations: one neuron's hook_post shades every token of a prompt document. The
 * scale is shared across the document (src/engine/editor.ts `heatScale`, symmetric around 0,
 * BOS excluded); each token gets a signed level 1..LEVELS (`heatLevels`). Colours are themable
 * (`universalNeurons.heatPositive` / `heatNegative`): level k is painted as k stacked layers of
 * that translucent colour, so themes set one colour per sign and the shading follows.
 * The decorations follow the document: an edit re-analyses it (debounced, PromptAnalyzer) and the
 * shading is redrawn from the fresh result. A status-bar item names the neuron; clicking it clears.
 */
import * as vscode from 'vscode';
import { clearOverlays } from './decorations';
import { Command } from '../view/commandIds';
import { heatLevels, heatScale, neuronLabel, neuronSeries, type HeatScale, type NeuronRef } from '../engine/editor';
import type { PromptAnalyzer, PromptResult } from './promptAnalyzer';

export const LEVELS = 5;

export interface HeatApplied {
  neuron: string;
  document: string;
  version: number;
  scale: HeatScale;
  /** Tokens shaded at each level 1..LEVELS, positive and negative. */
  positive: number[];
  negative: number[];
  /** Visible editors the decorations were set on. */
  editors: number;
}

interface Active {
  ref: NeuronRef;
  label: string;
  applied?: HeatApplied;
}

export class HeatMap implements vscode.Disposable {
  private readonly pos: vscode.TextEditorDecorationType[] = [];
  private readonly neg: vscode.TextEditorDecorationType[] = [];
  private readonly active = new Map<string, Active>();
  private readonly disposables: vscode.Disposable[] = [];

  private status?: vscode.StatusBarItem;

  constructor(private readonly analyzer: PromptAnalyzer) {
    this.disposables.push(
      analyzer.onDidAnalyze((r) => this.redraw(r)),
      vscode.window.onDidChangeVisibleTextEditors(() => this.redrawVisible()),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateStatus()),
      vscode.workspace.onDidCloseTextDocument((d) => {
        if (this.active.delete(d.uri.toString())) this.updateStatus();
      }),
    );
  }

  /** Decoration types and the status item are made on first use: activation stays light. */
  private ensureTypes(): void {
    if (this.pos.length) return;
    for (let k = 1; k <= LEVELS; k++) {
      const strongest = k === LEVELS;
      this.pos.push(
        vscode.window.createTextEditorDecorationType({
          backgroundColor: new vscode.ThemeColor('universalNeurons.heatPositive'),
          overviewRulerColor: strongest ? new vscode.ThemeColor('universalNeurons.heatPositive') : undefined,
          overviewRulerLane: vscode.OverviewRulerLane.Right,
          rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
        }),
      );
      this.neg.push(
        vscode.window.createTextEditorDecorationType({
          backgroundColor: new vscode.ThemeColor('universalNeurons.heatNegative'),
          overviewRulerColor: strongest ? new vscode.ThemeColor('universalNeurons.heatNegative') : undefined,
          overviewRulerLane: vscode.OverviewRulerLane.Left,
          rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
        }),
      );
    }
    const status = vscode.window.createStatusBarItem('universalNeurons.heatmap', vscode.StatusBarAlignment.Left, 50);
    status.name = 'Universal Neurons heat-map';
    status.command = Command.ClearHeatmap;
    this.status = status;
    this.disposables.push(...this.pos, ...this.neg, status);
  }

  /** The neuron heat-mapped on `doc`, if any (the hover shows its value). */
  activeFor(doc: vscode.TextDocument): { ref: NeuronRef; label: string } | undefined {
    const a = this.active.get(doc.uri.toString());
    return a && { ref: a.ref, label: a.label };
  }

  appliedFor(doc: vscode.TextDocument): HeatApplied | undefined {
    return this.active.get(doc.uri.toString())?.applied;
  }

  /** Shades `doc` by `ref` from an analysis of its current version. */
  set(doc: vscode.TextDocument, ref: NeuronRef, result: PromptResult): HeatApplied {
    this.ensureTypes();
    const a: Active = { ref, label: neuronLabel(ref) };
    this.active.set(doc.uri.toString(), a);
    const applied = this.draw(doc, a, result);
    this.updateStatus();
    return applied;
  }

  clear(doc?: vscode.TextDocument): number {
    const n = clearOverlays(this.active, [...this.pos, ...this.neg], doc);
    this.updateStatus();
    return n;
  }

  private draw(doc: vscode.TextDocument, a: Active, result: PromptResult): HeatApplied {
    const T = result.tokens.length;
    const series = neuronSeries(result.post, T, a.ref);
    const scale = heatScale(series, 1);
    const levels = heatLevels(series, scale, LEVELS, 1);
    const posRanges: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    const negRanges: vscode.Range[][] = Array.from({ length: LEVELS }, () => []);
    const positive = new Array<number>(LEVELS).fill(0);
    const negative = new Array<number>(LEVELS).fill(0);
    for (let t = 1; t < T; t++) {
      const lv = levels[t]!;
      if (lv === 0) continue;
      const tok = result.tokens[t]!;
      if (tok.end <= tok.start) continue;
      const range = new vscode.Range(doc.positionAt(tok.start), doc.positionAt(tok.end));
      const k = Math.abs(lv);
      (lv > 0 ? positive : negative)[k - 1]!++;
      // Level k: layers 1..k stacked.
      for (let j = 0; j < k; j++) (lv > 0 ? posRanges : negRanges)[j]!.push(range);
    }
    let editors = 0;
    for (const ed of vscode.window.visibleTextEditors) {
      if (ed.document.uri.toString() !== result.uri) continue;
      editors++;
      for (let j = 0; j < LEVELS; j++) {
        ed.setDecorations(this.pos[j]!, posRanges[j]!);
        ed.setDecorations(this.neg[j]!, negRanges[j]!);
      }
    }
    a.applied = { neuron: a.label, document: result.uri, version: result.version, scale, positive, negative, editors };
    return a.applied;
  }

  private redraw(result: PromptResult): void {
    const a = this.active.get(result.uri);
    if (!a) return;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === result.uri);
    if (!doc || doc.version !== result.version) return;
    this.draw(doc, a, result);
    this.updateStatus();
  }

  private redrawVisible(): void {
    for (const ed of vscode.window.visibleTextEditors) {
      const a = this.active.get(ed.document.uri.toString());
      const r = a && this.analyzer.fresh(ed.document);
      if (a && r) this.draw(ed.document, a, r);
    }
    this.updateStatus();
  }

  private updateStatus(): void {
    if (!this.status) return;
    const ed = vscode.window.activeTextEditor;
    const a = ed && this.active.get(ed.document.uri.toString());
    const any = a ?? [...this.active.values()][0];
    if (!any) {
      this.status.hide();
      return;
    }
    this.status.text = `$(flame) ${any.label}`;
    const s = any.applied?.scale;
    this.status.tooltip = new vscode.MarkdownString(
      `Universal Neurons heat-map: **${any.label}**` +
        (s ? ` (scale ±${s.absMax.toFixed(3)}; min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})` : '') +
        (a ? '' : ' on another document') +
        '\n\nClick to clear.',
    );
    this.status.show();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
