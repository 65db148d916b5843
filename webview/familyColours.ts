/**
 * One colour per family and per role, from the theme's chart colours, so a family looks the same
 * in every chart. Colour is never the only cue: every chart has a legend, tooltips and a text
 * alternative naming the family.
 */
import type { Role } from '../src/protocol';
import type { ChartTheme, SeriesColour } from './theme';
import { withAlpha } from './theme';

// Seven families, six theme colours: token features share syntax's, lighter (a surface
// feature and a part of speech are the closest two kinds).
const FAMILY: Record<string, SeriesColour> = {
  unigram: 'blue',
  alphabet: 'purple',
  'previous-token': 'green',
  position: 'yellow',
  // Not orange: that is the universal highlight in the other overview charts.
  syntax: 'cyan',
  semantic: 'red',
};

const ROLE: Record<Role, SeriesColour> = {
  prediction: 'green',
  suppression: 'red',
  partition: 'purple',
  entropy: 'yellow',
  'attention-deactivation': 'blue',
};

const ORDER: SeriesColour[] = ['blue', 'cyan', 'green', 'purple', 'red', 'yellow'];

/** `unexplained` and unknown families get the muted colour (unknown ones a translucent series colour by name). */
export function familyColour(t: ChartTheme, family: string): string {
  const c = FAMILY[family];
  if (c) return t.series[c];
  if (family === 'token-feature') return withAlpha(t.series.cyan, 0.5);
  if (family === 'unexplained') return withAlpha(t.muted, 0.5);
  let h = 0;
  for (const ch of family) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return withAlpha(t.series[ORDER[h % ORDER.length]!], 0.55);
}

export const roleColour = (t: ChartTheme, role: Role): string => t.series[ROLE[role]];
