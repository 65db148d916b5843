/**
 * The one diverging scale of signed per-token values: the prompt view's shading (an activation,
 * or an intervention's Δ loss) and the editor's Δ loss decorations. Red: positive (the loss rose),
 * blue: negative (the loss fell), red/blue rather than red/green so that it reads without
 * red-green colour vision.
 *
 * The editor paints contributed theme colours, whose defaults package.json must hold (checked by
 * view-intervention.test.ts): translucent, because each level stacks one more layer. The webview
 * mixes the theme's chart colours by the value's strength.
 */
export interface DivergingSide {
  /** The colour's name in text (status-bar tooltip). */
  name: string;
  /** The editor decoration's contributed theme colour. */
  themeColour: string;
  /** Its defaults in package.json. */
  defaults: { dark: string; light: string; highContrast: string; highContrastLight: string };
  /** The webview's CSS colour. */
  css: string;
}

export const DIVERGING: { positive: DivergingSide; negative: DivergingSide } = {
  positive: {
    name: 'red',
    themeColour: 'universalNeurons.deltaLossUp',
    defaults: { dark: '#f1483040', light: '#d0302038', highContrast: '#f1483066', highContrastLight: '#d0302055' },
    css: 'var(--vscode-charts-red)',
  },
  negative: {
    name: 'blue',
    themeColour: 'universalNeurons.deltaLossDown',
    defaults: { dark: '#3794ff40', light: '#0062d138', highContrast: '#3794ff66', highContrastLight: '#0062d155' },
    css: 'var(--vscode-charts-blue)',
  },
};
