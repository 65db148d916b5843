/**
 * Family and role names for people (the view layer: no `vscode`, no DOM, no Node): the hover and
 * the Runs tree use it in the host, and the webview bundle imports it too, so a label reads the
 * same in every place it appears.
 *
 * The engine writes the best explaining label machine-readably (docs/method-notes.md "Families and roles"):
 * `unigram:the`, `alphabet:t`, `feature:space`, `feature:starts-t`, `pos:NOUN`, `source:kjv`, `topic:brown/press`,
 * `position:=5`, `position:<32`, any of them optionally prefixed `prev:` (the label is about the
 * previous token). Anything else is shown as written rather than guessed at.
 */
import type { Role } from '../protocol';

/** Families in the order the method lists them; `unexplained` (no label good enough) last. */
export const FAMILY_ORDER = ['unigram', 'alphabet', 'token-feature', 'previous-token', 'position', 'syntax', 'semantic', 'unexplained'] as const;

/** Sort key of a family: the method's order, unknown names after it, then no family. */
export function familyRank(family: string | null | undefined): number {
  if (!family) return FAMILY_ORDER.length + 1;
  const i = (FAMILY_ORDER as readonly string[]).indexOf(family);
  return i < 0 ? FAMILY_ORDER.length : i;
}

/** Compares two families for display (method order, then by name). */
export function compareFamilies(a: string | null | undefined, b: string | null | undefined): number {
  const d = familyRank(a) - familyRank(b);
  if (d) return d;
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A family's name as prose (`previous-token` → `previous token`). */
export function familyName(family: string): string {
  return family.replace(/-/g, ' ');
}

/** Whether a family explains the neuron (every family but `unexplained`). */
export const isExplained = (family: string | null | undefined): boolean => !!family && family !== 'unexplained';

/** The engine's token features (src/engine/labels.ts FEATURES) as predicates. */
const FEATURES: Record<string, string> = {
  space: 'starts with a space',
  capitalised: 'is capitalised',
  capitalized: 'is capitalised',
  'all-caps': 'is in capitals',
  numeric: 'is a number',
  year: 'is a year',
  newline: 'contains a newline',
  'punct-end': 'is sentence-end punctuation (. ! ?)',
  'punct-comma': 'is a comma, semicolon or colon',
  'punct-quote': 'is a quote or apostrophe',
  'punct-bracket': 'is a bracket',
  'punct-dash': 'is a dash',
  'punct-other': 'is other punctuation',
};

const quoted = (s: string): string => `“${s}”`;

/** What a label says about a token, as a predicate (`is “the”`, `is the letter t`); undefined: unknown kind. */
function predicate(kind: string, value: string): string | undefined {
  switch (kind) {
    case 'unigram':
      return `is ${quoted(value)}`;
    case 'alphabet':
      return `is the letter ${value}`;
    case 'feature': {
      if (FEATURES[value]) return FEATURES[value];
      if (/^starts-\p{L}$/u.test(value)) return `starts with ${value.slice('starts-'.length)}`;
      if (value.startsWith('punct-')) return `is punctuation (${value.slice('punct-'.length)})`;
      return `has feature ${value}`;
    }
    default:
      return undefined;
  }
}

/**
 * A family label as a short phrase: `unigram:the` → token is “the”, `prev:alphabet:t` → previous
 * token is the letter t, `feature:starts-t` → token starts with t, `pos:NOUN` → part of speech NOUN, `position:<32` → position < 32,
 * `source:kjv` → document source kjv. Unknown labels come back as written.
 */
export function describeLabel(label: string): string {
  let rest = label;
  let prev = false;
  if (rest.startsWith('prev:')) {
    prev = true;
    rest = rest.slice('prev:'.length);
  }
  const colon = rest.indexOf(':');
  if (colon <= 0) return label;
  const kind = rest.slice(0, colon);
  const value = rest.slice(colon + 1);
  const subject = prev ? 'previous token' : 'token';
  const pred = predicate(kind, value);
  if (pred) return `${subject} ${pred}`;
  const of = prev ? 'previous token: ' : '';
  switch (kind) {
    case 'pos':
      return `${of}part of speech ${value === '.' ? '. (punctuation)' : value}`;
    case 'dep':
      return `${of}dependency ${value}`;
    case 'morph':
      return `${of}morphology ${value}`;
    case 'source':
      return `${of}document source ${value}`;
    case 'topic':
      return `${of}document topic ${value}`;
    case 'position': {
      const m = /^(<=|>=|=|<|>)\s*(\d+)$/.exec(value);
      if (!m) return `${of}position ${value}`;
      const op = m[1] === '<=' ? '≤' : m[1] === '>=' ? '≥' : m[1]!;
      return `${of}position ${op} ${m[2]}`;
    }
    default:
      return label;
  }
}

export const ROLE_TITLES: Readonly<Record<Role, string>> = {
  prediction: 'prediction',
  suppression: 'suppression',
  partition: 'partition',
  entropy: 'entropy',
  'attention-deactivation': 'attention deactivation',
};

/** One line on what a role means (the neuron page adds the neuron's own numbers). */
export const ROLE_MEANINGS: Readonly<Record<Role, string>> = {
  prediction: 'promotes a small set of next tokens (vocab kurtosis > 10, positive skew)',
  suppression: 'suppresses a small set of next tokens (vocab kurtosis > 10, negative skew)',
  partition: 'splits the vocabulary in two (large vocab variance)',
  entropy: 'changes the confidence of the prediction through the final LayerNorm scale, not through particular tokens',
  'attention-deactivation': 'moves a later head’s attention onto the first token (BOS), switching that head off',
};
