/**
 * Theme colours for charts: read from the `--vscode-*` CSS variables VS Code sets on the webview,
 * and a notification when the theme changes (VS Code swaps the body class between vscode-light,
 * vscode-dark, vscode-high-contrast and vscode-high-contrast-light, and rewrites the variables).
 */

export interface ChartTheme {
  kind: 'light' | 'dark' | 'high-contrast' | 'high-contrast-light';
  foreground: string;
  muted: string;
  grid: string;
  /** Main series (non-universal / neutral). */
  primary: string;
  /** Highlight series (universal). */
  accent: string;
  positive: string;
  negative: string;
  background: string;
  fontFamily: string;
  fontSize: number;
  /** The theme's chart colours by name, for categorical series (families, roles). */
  series: Record<SeriesColour, string>;
}

export type SeriesColour = 'blue' | 'orange' | 'green' | 'purple' | 'red' | 'yellow' | 'cyan';

function cssVar(style: CSSStyleDeclaration, name: string, fallback: string): string {
  const v = style.getPropertyValue(name).trim();
  return v || fallback;
}

export function themeKind(): ChartTheme['kind'] {
  const c = document.body.classList;
  if (c.contains('vscode-high-contrast-light')) return 'high-contrast-light';
  if (c.contains('vscode-high-contrast')) return 'high-contrast';
  if (c.contains('vscode-light')) return 'light';
  return 'dark';
}

export function chartTheme(): ChartTheme {
  const s = getComputedStyle(document.body);
  const kind = themeKind();
  const light = kind === 'light' || kind === 'high-contrast-light';
  const fg = cssVar(s, '--vscode-foreground', light ? '#3b3b3b' : '#cccccc');
  return {
    kind,
    foreground: fg,
    muted: cssVar(s, '--vscode-descriptionForeground', light ? '#717171' : '#9d9d9d'),
    grid: cssVar(s, '--vscode-editorWidget-border', light ? '#c8c8c8' : '#454545'),
    primary: cssVar(s, '--vscode-charts-blue', light ? '#1a85ff' : '#3794ff'),
    accent: cssVar(s, '--vscode-charts-orange', light ? '#d18616' : '#d18616'),
    positive: cssVar(s, '--vscode-charts-red', light ? '#e51400' : '#f14c4c'),
    negative: cssVar(s, '--vscode-charts-blue', light ? '#1a85ff' : '#3794ff'),
    background: cssVar(s, '--vscode-editor-background', light ? '#ffffff' : '#1e1e1e'),
    fontFamily: cssVar(s, '--vscode-font-family', 'system-ui, sans-serif'),
    fontSize: parseFloat(cssVar(s, '--vscode-font-size', '13')) || 13,
    series: {
      blue: cssVar(s, '--vscode-charts-blue', light ? '#1a85ff' : '#3794ff'),
      orange: cssVar(s, '--vscode-charts-orange', '#d18616'),
      green: cssVar(s, '--vscode-charts-green', light ? '#388a34' : '#89d185'),
      purple: cssVar(s, '--vscode-charts-purple', light ? '#652d90' : '#b180d7'),
      red: cssVar(s, '--vscode-charts-red', light ? '#e51400' : '#f14c4c'),
      yellow: cssVar(s, '--vscode-charts-yellow', light ? '#bf8803' : '#cca700'),
      // The charts palette has six hues and orange is the views' "universal" colour: a seventh
      // for categorical series comes from the terminal palette, which every theme defines too.
      cyan: cssVar(s, '--vscode-terminal-ansiCyan', light ? '#0598bc' : '#11a8cd'),
    },
  };
}

/** `#rgb`/`#rrggbb`/`rgb()` with an alpha, for translucent fills (other formats unchanged). */
export function withAlpha(color: string, alpha: number): string {
  const c = color.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(c);
  if (m) {
    const [r, g, b] = m[1]!.split('').map((h) => parseInt(h + h, 16));
    return `rgba(${r}, ${g}, ${b}, ${alpha})`;
  }
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(c);
  if (m) {
    const n = parseInt(m[1]!, 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  m = /^rgba?\(([^,]+),([^,]+),([^,)]+)/i.exec(c);
  if (m) return `rgba(${m[1]!.trim()}, ${m[2]!.trim()}, ${m[3]!.trim()}, ${alpha})`;
  return c;
}

const listeners = new Set<() => void>();
let observer: MutationObserver | undefined;

/** Calls `cb` after every theme change (body class change). Returns an unsubscribe function. */
export function onThemeChange(cb: () => void): () => void {
  listeners.add(cb);
  if (!observer) {
    let last = document.body.className;
    observer = new MutationObserver(() => {
      if (document.body.className === last) return;
      last = document.body.className;
      for (const l of [...listeners]) l();
    });
    observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  }
  return () => listeners.delete(cb);
}
