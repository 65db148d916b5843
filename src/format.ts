/**
 * Text formatting shared by the CLI and the extension's output channel, so both show the same
 * table. No maths here: rankings come from the engine (`topNeurons`); this only lays them out.
 * No `vscode` and no engine-runtime import, so the extension can load it at activation.
 */

export interface NeuronValue {
  layer: number;
  neuron: number;
  value: number;
}

export interface TokenRow {
  id: number;
  text: string;
  start: number;
  end: number;
  /** Top neurons by post-activation, best first. */
  top: NeuronValue[];
}

/** TransformerLens naming: `L{layer}.N{neuron}=value`. */
export function formatNeuron(n: NeuronValue): string {
  return `L${n.layer}.N${n.neuron}=${n.value.toFixed(3)}`;
}

/**
 * One line per token: index, JSON-escaped text (so spaces, newlines and partial UTF-8 stay
 * visible), id, UTF-16 range `start-end` into the analysed text, then the top neurons.
 */
export function formatTokenTable(rows: readonly TokenRow[], k: number): string[] {
  const cells = rows.map((r, i) => [String(i), JSON.stringify(r.text), String(r.id), `${r.start}-${r.end}`]);
  const head = ['#', 'token', 'id', 'range'];
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const pad = (row: string[]) =>
    row.map((cell, c) => (c === 0 || c === 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ');
  const lines = [`${pad(head)}  top-${k} neurons by hook_post`];
  rows.forEach((r, i) => lines.push(`${pad(cells[i]!)}  ${r.top.map(formatNeuron).join(' ')}`));
  return lines;
}

/**
 * One line for a person. EngineError carries the file (and tensor) separately; add them when the
 * message does not already name them. Works on any thrown value.
 */
export function errorLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let msg = err.message || err.name;
  const { file, tensor } = err as Error & { file?: unknown; tensor?: unknown };
  if (typeof tensor === 'string' && tensor && !msg.includes(tensor)) msg += ` [tensor ${tensor}]`;
  if (typeof file === 'string' && file && !msg.includes(file)) msg += ` (${file})`;
  return msg.replace(/\s*\n\s*/g, ' ');
}
