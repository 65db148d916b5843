/**
 * Pure functions behind the editor features (hover, heat-map, neuron picker): mapping an editor
 * offset to a token, ranking neurons at a token, a neuron's values over a document and the shared
 * colour scale, and parsing `L3.N120`. No `vscode`, no onnxruntime: the extension calls these and
 * only lays the results out, and every one of them is unit-tested (test/unit/extension-*.test.ts).
 */

export interface TokenRange {
  /** UTF-16 code-unit range [start, end) in the analysed text (the tokenizer's ranges). */
  start: number;
  end: number;
}

export interface NeuronRef {
  layer: number;
  neuron: number;
}

export interface RankedNeuron extends NeuronRef {
  value: number;
}

/**
 * The token under the character at `offset` (UTF-16 code units, as `TextDocument.offsetAt`
 * gives): the token whose range holds it. Tokens are contiguous and ordered; empty ranges (BOS,
 * tokens made only of UTF-8 continuation bytes) never hold a character, so a character split across
 * byte-level tokens maps to the token with its first byte, as the tokenizer assigns it.
 * An offset at the very end of the text (cursor after the last character) maps to the last
 * non-empty token. Returns -1 when no token holds it (empty text, offset out of range).
 */
export function tokenAtOffset(tokens: readonly TokenRange[], offset: number): number {
  if (!Number.isFinite(offset) || offset < 0 || tokens.length === 0) return -1;
  let lo = 0;
  let hi = tokens.length - 1;
  // Last token with start <= offset.
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid]!.start <= offset) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Several tokens can start at `offset` when some have empty ranges: step back to the one that
  // actually covers it.
  for (let i = found; i >= 0; i--) {
    const t = tokens[i]!;
    if (t.start <= offset && offset < t.end) return i;
    if (t.end <= offset && t.end > t.start) break;
  }
  // End of text: the last token with a non-empty range ending exactly here.
  for (let i = tokens.length - 1; i >= 0; i--) {
    const t = tokens[i]!;
    if (t.end > t.start) return t.end === offset ? i : -1;
  }
  return -1;
}

/**
 * Tokens after `index` that carry only continuation bytes of the same character(s) (empty range
 * at `tokens[index].end`): the editor shows them together with the token that owns the character.
 */
export function continuationTokens(tokens: readonly TokenRange[], index: number): number[] {
  const out: number[] = [];
  const end = tokens[index]?.end;
  if (end === undefined) return out;
  for (let i = index + 1; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.start === t.end && t.start === end) out.push(i);
    else break;
  }
  return out;
}

/**
 * The `k` neurons with the largest value at token `t`, across all layers, largest first; ties go
 * to the lower layer, then the lower index (the same order as runtime.topNeurons). `layers[l]` is
 * [nTokens × dMlp] row-major. NaN never ranks.
 */
export function topNeuronsAt(layers: readonly Float32Array[], nTokens: number, t: number, k: number): RankedNeuron[] {
  const top: RankedNeuron[] = [];
  if (!(k > 0) || !Number.isInteger(t) || t < 0 || t >= nTokens) return top;
  for (let l = 0; l < layers.length; l++) {
    const layer = layers[l]!;
    const dMlp = layer.length / nTokens;
    const base = t * dMlp;
    for (let n = 0; n < dMlp; n++) {
      const v = layer[base + n]!;
      if (!(v === v)) continue;
      if (top.length === k && !(v > top[k - 1]!.value)) continue;
      if (top.length === k) top.pop();
      let i = top.length;
      while (i > 0 && top[i - 1]!.value < v) i--;
      top.splice(i, 0, { layer: l, neuron: n, value: v });
    }
  }
  return top;
}

/** One neuron's value at every token: column `neuron` of `layers[layer]` ([nTokens × dMlp]). */
export function neuronSeries(layers: readonly Float32Array[], nTokens: number, ref: NeuronRef): Float32Array {
  const layer = layers[ref.layer];
  if (!layer || nTokens <= 0) return new Float32Array(0);
  const dMlp = layer.length / nTokens;
  if (!Number.isInteger(ref.neuron) || ref.neuron < 0 || ref.neuron >= dMlp) return new Float32Array(0);
  const out = new Float32Array(nTokens);
  for (let t = 0; t < nTokens; t++) out[t] = layer[t * dMlp + ref.neuron]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Heat-map scale

export interface HeatScale {
  min: number;
  max: number;
  /** max |value| over the scaled tokens: the full-strength colour on either side. 0 when all are 0. */
  absMax: number;
  /** Tokens the scale was taken over. */
  count: number;
}

/**
 * One scale for the whole document, so a token's shade compares across the text: symmetric
 * around 0 (GELU activations are mostly small negatives with rare large positives, and both signs
 * mean something), taken over tokens `from..` (skip BOS: its activations are outliers that would
 * wash out the rest). Non-finite values are ignored.
 */
export function heatScale(values: ArrayLike<number>, from = 0): HeatScale {
  let min = Infinity;
  let max = -Infinity;
  let count = 0;
  for (let i = Math.max(0, from); i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    count++;
  }
  if (count === 0) return { min: 0, max: 0, absMax: 0, count: 0 };
  return { min, max, absMax: Math.max(Math.abs(min), Math.abs(max)), count };
}

/**
 * Signed shade level of `v` on `scale`: 0 (no colour) .. ±levels (full colour). The magnitude is
 * |v| / absMax cut into `levels` equal bins, rounded up, so any value above `deadZone` of the
 * maximum gets at least the faintest shade and only values within it stay uncoloured.
 */
export function heatLevel(v: number, scale: HeatScale, levels: number, deadZone = 0.05): number {
  if (!Number.isFinite(v) || !(scale.absMax > 0) || levels < 1) return 0;
  const r = Math.min(1, Math.abs(v) / scale.absMax);
  if (r <= deadZone) return 0;
  const level = Math.min(levels, Math.max(1, Math.ceil(r * levels)));
  return v > 0 ? level : -level;
}

/** heatLevel of every value (an Int8Array, so levels ≤ 127). Tokens before `from` get 0. */
export function heatLevels(values: ArrayLike<number>, scale: HeatScale, levels: number, from = 0, deadZone = 0.05): Int8Array {
  const out = new Int8Array(values.length);
  for (let i = Math.max(0, from); i < values.length; i++) out[i] = heatLevel(values[i]!, scale, levels, deadZone);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Neuron names

/**
 * Parses what a person types for a neuron: `L3.N120` (TransformerLens), also `l3n120`, `L3 N120`,
 * `3.120`, `3:120`, `3/120`. With `dims`, out-of-range layers or neurons are refused.
 */
export function parseNeuronRef(text: string, dims?: { nLayers: number; dMlp: number }): NeuronRef | undefined {
  const m = /^\s*(?:L\s*(\d+)\s*[.:/,\s]?\s*N\s*(\d+)|(\d+)\s*[.:/,]\s*(\d+))\s*$/i.exec(text);
  if (!m) return undefined;
  const layer = Number(m[1] ?? m[3]);
  const neuron = Number(m[2] ?? m[4]);
  if (!Number.isSafeInteger(layer) || !Number.isSafeInteger(neuron)) return undefined;
  if (dims && (layer >= dims.nLayers || neuron >= dims.dMlp)) return undefined;
  return { layer, neuron };
}

/** `L{layer}.N{neuron}` */
export const neuronLabel = (r: NeuronRef): string => `L${r.layer}.N${r.neuron}`;
