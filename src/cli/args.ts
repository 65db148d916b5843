/** Command-line parsing: turns argv into a typed command or a UsageError (exit code 2). */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const HELP = `universal-neurons: MLP neuron activations of GPT-2 checkpoints (onnxruntime, CPU)

Usage:
  universal-neurons activations --model DIR (--text T | --file F) [--top K] [--json OUT] [--threads N]
  universal-neurons demo [--top K] [--threads N] [--text T]
  universal-neurons --help

Commands:
  activations   Run one checkpoint on a text. Prints one line per token (BOS first): its text
                (JSON-escaped), id, character range start-end, and the top K neurons by
                post-activation as L{layer}.N{neuron}=value.
  demo          Run 'activations' on each shipped model models/tiny-gpt2-{a..e} over a short
                built-in sentence.

Options:
  --model DIR   Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json) or a
                hub cache folder models--org--name.
  --text T      The text to analyse.
  --file F      Read the text from a UTF-8 file.
  --top K       Neurons listed per token (default 5).
  --json OUT    Also write {"model", "tokens": [{id,text,start,end}], "hook_pre", "hook_post"}
                to OUT, activations indexed [layer][token][neuron], BOS as token 0.
  --threads N   onnxruntime intra-op threads (default 0: one per core).
  -h, --help    Show this help.

Exit codes: 0 ok, 1 error (bad model, unreadable file, ...), 2 usage error, 130 interrupted.
`;

export interface ActivationsCommand {
  kind: 'activations';
  model: string;
  text?: string;
  file?: string;
  top: number;
  json?: string;
  threads: number;
}

export interface DemoCommand {
  kind: 'demo';
  top: number;
  threads: number;
  text?: string;
}

export type Command = { kind: 'help' } | ActivationsCommand | DemoCommand;

function integer(name: string, raw: string | undefined, def: number, min: number): number {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`--${name} needs an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

export function parseCli(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        model: { type: 'string' },
        text: { type: 'string' },
        file: { type: 'string' },
        top: { type: 'string' },
        json: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    // node's messages are already specific ("Unknown option '--x'", "argument missing").
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const { values: v, positionals } = parsed;
  if (v.help || positionals[0] === 'help') return { kind: 'help' };
  const [sub, ...extra] = positionals;
  if (!sub) throw new UsageError('missing command (activations or demo)');
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const top = integer('top', v.top, 5, 1);
  const threads = integer('threads', v.threads, 0, 0);

  if (sub === 'activations') {
    if (!v.model) throw new UsageError('activations needs --model DIR');
    if ((v.text === undefined) === (v.file === undefined)) {
      throw new UsageError('activations needs exactly one of --text T or --file F');
    }
    return { kind: 'activations', model: v.model, text: v.text, file: v.file, top, json: v.json, threads };
  }
  if (sub === 'demo') {
    for (const flag of ['model', 'file', 'json'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`demo does not take --${flag}`);
    }
    return { kind: 'demo', top, threads, text: v.text };
  }
  throw new UsageError(`unknown command ${JSON.stringify(sub)} (expected activations or demo)`);
}
