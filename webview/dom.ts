/** Small DOM helpers for the views (plain elements; toolkit controls come from ui.ts). */

type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.class) e.className = props.class;
  if (props.text !== undefined) e.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) e.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export function clear(node: Node): void {
  while (node.firstChild) node.firstChild.remove();
}

/** A number for display: 4 significant digits, '—' when missing. */
export function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(digits - 1);
  return String(Number(x.toPrecision(digits)));
}

export const neuronName = (layer: number, neuron: number): string => `L${layer}.N${neuron}`;

/** A token's text with whitespace made visible (for example contexts). */
export function visibleToken(text: string): string {
  return text.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/\r/g, '');
}

/**
 * Shades a token span: --shade is in [−1, 1], the stylesheet turns it into a colour through the
 * theme's chart colours (CSSOM custom property, so no inline style attribute under the CSP).
 */
export function shade(span: HTMLElement, value: number, scale: number): void {
  const s = scale > 0 && Number.isFinite(value) ? Math.max(-1, Math.min(1, value / scale)) : 0;
  span.style.setProperty('--shade', String(Math.abs(s)));
  span.classList.add(s < 0 ? 'neg' : 'pos');
}
