/**
 * Binary token labels for the family analysis (docs/method-notes.md "Families and roles"): what a token is
 * (its normalised string, the single letter it is, the letter it starts with, surface features),
 * its part of speech, and its document.
 *
 * As the paper's code has them: an alphabet label `alphabet:c` is "the normalised token *is* the
 * letter c" (the letter's unigram label); "starts with c" is a token feature (`feature:starts-c`,
 * the paper's `starts_w_c`).
 *
 * Every current-token label is a function of the token id alone. So ids are grouped into
 * *classes* — one per distinct (unigram word, first letter, feature bits) — and the family pass
 * sums activations per class once per token; each label's sums are then a union of classes.
 * That is one row update per token for all ~hundreds of token labels, instead of one per label.
 */
import { EngineError } from './errors';

/** Surface features of a token, each a label `feature:<name>`. */
export const FEATURES = [
  'space', // starts with a space
  'capitalised', // first letter upper case
  'all-caps', // at least two letters, all upper case
  'numeric', // digits only (after the leading space)
  'year', // 1500–2099
  'newline', // contains a newline
  'punct-end', // . ! ?
  'punct-comma', // , ; :
  'punct-quote', // quotes and apostrophes
  'punct-bracket', // ( ) [ ] { } < >
  'punct-dash', // - – —
  'punct-other', // any other punctuation or symbol string
] as const;
export type Feature = (typeof FEATURES)[number];

/** The universal part-of-speech tagset (Petrov, Das & McDonald 2012); Brown tags map onto it. */
export const POS_TAGS = ['NOUN', 'VERB', 'ADJ', 'ADV', 'PRON', 'DET', 'ADP', 'NUM', 'CONJ', 'PRT', '.', 'X'] as const;
export type PosTag = (typeof POS_TAGS)[number];

const BROWN_TO_UNIVERSAL: Record<string, PosTag> = {};
const fill = (tag: PosTag, brown: string): void => {
  for (const b of brown.split(' ')) BROWN_TO_UNIVERSAL[b] = tag;
};
fill('NOUN', 'nn nns nn$ nns$ np nps np$ nps$ nr nrs nr$');
fill('VERB', 'vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md');
fill('ADJ', 'jj jjr jjs jjt jj$');
fill('ADV', 'rb rbr rbt rn ql qlp wrb rb$');
fill('PRON', 'pn pn$ pp$ pp$$ ppl ppls ppo pps ppss wp$ wpo wps ex');
fill('DET', 'at dt dti dts dtx dt$ abn abx ap ap$ wdt');
fill('ADP', 'in');
fill('NUM', 'cd od cd$');
fill('CONJ', 'cc cs');
fill('PRT', 'to rp *');

/**
 * A Brown Corpus tag → universal tag index (into POS_TAGS). Headline/title/cited suffixes
 * (-hl, -tl, -nc) are dropped; contractions (`ppss+md`) take their first part; foreign words
 * (`fw-…`) and interjections are X; punctuation tags are ".".
 */
export function brownToUniversal(tag: string): number {
  let t = tag.toLowerCase();
  if (t.startsWith('fw-')) return POS_TAGS.indexOf('X');
  t = t.replace(/-(hl|tl|nc)/g, '');
  t = t.split('+')[0]!;
  const u = BROWN_TO_UNIVERSAL[t];
  if (u) return POS_TAGS.indexOf(u);
  if (/^[^a-z0-9]+$/.test(t)) return POS_TAGS.indexOf('.');
  return POS_TAGS.indexOf('X');
}

/** The unigram label's normal form: lowercased, surrounding whitespace stripped. */
export const normaliseToken = (s: string): string => s.trim().toLowerCase();

function featureBits(s: string): number {
  let bits = 0;
  const set = (f: Feature): void => {
    bits |= 1 << FEATURES.indexOf(f);
  };
  const t = s.trim();
  if (s.startsWith(' ')) set('space');
  if (s.includes('\n')) set('newline');
  const letters = t.replace(/[^\p{L}]/gu, '');
  if (letters && /^\p{Lu}/u.test(t)) set('capitalised');
  if (letters.length >= 2 && letters === letters.toUpperCase() && letters !== letters.toLowerCase()) set('all-caps');
  if (/^\p{N}+$/u.test(t)) set('numeric');
  if (/^(1[5-9]|20)\d\d$/.test(t)) set('year');
  if (t && /^[\p{P}\p{S}]+$/u.test(t)) {
    const c = t[0]!;
    if ('.!?'.includes(c)) set('punct-end');
    else if (',;:'.includes(c)) set('punct-comma');
    else if (`"'\`“”‘’«»`.includes(c)) set('punct-quote');
    else if ('()[]{}<>'.includes(c)) set('punct-bracket');
    else if ('-–—'.includes(c)) set('punct-dash');
    else set('punct-other');
  }
  return bits;
}

export interface UnigramOptions {
  /** Occurrences per 10M tokens a word needs (docs/method-notes.md: 3000), scaled to the corpus. */
  perTenMillion?: number;
  /** Floor on the scaled count, so tiny corpora do not admit words seen a handful of times. */
  minCount?: number;
  /** A word must be the normal form of more than this many vocabulary ids (docs/method-notes.md: 3). */
  minIds?: number;
}

