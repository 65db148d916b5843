/**
 * The hover's Markdown, as a string. No `vscode` import (bench/editor.ts times it outside the
 * editor) and no maths: the ranking and the token come from src/engine/editor.ts, the universal
 * marks, families and roles from the run's table; this only lays them out, with `command:` links.
 */
import type { Role } from '../protocol';
import { Command } from './commandIds';
import { describeLabel, familyName, isExplained, ROLE_TITLES } from './familyText';

/** The only commands hover links may run (MarkdownString.isTrusted.enabledCommands). */
export const HOVER_COMMANDS = [Command.ShowNeuron, Command.HeatmapNeuron, Command.InterveneNeuron] as const;

export interface HoverNeuron {
  layer: number;
  neuron: number;
  value: number;
  /** From the current run's table, when the prompt ran on its reference model. */
  universal?: boolean;
  excess?: number;
  family?: string;
  /** The best explaining label, machine-readable (`unigram:the`). */
  familyLabel?: string;
  /** Its variance reduction. */
  familyVr?: number;
  /** Roles, the primary first. */
  roles?: Role[];
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

/** `unigram: token is “the” (VR 0.62) · prediction`; '' when the run says nothing about the neuron. */
export function familyCell(n: HoverNeuron): string {
  const parts: string[] = [];
  if (isExplained(n.family)) {
    const name = familyName(n.family!);
    const label = n.familyLabel ? describeLabel(n.familyLabel) : '';
    // “previous token: previous token starts with t” says it twice: the label alone is enough.
    const text = !label ? name : label.startsWith(name) ? label : `${name}: ${label}`;
    const vr = n.familyVr !== undefined && Number.isFinite(n.familyVr) ? ` (VR ${n.familyVr.toFixed(2)})` : '';
    parts.push(mdLiteral(text) + vr);
  }
  if (n.roles?.length) parts.push(mdLiteral(n.roles.map((r) => ROLE_TITLES[r]).join(', ')));
  return parts.join(' · ');
}

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
  // The family column only when the run has families or roles (old runs keep the narrow table).
  const families = h.top.some((n) => n.family !== undefined || n.roles !== undefined);
  lines.push(`| neuron | hook_post | universal |${families ? ' family · role |' : ''} |`);
  lines.push(`|:--|--:|:--|${families ? ':--|' : ''}:--|`);
  for (const n of h.top) {
    const ref = { layer: n.layer, neuron: n.neuron };
    const label = `L${n.layer}.N${n.neuron}`;
    const mark = n.universal ? `★ excess ${fmt(n.excess ?? NaN)}` : n.excess !== undefined ? `excess ${fmt(n.excess)}` : '';
    lines.push(
      `| [${label}](${commandUri(Command.ShowNeuron, [ref])} "Open the neuron page of ${label}") | ${fmt(n.value)} | ${mark} | ` +
        (families ? `${familyCell(n)} | ` : '') +
        `[heat-map](${commandUri(Command.HeatmapNeuron, [ref])} "Shade this document by ${label}") · ` +
        `[ablate](${commandUri(Command.InterveneNeuron, [{ neurons: label, mode: 'zero' }])} "Zero ${label} and shade each token by its change in loss") |`,
    );
  }
  lines.push('');
  lines.push(`_${mdLiteral(h.model)}${h.runId ? ` · run ${mdLiteral(h.runId)}` : ''}${h.note ? ` · ${mdLiteral(h.note)}` : ''}_`);
  return lines.join('\n');
}
