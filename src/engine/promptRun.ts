/**
 * A prompt's activations for the editor: tokenised in time slices (a 1 MB document takes about a
 * second to tokenise; in slices the extension host keeps answering meanwhile), refused past a token
 * limit before any model work, and run for `hook_post` only (what hover and heat-map show; half
 * the memory of both hooks). Same long-text rule as `Model.activations` (runtime `windows`).
 */
import { CancelledError, EngineError, throwIfCancelled, type CancellationSignal } from './errors';
import type { Model } from './runtime';
import type { Encoding, Tokenizer } from './tokenizer';

export interface PromptToken {
  id: number;
  /** UTF-16 range in the analysed text; BOS is [0, 0]. */
  start: number;
  end: number;
}

export interface PromptActivations {
  tokens: PromptToken[];
  /** Per layer, [nTokens × dMlp] hook_post. */
  post: Float32Array[];
  nLayers: number;
  dMlp: number;
  /** Wall times, ms. */
  tokenizeMs: number;
  runMs: number;
}

/**
 * A place where the GPT-2 pre-tokenizer always starts a new piece, whatever surrounds it: a
 * single space between a letter or digit and a letter (`foo| bar`). The piece before ends at the
 * letter/digit (no pattern crosses into a space that a letter follows), and ` ?\p{L}+` starts
 * at the space. Encoding the two sides apart therefore gives the same tokens as encoding the
 * whole text.
 */
const SAFE_BEFORE = /[\p{L}\p{N}]/u;
const SAFE_AFTER = /\p{L}/u;

export function safeSplitPoint(text: string, from: number, to: number): number {
  for (let i = Math.min(to, text.length - 1); i > from; i--) {
    if (text.charCodeAt(i) === 32 && SAFE_BEFORE.test(text[i - 1]!) && SAFE_AFTER.test(text[i + 1] ?? '')) return i;
  }
  return -1;
}

export interface EncodeOptions {
  /** Characters per slice (a slice ends at the last safe split point before this). */
  sliceChars?: number;
  /** Stop (EngineError) as soon as more than this many tokens (BOS included) are produced. */
  maxTokens?: number;
  signal?: CancellationSignal;
  /** Called between slices: lets the event loop run (default: a macrotask). */
  yieldFn?: () => Promise<void>;
}

const macrotask = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * BOS + the text's tokens with UTF-16 ranges, exactly `encodeWithBos(tok, text)`, computed in
 * slices split at safe points so the event loop runs between them.
 */
export async function encodeSliced(tok: Pick<Tokenizer, 'encode' | 'bosId'>, text: string, opts: EncodeOptions = {}): Promise<Encoding> {
  const slice = Math.max(64, opts.sliceChars ?? 16_384);
  const max = opts.maxTokens ?? Infinity;
  const out: Encoding = { ids: [tok.bosId], starts: [0], ends: [0] };
  let pos = 0;
  while (pos < text.length) {
    throwIfCancelled(opts.signal);
    let end = text.length;
    if (text.length - pos > slice) {
      const cut = safeSplitPoint(text, pos, pos + slice);
      // No safe point in this slice (a long run of CJK, digits or symbols): look further on.
      end = cut > pos ? cut : (() => {
        const far = safeSplitPoint(text, pos + slice, Math.min(text.length - 1, pos + 8 * slice));
        return far > pos ? far : text.length;
      })();
    }
    const e = tok.encode(text.slice(pos, end));
    for (let i = 0; i < e.ids.length; i++) {
      out.ids.push(e.ids[i]!);
      out.starts.push(e.starts[i]! + pos);
      out.ends.push(e.ends[i]! + pos);
    }
    if (out.ids.length > max) {
      throw new EngineError(
        `the text has more than ${max - 1} tokens (${out.ids.length - 1} in its first ${end} characters); over the prompt token limit`,
      );
    }
    pos = end;
    if (pos < text.length) await (opts.yieldFn ?? macrotask)();
  }
  return out;
}

export interface PromptOptions extends EncodeOptions {
  signal?: CancellationSignal;
}

/** Tokenises `text` (sliced), runs the model on it (windowed) and keeps hook_post per layer. */
export async function promptActivations(model: Model, text: string, opts: PromptOptions = {}): Promise<PromptActivations> {
  const { windows } = await import('./runtime');
  const t0 = performance.now();
  const enc = await encodeSliced(model.tokenizer, text, opts);
  const t1 = performance.now();
  throwIfCancelled(opts.signal);
  const T = enc.ids.length;
  const dMlp = model.dMlp;
  const w = windows(enc.ids, model.config.nPositions, model.tokenizer.bosId);
  const run = await model.runTokens(w.rows, { hooks: ['post'], signal: opts.signal });
  if (opts.signal?.cancelled) throw new CancelledError();
  let post = run.hookPost;
  if (w.rows.length > 1) {
    // Drop the BOS inserted at the start of every window after the first.
    post = run.hookPost.map((src) => {
      const dst = new Float32Array(T * dMlp);
      w.rows.forEach((row, r) => {
        const from = run.offsets[r]! + w.skip[r]!;
        const n = row.length - w.skip[r]!;
        dst.set(src.subarray(from * dMlp, (from + n) * dMlp), w.firstToken[r]! * dMlp);
      });
      return dst;
    });
  }
  const tokens = enc.ids.map((id, i) => ({ id, start: enc.starts[i]!, end: enc.ends[i]! }));
  return { tokens, post, nLayers: model.nLayers, dMlp, tokenizeMs: t1 - t0, runMs: performance.now() - t1 };
}
