/**
 * The hover's Markdown, as a string. No `vscode` import (bench/editor.ts times it outside the
 * editor) and no maths: the ranking and the token come from src/engine/editor.ts, the universal
 * marks from the run's table; this only lays them out, with `command:` links.
 */

export const SHOW_NEURON = 'universalNeurons.showNeuron';
export const HEATMAP_NEURON = 'universalNeurons.heatmapNeuron';
/** The only commands hover links may run (MarkdownString.isTrusted.enabledCommands). */
export const HOVER_COMMANDS = [SHOW_NEURON, HEATMAP_NEURON] as const;

export interface HoverNeuron {
  layer: number;
  neuron: number;
  value: number;
  /** From the current run's table, when the prompt ran on its reference model. */
  universal?: boolean;
  excess?: number;
  family?: string;
}

export interface HoverInput {
  tokenIndex: number;
  nTokens: number;
  /** The document's text under the token (what the user sees). */
  text: string;
  /** The tokenizer's spelling when it differs (a partial UTF-8 character). */
  raw?: string;
  /** Tokens that hold only further bytes of the same character(s). */
  continuation?: { id: number; index: number }[];
  id: number;
  start: number;
  end: number;
  line: number;
  character: number;
  top: HoverNeuron[];
  model: string;
  runId?: string;
  /** Why neurons carry no universal marks (no run, or another model). */
  note?: string;
  heat?: { label: string; value: number };
}

const MD_SPECIAL = /[\\`*_{}[\]()#+\-.!|<>~]/g;

/** Text shown literally in Markdown (no emphasis, links or HTML), whitespace made visible. */
export function mdLiteral(s: string): string {
  const visible = JSON.stringify(s).slice(1, -1); // \n, \t, quotes escaped; everything else as is
  return visible.replace(MD_SPECIAL, (c) => `\\${c}`);
}

export function commandUri(command: string, args: unknown[]): string {
  return `command:${command}?${encodeURIComponent(JSON.stringify(args))}`;
}

const fmt = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : String(v));

export function hoverMarkdown(h: HoverInput): string {
  const lines: string[] = [];
  const cont = h.continuation?.length ? ` + ${h.continuation.map((c) => `#${c.index} (id ${c.id})`).join(', ')}` : '';
  lines.push(
    `**Universal Neurons** · token ${h.tokenIndex} of ${h.nTokens - 1} · "${mdLiteral(h.text)}"` +
      (h.raw !== undefined && h.raw !== h.text ? ` (token "${mdLiteral(h.raw)}")` : ''),
  );
  lines.push('');
  lines.push(`id ${h.id}${cont} · chars ${h.start}–${h.end} · line ${h.line + 1}, col ${h.character + 1}`);
  lines.push('');
  if (h.heat) {
    lines.push(`Heat-map ${h.heat.label}: **${fmt(h.heat.value)}**`);
    lines.push('');
  }
  lines.push(`| neuron | hook_post | universal | |`);
  lines.push(`|:--|--:|:--|:--|`);
  for (const n of h.top) {
    const ref = { layer: n.layer, neuron: n.neuron };
    const label = `L${n.layer}.N${n.neuron}`;
    const mark = n.universal
      ? `★ excess ${fmt(n.excess ?? NaN)}${n.family ? ` · ${mdLiteral(n.family)}` : ''}`
      : n.excess !== undefined
        ? `excess ${fmt(n.excess)}`
        : '';
    lines.push(
      `| [${label}](${commandUri(SHOW_NEURON, [ref])} "Open the neuron page of ${label}") | ${fmt(n.value)} | ${mark} | ` +
        `[heat-map](${commandUri(HEATMAP_NEURON, [ref])} "Shade this document by ${label}") |`,
    );
  }
  lines.push('');
  lines.push(`_${mdLiteral(h.model)}${h.runId ? ` · run ${mdLiteral(h.runId)}` : ''}${h.note ? ` · ${mdLiteral(h.note)}` : ''}_`);
  return lines.join('\n');
}