export interface TokenClasses {
  /** Unigram words in label order. */
  words: string[];
  /** [vocab] class of each token id; −1 for ids never seen in the corpus. */
  classOf: Int32Array;
  nClasses: number;
  /**
   * Per class: word index or −1; the letter 0..25 the normalised token is (or −1); the letter it
   * starts with (or −1); feature bits.
   */
  classWord: Int32Array;
  classLetter: Int32Array;
  classInitial: Int32Array;
  classBits: Int32Array;
  /** The unigram frequency threshold that was applied (occurrences in this corpus). */
  minCount: number;
}

/**
 * Builds the token classes from a vocabulary (`strings[id]` = the decoded token) and the
 * corpus's kept-token counts per id. Classes exist only for ids the corpus holds, so memory
 * follows what was seen. Deterministic: classes are numbered in id order.
 */
export function tokenClasses(strings: readonly string[], counts: Uint32Array, keptTokens: number, opts: UnigramOptions = {}): TokenClasses {
  const per10m = opts.perTenMillion ?? 3000;
  const minIds = opts.minIds ?? 3;
  const minCount = Math.max(opts.minCount ?? 10, Math.ceil((per10m * keptTokens) / 1e7));
  if (counts.length < strings.length) throw new EngineError(`token counts cover ${counts.length} ids, the vocabulary has ${strings.length}`);
  const idsOf = new Map<string, number>();
  const countOf = new Map<string, number>();
  const norms = strings.map((s) => normaliseToken(s));
  norms.forEach((w, id) => {
    if (!w) return;
    idsOf.set(w, (idsOf.get(w) ?? 0) + 1);
    countOf.set(w, (countOf.get(w) ?? 0) + counts[id]!);
  });
  const words = [...countOf.entries()]
    .filter(([w, c]) => c >= minCount && idsOf.get(w)! > minIds)
    .map(([w]) => w)
    .sort();
  const wordIndex = new Map(words.map((w, i) => [w, i]));

  const classOf = new Int32Array(strings.length).fill(-1);
  const keys = new Map<string, number>();
  const cw: number[] = [];
  const cl: number[] = [];
  const ci: number[] = [];
  const cb: number[] = [];
  for (let id = 0; id < strings.length; id++) {
    if (counts[id] === 0) continue;
    const w = norms[id]!;
    const word = wordIndex.get(w) ?? -1;
    const c = w.charCodeAt(0) - 97;
    const initial = c >= 0 && c < 26 ? c : -1;
    const letter = w.length === 1 ? initial : -1;
    const bits = featureBits(strings[id]!);
    const key = `${word}|${letter}|${initial}|${bits}`;
    let k = keys.get(key);
    if (k === undefined) {
      k = cw.length;
      keys.set(key, k);
      cw.push(word);
      cl.push(letter);
      ci.push(initial);
      cb.push(bits);
    }
    classOf[id] = k;
  }
  return {
    words,
    classOf,
    nClasses: cw.length,
    classWord: Int32Array.from(cw),
    classLetter: Int32Array.from(cl),
    classInitial: Int32Array.from(ci),
    classBits: Int32Array.from(cb),
    minCount,
  };
}

/** A token label as a set of classes: `unigram:the`, `alphabet:t`, `feature:space`, `feature:starts-t`. */
export interface ClassLabel {
  name: string;
  kind: 'unigram' | 'alphabet' | 'feature';
  classes: number[];
}

/** Every token label the classes support (labels with no class in the corpus are left out). */
export function classLabels(tc: TokenClasses): ClassLabel[] {
  const out: ClassLabel[] = [];
  const byWord: number[][] = tc.words.map(() => []);
  const byLetter: number[][] = Array.from({ length: 26 }, () => []);
  const byInitial: number[][] = Array.from({ length: 26 }, () => []);
  const byFeature: number[][] = FEATURES.map(() => []);
  for (let c = 0; c < tc.nClasses; c++) {
    if (tc.classWord[c]! >= 0) byWord[tc.classWord[c]!]!.push(c);
    if (tc.classLetter[c]! >= 0) byLetter[tc.classLetter[c]!]!.push(c);
    if (tc.classInitial[c]! >= 0) byInitial[tc.classInitial[c]!]!.push(c);
    FEATURES.forEach((_, f) => {
      if (tc.classBits[c]! & (1 << f)) byFeature[f]!.push(c);
    });
  }
  tc.words.forEach((w, i) => byWord[i]!.length && out.push({ name: `unigram:${w}`, kind: 'unigram', classes: byWord[i]! }));
  byLetter.forEach((cs, i) => cs.length && out.push({ name: `alphabet:${String.fromCharCode(97 + i)}`, kind: 'alphabet', classes: cs }));
  byFeature.forEach((cs, i) => cs.length && out.push({ name: `feature:${FEATURES[i]}`, kind: 'feature', classes: cs }));
  byInitial.forEach((cs, i) => cs.length && out.push({ name: `feature:starts-${String.fromCharCode(97 + i)}`, kind: 'feature', classes: cs }));
  return out;
}
