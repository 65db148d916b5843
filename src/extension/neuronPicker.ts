/**
 * "Which neuron?": a quick pick that accepts a typed name (`L3.N120`) or offers the current run's
 * universal neurons — the top by excess correlation, then by family — and, for a heat-map, the
 * neurons most active at the cursor.
 */
import * as vscode from 'vscode';
import { neuronLabel, parseNeuronRef, type NeuronRef } from '../engine/editor';
import type { RunView } from '../engine/run/view';
import { familyCounts } from '../view/counts';
import { familyName } from '../view/familyText';
import { NO_FAMILY, rankByExcess } from '../view/ranking';
import { familyOf, familySummary } from '../view/rowFamily';

interface NeuronItem extends vscode.QuickPickItem {
  ref?: NeuronRef;
}

const PER_FAMILY = 40;
const TOP_EXCESS = 25;

export interface PickOptions {
  title: string;
  run: RunView | undefined;
  /** Model dimensions when there is no run (the prompt's model). */
  dims?: { nLayers: number; dMlp: number };
  /** Extra items first (e.g. top neurons at the cursor). */
  extra?: { label: string; items: { ref: NeuronRef; detail: string }[] };
}

function runItems(run: RunView): NeuronItem[] {
  const items: NeuronItem[] = [];
  const fmt = (r: number) => `excess ${run.excess[r]!.toFixed(3)}`;
  const top = rankByExcess(run, TOP_EXCESS, true);
  if (top.length) {
    items.push({ label: 'Top excess correlation', kind: vscode.QuickPickItemKind.Separator });
    for (const r of top) {
      const ref = { layer: run.layer[r]!, neuron: run.neuron[r]! };
      items.push({ label: neuronLabel(ref), description: fmt(r), detail: familySummary(familyOf(run, r)), ref });
    }
  }
  if (run.family) {
    const ranked = rankByExcess(run, run.nRows, true);
    for (const { family, neurons: count } of familyCounts(run.family, run.universal, { unassigned: NO_FAMILY, universalOnly: true })) {
      items.push({ label: `${family === NO_FAMILY ? family : familyName(family)} (${count})`, kind: vscode.QuickPickItemKind.Separator });
      let n = 0;
      for (const r of ranked) {
        if ((run.family[r] || NO_FAMILY) !== family) continue;
        const ref = { layer: run.layer[r]!, neuron: run.neuron[r]! };
        items.push({ label: neuronLabel(ref), description: fmt(r), ref });
        if (++n >= PER_FAMILY) break;
      }
    }
  }
  return items;
}

/** Resolves to the chosen neuron, or undefined when dismissed. */
export function pickNeuron(opts: PickOptions): Promise<NeuronRef | undefined> {
  const dims = opts.run ? { nLayers: opts.run.reference.nLayers, dMlp: opts.run.reference.dMlp } : opts.dims;
  const base: NeuronItem[] = [];
  if (opts.extra?.items.length) {
    base.push({ label: opts.extra.label, kind: vscode.QuickPickItemKind.Separator });
    for (const e of opts.extra.items) base.push({ label: neuronLabel(e.ref), description: e.detail, ref: e.ref });
  }
  if (opts.run) base.push(...runItems(opts.run));
  const qp = vscode.window.createQuickPick<NeuronItem>();
  qp.title = opts.title;
  qp.placeholder = `Type a neuron (L3.N120)${dims ? `: layers 0–${dims.nLayers - 1}, neurons 0–${dims.dMlp - 1}` : ''}, or pick one`;
  qp.matchOnDescription = true;
  qp.matchOnDetail = true;
  qp.items = base;
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: NeuronRef | undefined) => {
      if (done) return;
      done = true;
      resolve(v);
      qp.dispose();
    };
    qp.onDidChangeValue((v) => {
      const ref = parseNeuronRef(v, dims);
      const typed: NeuronItem[] = ref
        ? [{ label: neuronLabel(ref), description: 'typed', alwaysShow: true, ref }]
        : v.trim() && /^\s*l?\s*\d/i.test(v)
          ? [{ label: `"${v.trim()}" is not a neuron of this model`, description: dims ? `L0–${dims.nLayers - 1}, N0–${dims.dMlp - 1}` : '', alwaysShow: true }]
          : [];
      qp.items = [...typed, ...base];
    });
    qp.onDidAccept(() => {
      const item = qp.selectedItems[0] ?? qp.activeItems[0];
      const ref = item?.ref ?? parseNeuronRef(qp.value, dims);
      if (ref) finish(ref);
    });
    qp.onDidHide(() => finish(undefined));
    qp.show();
  });
}
