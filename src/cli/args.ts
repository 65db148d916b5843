/** Command-line parsing: turns argv into a typed command or a UsageError (exit code 2). */
import { parseArgs } from 'node:util';
import type { NeuronRef } from '../engine/arch/common';
import { parseMode, parseNeuronList, parseTokenRange, type InterventionMode } from '../engine/interventionSpec';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from '../engine/provider';
import { isUsableThreshold } from '../engine/run/defaults';
import { ROLE_SETTING_KEYS, ROLE_SETTINGS, roleSettingProblem, type RoleSettings } from '../engine/run/roleSettings';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const HELP = `universal-neurons: universal neurons across GPT-2 seeds (Gurnee et al. 2024), onnxruntime on CPU

Usage:
  universal-neurons analyze --models DIR... --corpus PATH... --tokens N [--out DIR] [options]
  universal-neurons analyze --resume RUN [--top K]
  universal-neurons summary RUN [--top K]
  universal-neurons table FILE.csv [--threshold T] [--top K] [--d-mlp N] [--run RUN]
  universal-neurons activations --model DIR (--text T | --file F) [--top K] [--json OUT] [--threads N]
  universal-neurons demo [--tokens N] [--top K] [--out DIR] [--threads N]
  universal-neurons intervene --model DIR (--text T | --file F) --neuron L3.N120[,...]
                    --mode zero|mean|fix=V|scale=K [--hook pre|post] [--tokens A:B] [--top K]
                    [--run RUN] [--json OUT] [--threads N]
  universal-neurons development --final DIR[@REV] --checkpoints DIR@REV,... --corpus PATH... --tokens N
                    [--out DIR] [--threads N]
  universal-neurons development RUN [--neuron L1.N5]
  universal-neurons merge PART... --out RUN [--partial] [--threads N]
  universal-neurons status PARTS-DIR
  universal-neurons slurm --models DIR... --corpus PATH... --tokens N --block-size A[,B] --dir DIR
                    [--partition P] [--time T] [--mem M] [--cpus C] [--cli CMD] [--image I]
                    [--pvc NAME] [analyze options]
  universal-neurons COMMAND --help
  universal-neurons --help | --version

Commands:
  analyze       Correlate every neuron of the reference model with every neuron of the other
                models over the corpus, against a random-rotation baseline; write the run folder
                (manifest.json, neurons.arrow, universal.csv, partners.arrow, examples) and print
                its summary. Progress (tokens/s, ETA) goes to stderr. Checkpoints let an
                interrupted run continue with --resume; the results are identical.
  summary       Per-layer table of a finished run (neurons, universal count and %, median
                excess correlation, median rotated baseline), counts at thresholds 0.3/0.4/0.5,
                and the top universal neurons.
  table         The same summary for any CSV in the paper's universal.csv schema (the paper's
                own files included: all neurons, or only the universal ones).
  activations   Run one checkpoint on a text. Prints one line per token (BOS first): its text
                (JSON-escaped), id, character range start-end, and the top K neurons by
                post-activation as L{layer}.N{neuron}=value.
  intervene     Run one checkpoint on a text twice, clean and with the neurons edited at their
                hook_post (or hook_pre), and print per token the loss of the actual next token,
                the entropy, their change, and the most probable next token before and after.
  development   Training checkpoints of one seed: for each neuron of the final checkpoint, its
                best partner and correlation in each earlier checkpoint (hub cache revisions
                stepN, as Pythia's), i.e. when the neuron formed. With --final it runs the
                analysis (final as reference, no families) and prints per step the mean and
                median best correlation and the share above 0.5 and 0.9; with RUN it prints
                that of a finished run, and with --neuron one neuron's partner per step.
  merge         Check that the parts of a split run (analyze --block) belong to one run
                (models, corpus, settings, version) and that every block is there once, and
                finish the run: the same files as a single-machine run. A folder holding the
                parts as subfolders may stand for them. --partial joins some parts into one part,
                merged later with the rest (a tree reduction). README "Runs on a cluster".
  status        Each part of a split run: done, running, interrupted, failed (with its error
                and the command that resumes it) or missing, with its tokens.
  slurm         Write DIR/analyze.sbatch (a Slurm job array, one task per part), DIR/merge.sbatch
                (runs once every task succeeded: afterok), DIR/submit.sh and Kubernetes Indexed
                Jobs (DIR/k8s-parts.yaml, DIR/k8s-merge.yaml), and print how to submit them.
                Parts go to DIR/parts, the run to DIR/run.
  demo          Analyse the shipped family models/tiny-gpt2-{a..e} on the shipped held-out
                corpus (a small token budget) and print the summary.

Options of analyze:
  --models DIR...      Two or more model folders (GPT-2 or GPT-NeoX) of one architecture and
                       tokenizer; ENTRY@REV names a revision of a hub cache entry (refs/REV or a
                       snapshot's commit), recorded in the manifest.
  --corpus PATH...     .txt/.md/.jsonl ("text" per line) files, .tokens.bin (uint16 ids), or folders.
  --tokens N           Token budget: the first N tokens as whole rows of the context length
                       (at least one row; 1e6, 1_000_000, 1M and 64k are accepted).
  --out DIR            Run folder (default ./.universal-neurons/runs/<id>).
  --reference NAME     Reference model (folder name or path; default the first).
  --threshold T        Universal if excess correlation > T (default 0.5).
  --seed S             Seed of the baseline's random rotations: an integer in [0, 2^32) (default 0).
  --batch-rows B       Corpus rows per batch (default 8).
  --checkpoint-every K Checkpoint every K batches (default 25).
  --memory-gb G        Peak memory to plan for, GB (10^9 bytes; default 8). Models whose cross moments do not fit
                       run in blocks of reference columns, one pass over the corpus per block and
                       other model (slower; same results); the batch rows shrink if needed.
  --mode exact|fast    exact (default): every pair's moments, fp32 GEMMs accumulated in float64.
                       fast: screen partners on a sample spread over the budget (every k-th batch,
                       ~65k tokens, read first), then exact sums over all tokens for each neuron's
                       candidates only. Matched exact mode on the shipped models (BENCHMARKS.md)
                       from 40,960 tokens; below that it runs exact (the manifest says so).
  --no-families        Skip neuron families and roles (on by default: VR of token labels, roles
                       from the weights, an entropy intervention).
  --family-vr K=V,...  Family thresholds: unigram=0.5 alphabet=0.35 feature=0.5 syntax=0.5
                       semantic=0.5 position-mi=0.05 position-kurtosis=2 (method.md defaults;
                       feature, syntax and semantic are ours). The five VR thresholds are
                       variance reductions in [0, 1]; position-mi (nats) and position-kurtosis
                       are >= 0.
  --roles K=V,...      Role settings: entropy-layers=0.2 entropy-l2=3 entropy-vocab-kurt=10
                       entropy-kurt=10 (the paper's entropy-neuron query, layers scaled to depth:
                       the last max(1, round(0.2 x layers))); entropy-neurons=1 intervention-rows=256
                       (the entropy intervention: top candidates measured, corpus rows scored);
                       attention-z=5 (attention-deactivation role cut-off) attention-pairs=20
                       (pairs listed by |h|).
  --resume RUN         Continue an interrupted run (folder or id); settings come from its manifest.
  --block J            Compute part J of a split run only (a block of reference neurons against one
                       other model, or the statistics), for another machine to merge (merge PART...
                       --out RUN; README "Runs on a cluster"). Needs --block-size; exact mode only.
  --block-size A[,B]   Reference neurons per block (the first block A, the rest B; default B = A),
                       fixed so that every machine cuts the run the same way.

Options of intervene:
  --neuron L3.N120[,...]  Neurons to edit, L{layer}.N{neuron}, comma-separated.
  --mode MODE     zero: set them to 0; mean: to their mean over this prompt's tokens but BOS
                  (with --run: the run's corpus mean, which exists for hook_pre only); fix=V: to
                  V; scale=K: multiply them by K (V and K finite numbers).
  --run RUN       With --mode mean: take the means from this run's statistics (folder or id).
  --hook pre|post Which activation to edit (default post; an edited hook_pre feeds the GELU).
  --tokens A:B    Edit only tokens A..B-1 (BOS = 0; 5: and :8 leave a side open; default all).
  --top K         Next tokens listed per side in --json (default 5; the table shows the first).
  --json OUT      Also write {"model", "neurons", "mode", "hook", "range", "tokens": [{id,text,
                  start,end}], "clean": {"loss", "entropy", "ln_scale", "top"}, "intervened":
                  {...}, "delta": {...}, "top_change"}. BOS is token 0; loss[i] = -log p(token
                  i+1 | tokens 0..i) for i < n-1 (nats); entropy[i] is that next-token
                  distribution's entropy (n entries: the last token's too). Prompts longer than
                  the context run in windows, as for activations.

Options of development:
  --final DIR[@REV]    The final checkpoint: a hub cache entry models--org--name (its main) or a
                       revision of it, ENTRY@step143000.
  --checkpoints LIST   Earlier revisions of the same entry, comma-separated or repeated:
                       ENTRY@step1000,ENTRY@step8000 (each named stepN).
  --corpus, --tokens, --out, --threads   As for analyze.
  --neuron L1.N5       With RUN: that neuron's best partner and correlation at each step.

Options of merge:
  --out RUN            The merged run's folder (with --partial: the joined part's).
  --partial            Join some parts into one part instead of finishing the run.

Options of slurm:
  --dir DIR            Where the scripts, logs, parts and run go.
  --partition P        Slurm partition (#SBATCH --partition).
  --time T             Time limit per task, as Slurm writes it (e.g. 2:00:00).
  --mem M              Memory per task, as Slurm writes it: a whole number with K, M, G or T (e.g. 16G).
  --cpus C             CPUs per task (default 2), also each part's --threads.
  --cli CMD            How the jobs call this tool (default: this installation's path).
  --image I, --pvc NAME  The Kubernetes Jobs' container image and the volume claim holding DIR.
  Every other option is analyze's (checked here), passed to each part.

Options of table:
  --threshold T        Universal if excess correlation > T (default 0.5).
  --d-mlp N            Neurons per layer, for percentages of a table that holds only some neurons.
  --run RUN            A finished run (folder or id) whose medians of the neuron statistics are
                       shown beside the table's (properties of universal neurons).

Options of demo:
  --tokens N           Token budget (default the demo's, 40,960; counts as for analyze).
  --out DIR            Run folder (default as for analyze).

Common options:
  --model DIR   Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json) or a
                hub cache folder models--org--name.
  --text T      The text to analyse.
  --file F      Read the text from a UTF-8 file.
  --top K       Neurons listed (default 5 for activations, 15 for summaries).
  --json OUT    Also write {"model", "tokens": [{id,text,start,end}], "hook_pre", "hook_post"}
                to OUT, activations indexed [layer][token][neuron], BOS as token 0.
  --threads N   onnxruntime intra-op threads (default 0: every core this process may use).
  --execution-provider cpu|cuda
                onnxruntime's execution provider (default cpu). cuda needs onnxruntime-node's
                CUDA binaries (ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node),
                CUDA 12 and cuDNN 9; without them the command stops at once and says so.
                Untested on GPUs here. Recorded in the run's manifest.
  -h, --help    Show this help (after a command: that command's help).
  --version     Print the version.

Exit codes: 0 ok, 1 error (bad model, unreadable file, ...), 2 usage error, 130 interrupted.
`;

export const COMMANDS = ['analyze', 'summary', 'table', 'activations', 'intervene', 'demo', 'development', 'merge', 'status', 'slurm'] as const;

/**
 * One command's help (`universal-neurons CMD --help`): its usage lines and description from HELP,
 * then the options it takes (analyze's own block, and the common options it accepts).
 */
export function commandHelp(cmd: string): string {
  const lines = HELP.split('\n');
  // A usage line and its continuation lines (indented further, as intervene's).
  const usage: string[] = [];
  for (const [i, l] of lines.entries()) {
    if (l.startsWith(`  universal-neurons ${cmd} `) || l === `  universal-neurons ${cmd}`) {
      usage.push(l);
      for (let j = i + 1; j < lines.length && /^ {5,}\S/.test(lines[j]!) && !lines[j]!.trimStart().startsWith('universal-neurons'); j++) usage.push(lines[j]!);
    }
  }
  const start = lines.findIndex((l) => new RegExp(`^  ${cmd}\\s{2,}`).test(l));
  const desc: string[] = [];
  for (let i = start; i >= 0 && i < lines.length; i++) {
    if (i > start && (/^  \S/.test(lines[i]!) || lines[i] === '')) break;
    desc.push(lines[i]!);
  }
  const block = (title: string): string[] => {
    const b = lines.findIndex((l) => l === title);
    if (b < 0) return [];
    const out: string[] = [];
    for (let i = b + 1; i < lines.length && lines[i] !== ''; i++) out.push(lines[i]!);
    return out;
  };
  // Common options this command takes: an option's entry is its first line and the indented lines under it.
  const own = ALLOWED[cmd] ?? [];
  const common: string[] = [];
  let keep = false;
  for (const l of block('Common options:')) {
    const m = /^  (?:-\w, )?--([\w-]+)/.exec(l);
    if (m) keep = own.includes(m[1]!) || m[1] === 'help';
    if (keep) common.push(l);
  }
  const options = block(`Options of ${cmd}:`);
  return [
    'Usage:',
    ...usage,
    '',
    ...desc,
    ...(options.length ? ['', 'Options:', ...options] : []),
    ...(common.length ? ['', options.length ? 'Also:' : 'Options:', ...common] : []),
    '',
    'Exit codes: 0 ok, 1 error, 2 usage error, 130 interrupted.',
    '',
  ].join('\n');
}

/** The flags each command takes. */
const ALLOWED: Record<string, readonly string[]> = {
  activations: ['model', 'text', 'file', 'top', 'json', 'threads', 'execution-provider'],
  demo: ['tokens', 'threads', 'top', 'out', 'execution-provider'],
  analyze: ['models', 'corpus', 'tokens', 'out', 'reference', 'threshold', 'seed', 'batch-rows', 'checkpoint-every', 'memory-gb', 'mode', 'no-families', 'family-vr', 'roles', 'resume', 'threads', 'top', 'block', 'block-size', 'execution-provider'],
  summary: ['top'],
  development: ['final', 'checkpoints', 'corpus', 'tokens', 'out', 'threads', 'neuron', 'execution-provider'],
  table: ['top', 'threshold', 'd-mlp', 'run'],
  // Split runs: their parsers are in parts.ts and slurm.ts (main routes them there); these lists
  // give their help its common options.
  merge: ['out', 'threads', 'partial'],
  status: [],
  slurm: [],
  intervene: ['model', 'text', 'file', 'neuron', 'mode', 'hook', 'tokens', 'top', 'run', 'json', 'threads', 'execution-provider'],
};

/**
 * A count as people write it: 1000000, 1_000_000, 1,000,000, 1e6, 1.5e5, 1M, 64k, 2G. Returns
 * undefined when `raw` is none of these or not a whole number.
 */
export function parseCount(raw: string): number | undefined {
  const s = raw.trim().replace(/[_,]/g, '');
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([kKmMgG]?)$/.exec(s);
  if (!m) return undefined;
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const x = Number(m[1]) * scale;
  // 1.5e5 is whole; 1.2345k is not (and float rounding of a whole product stays within 1e-9 of it).
  const r = Math.round(x);
  return Number.isSafeInteger(r) && Math.abs(x - r) < 1e-9 ? r : undefined;
}

export interface ActivationsCommand {
  kind: 'activations';
  model: string;
  text?: string;
  file?: string;
  top: number;
  json?: string;
  threads: number;
  executionProvider?: ExecutionProvider;
}

export interface DemoCommand {
  kind: 'demo';
  threads: number;
  executionProvider?: ExecutionProvider;
  /** Top universal neurons listed. */
  top: number;
  /** Run folder (default as for analyze). */
  out?: string;
  /** Token budget (default: what fits the demo's time). */
  tokens?: number;
}

export interface AnalyzeCommand {
  kind: 'analyze';
  models: string[];
  corpus: string[];
  tokens: number;
  out?: string;
  reference?: string;
  threshold?: number;
  seed?: number;
  batchRows?: number;
  checkpointEvery?: number;
  memoryGb?: number;
  mode?: 'exact' | 'fast';
  /** false: no families and roles. */
  families?: boolean;
  familyThresholds?: Partial<Record<FamilyThresholdKey, number>>;
  /** --roles: the role settings given (run/roleSettings.ts). */
  roles?: RoleSettings;
  threads: number;
  executionProvider?: ExecutionProvider;
  resume?: string;
  /** Part J of a split run (parts.ts), with the blocks [first, rest] every part uses. */
  block?: number;
  blockSize?: readonly [number, number];
  /** Top universal neurons listed in the summary. */
  top: number;
}

export interface SummaryCommand {
  kind: 'summary';
  run: string;
  top: number;
}

export interface TableCommand {
  kind: 'table';
  file: string;
  top: number;
  threshold?: number;
  dMlp?: number;
  /** A run to compare the table's statistics with. */
  run?: string;
}

export interface InterveneCommand {
  kind: 'intervene';
  model: string;
  text?: string;
  file?: string;
  neurons: NeuronRef[];
  mode: InterventionMode;
  hook: 'pre' | 'post';
  tokens?: { start?: number; end?: number };
  top: number;
  /** Mode mean: the run whose statistics give the means (else the prompt's own). */
  run?: string;
  json?: string;
  threads: number;
  executionProvider?: ExecutionProvider;
}

/** `development`: run one (final + checkpoints) or read one (run). */
export type DevelopmentCommand =
  | { kind: 'development'; run: string; neuron?: NeuronRef }
  | { kind: 'development'; final: string; checkpoints: string[]; corpus: string[]; tokens: number; out?: string; threads: number; executionProvider?: ExecutionProvider };

/** `merge PART... --out RUN`: finish a split run (or, --partial, join parts into one). */
export interface MergeCommand {
  kind: 'merge';
  parts: string[];
  out: string;
  partial: boolean;
  threads: number;
}

export type Command =
  | { kind: 'help'; command?: string }
  | MergeCommand
  | { kind: 'status'; dir: string }
  | { kind: 'version' }
  | ActivationsCommand
  | DemoCommand
  | AnalyzeCommand
  | SummaryCommand
  | TableCommand
  | InterveneCommand
  | DevelopmentCommand;

/** Flags that take several values: `--models a b c` is `--models a --models b --models c`. */
const LIST_FLAGS = new Set(['--models', '--corpus', '--checkpoints']);

/** Flags that take a value (a value that looks negative, `--seed -1`, is joined as `--seed=-1`). */
const VALUE_FLAGS = new Set(['--model', '--text', '--file', '--top', '--json', '--threads', '--tokens', '--out', '--reference', '--threshold', '--seed', '--batch-rows', '--checkpoint-every', '--memory-gb', '--mode', '--family-vr', '--roles', '--resume', '--block', '--block-size', '--d-mlp', '--neuron', '--hook', '--run', '--final', '--execution-provider']);

function expandLists(argv: string[]): string[] {
  const out: string[] = [];
  let list: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    // node's parseArgs reads `-1` after a flag as an option ("argument is ambiguous"): a number
    // that starts with '-' is the flag's value, and its own check says what is wrong with it.
    if (VALUE_FLAGS.has(a) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
      list = undefined;
      continue;
    }
    if (a.startsWith('-')) {
      list = LIST_FLAGS.has(a) ? a : undefined;
      if (list) continue;
      out.push(a);
    } else if (list) out.push(list, a);
    else out.push(a);
  }
  return out;
}

const FAMILY_KEYS = {
  unigram: 'unigram',
  alphabet: 'alphabet',
  feature: 'feature',
  syntax: 'syntax',
  semantic: 'semantic',
  'position-mi': 'positionMi',
  'position-kurtosis': 'positionKurtosis',
} as const;
export type FamilyThresholdKey = (typeof FAMILY_KEYS)[keyof typeof FAMILY_KEYS];

/** Each family threshold's valid range: the variance reductions are fractions, MI and kurtosis are ≥ 0. */
const FAMILY_RANGES: Record<keyof typeof FAMILY_KEYS, { max?: number; what: string }> = {
  unigram: { max: 1, what: 'a variance reduction in [0, 1]' },
  alphabet: { max: 1, what: 'a variance reduction in [0, 1]' },
  feature: { max: 1, what: 'a variance reduction in [0, 1]' },
  syntax: { max: 1, what: 'a variance reduction in [0, 1]' },
  semantic: { max: 1, what: 'a variance reduction in [0, 1]' },
  'position-mi': { what: 'a mutual information in nats, >= 0' },
  'position-kurtosis': { what: 'a kurtosis, >= 0' },
};

function familyThresholds(raw: string): Partial<Record<FamilyThresholdKey, number>> {
  const out: Partial<Record<FamilyThresholdKey, number>> = {};
  for (const part of raw.split(/[,\s]+/).filter((p) => p.trim())) {
    const [k, val] = part.split('=').map((x) => x.trim());
    const key = FAMILY_KEYS[k as keyof typeof FAMILY_KEYS];
    if (!key) throw new UsageError(`--family-vr: unknown threshold ${JSON.stringify(k)} (expected ${Object.keys(FAMILY_KEYS).join(', ')})`);
    const range = FAMILY_RANGES[k as keyof typeof FAMILY_KEYS];
    const x = Number(val);
    if (val === undefined || val === '' || !Number.isFinite(x) || x < 0 || (range.max !== undefined && x > range.max)) {
      throw new UsageError(`--family-vr: ${k} needs ${range.what}, got ${JSON.stringify(val ?? '')}`);
    }
    out[key] = x;
  }
  return out;
}

function roleSettings(raw: string): RoleSettings {
  const out: RoleSettings = {};
  for (const part of raw.split(/[,\s]+/).filter((p) => p.trim())) {
    const [k, val] = part.split('=').map((x) => x.trim());
    const key = ROLE_SETTING_KEYS.find((r) => ROLE_SETTINGS[r].cli === k);
    if (!key) throw new UsageError(`--roles: unknown setting ${JSON.stringify(k)} (expected ${ROLE_SETTING_KEYS.map((r) => ROLE_SETTINGS[r].cli).join(', ')})`);
    const x = val === undefined || val === '' ? NaN : Number(val);
    const problem = roleSettingProblem(key, x);
    if (problem) throw new UsageError(`--roles: ${problem.replace(/got NaN$/, `got ${JSON.stringify(val ?? '')}`)}`);
    out[key] = x;
  }
  return out;
}

function number(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const x = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(x)) throw new UsageError(`--${name} needs a number, got ${JSON.stringify(raw)}`);
  return x;
}

function integer(name: string, raw: string | undefined, def: number, min: number, max?: number, range?: string): number {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw)) || (max !== undefined && Number(raw) > max)) {
    throw new UsageError(`--${name} needs an integer ${range ?? `>= ${min}`}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** A token budget: a count (parseCount: 1e6, 1_000_000, 1M) of at least `min`. */
function count(name: string, raw: string, min: number): number {
  const x = parseCount(raw);
  if (x === undefined || x < min) {
    throw new UsageError(`--${name} needs a whole number of tokens >= ${min} (e.g. 1000000, 1_000_000, 1e6 or 1M), got ${JSON.stringify(raw)}`);
  }
  return x;
}

export function parseCli(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: expandLists(argv),
      allowPositionals: true,
      strict: true,
      options: {
        model: { type: 'string' },
        text: { type: 'string' },
        file: { type: 'string' },
        top: { type: 'string' },
        json: { type: 'string' },
        threads: { type: 'string' },
        'execution-provider': { type: 'string' },
        models: { type: 'string', multiple: true },
        corpus: { type: 'string', multiple: true },
        tokens: { type: 'string' },
        out: { type: 'string' },
        reference: { type: 'string' },
        threshold: { type: 'string' },
        seed: { type: 'string' },
        'batch-rows': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        'memory-gb': { type: 'string' },
        mode: { type: 'string' },
        'no-families': { type: 'boolean' },
        partial: { type: 'boolean' },
        'family-vr': { type: 'string' },
        roles: { type: 'string' },
        resume: { type: 'string' },
        block: { type: 'string' },
        'block-size': { type: 'string' },
        'd-mlp': { type: 'string' },
        neuron: { type: 'string' },
        hook: { type: 'string' },
        run: { type: 'string' },
        final: { type: 'string' },
        checkpoints: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (e) {
    // node's messages are already specific ("Unknown option '--x'", "argument missing").
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const { values: v, positionals } = parsed;
  if (v.version) return { kind: 'version' };
  // `CMD --help` and `help CMD`: that command's help; a bare --help or `help`: the whole help.
  if (positionals[0] === 'help') return COMMANDS.includes(positionals[1] as (typeof COMMANDS)[number]) ? { kind: 'help', command: positionals[1] } : { kind: 'help' };
  if (v.help) return COMMANDS.includes(positionals[0] as (typeof COMMANDS)[number]) ? { kind: 'help', command: positionals[0] } : { kind: 'help' };
  const [sub, ...extra] = positionals;
  if (!sub) throw new UsageError('missing command (analyze, summary, table, activations, intervene, demo, development, merge, status or slurm)');
  const threads = integer('threads', v.threads, 0, 0);
  const ep = v['execution-provider'];
  if (ep !== undefined && !(EXECUTION_PROVIDERS as readonly string[]).includes(ep)) {
    throw new UsageError(`--execution-provider must be ${EXECUTION_PROVIDERS.join(' or ')}, got ${JSON.stringify(ep)}`);
  }
  const provider = ep === undefined ? {} : { executionProvider: ep as ExecutionProvider };
  const own = ALLOWED[sub];
  if (!own) throw new UsageError(`unknown command ${JSON.stringify(sub)} (expected analyze, summary, table, activations, intervene, demo, development, merge, status or slurm)`);
  for (const [flag, value] of Object.entries(v)) {
    if (value !== undefined && flag !== 'help' && !own.includes(flag)) throw new UsageError(`${sub} does not take --${flag}`);
  }
  const positional = sub === 'merge' ? Infinity : sub === 'summary' || sub === 'table' || sub === 'development' || sub === 'status' ? 1 : 0;
  if (extra.length > positional) throw new UsageError(`unexpected argument ${JSON.stringify(extra[positional])}`);

  if (sub === 'merge') {
    if (!v.out) throw new UsageError('merge needs --out RUN (the folder the merged run is written to)');
    if (extra.length === 0) throw new UsageError('merge needs the parts: PART... or a folder holding them');
    return { kind: 'merge', parts: extra, out: v.out, partial: v.partial === true, threads };
  }
  if (sub === 'status') {
    if (!extra[0]) throw new UsageError('status needs one folder: the one holding the parts');
    return { kind: 'status', dir: extra[0] };
  }
  if (sub === 'activations') {
    const top = integer('top', v.top, 5, 1);
    if (!v.model) throw new UsageError('activations needs --model DIR');
    if ((v.text === undefined) === (v.file === undefined)) {
      throw new UsageError('activations needs exactly one of --text T or --file F');
    }
    return { kind: 'activations', model: v.model, text: v.text, file: v.file, top, json: v.json, threads, ...provider };
  }
  if (sub === 'intervene') return { ...parseIntervene(v, threads), ...provider };
  if (sub === 'development') {
    const d = parseDevelopment(v, extra[0], threads);
    if ('run' in d && ep !== undefined) throw new UsageError('development RUN reads a finished run; drop --execution-provider');
    return 'run' in d ? d : { ...d, ...provider };
  }
  if (sub === 'demo') {
    return {
      kind: 'demo',
      threads,
      ...provider,
      top: integer('top', v.top, 15, 0),
      out: v.out,
      tokens: v.tokens === undefined ? undefined : count('tokens', v.tokens, 2),
    };
  }
  if (sub === 'summary') {
    if (!extra[0]) throw new UsageError('summary needs a run folder (or run id)');
    return { kind: 'summary', run: extra[0], top: integer('top', v.top, 15, 0) };
  }
  if (sub === 'table') {
    if (!extra[0]) throw new UsageError('table needs a CSV file');
    return {
      kind: 'table',
      file: extra[0],
      top: integer('top', v.top, 15, 0),
      threshold: number('threshold', v.threshold),
      dMlp: v['d-mlp'] === undefined ? undefined : integer('d-mlp', v['d-mlp'], 0, 1),
      ...(v.run !== undefined ? { run: v.run } : {}),
    };
  }
  // analyze
  if (v.resume !== undefined) {
    const extraFlags = Object.keys(v).filter((f) => v[f as keyof typeof v] !== undefined && !['resume', 'threads', 'top', 'help', 'execution-provider'].includes(f));
    if (extraFlags.length) {
      throw new UsageError(`--resume takes every setting from the run's manifest; drop --${extraFlags[0]}`);
    }
    return { kind: 'analyze', models: [], corpus: [], tokens: 0, resume: v.resume, threads, ...provider, top: integer('top', v.top, 15, 0) };
  }
  if (!v.models || v.models.length < 2) throw new UsageError('analyze needs --models with at least two model folders');
  if (!v.corpus || v.corpus.length === 0) throw new UsageError('analyze needs --corpus PATH...');
  if (v.tokens === undefined) throw new UsageError('analyze needs --tokens N (the token budget)');
  const tokens = count('tokens', v.tokens, 2);
  const mode = v.mode;
  const threshold = number('threshold', v.threshold);
  if (threshold !== undefined && !isUsableThreshold(threshold)) {
    throw new UsageError(`--threshold needs an excess correlation strictly between -1 and 2, got ${v.threshold}`);
  }
  const memoryGb = number('memory-gb', v['memory-gb']);
  if (memoryGb !== undefined && !(memoryGb > 0)) throw new UsageError(`--memory-gb must be a positive number of GB, got ${v['memory-gb']}`);
  if (mode !== undefined && mode !== 'exact' && mode !== 'fast') throw new UsageError(`--mode must be exact or fast, got ${JSON.stringify(mode)}`);
  const blockSize = v['block-size'] === undefined ? undefined : parseBlockSize(v['block-size']);
  if (v.block !== undefined && !blockSize) throw new UsageError('--block needs --block-size A[,B]: every part of a split run must cut the reference neurons the same way');
  if (v.block !== undefined && mode === 'fast') throw new UsageError('--block needs mode exact: fast mode\'s parts would not merge to the single run');
  return {
    kind: 'analyze',
    models: v.models,
    corpus: v.corpus,
    tokens,
    out: v.out,
    reference: v.reference,
    threshold,
    seed: v.seed === undefined ? undefined : integer('seed', v.seed, 0, 0, 2 ** 32 - 1, 'in [0, 2^32): negative seeds are not used'),
    batchRows: v['batch-rows'] === undefined ? undefined : integer('batch-rows', v['batch-rows'], 0, 1),
    checkpointEvery: v['checkpoint-every'] === undefined ? undefined : integer('checkpoint-every', v['checkpoint-every'], 0, 1),
    memoryGb,
    mode,
    ...(v['no-families'] ? { families: false } : {}),
    ...(v['family-vr'] !== undefined ? { familyThresholds: familyThresholds(v['family-vr']) } : {}),
    ...(v.block !== undefined ? { block: integer('block', v.block, 0, 0) } : {}),
    ...(blockSize ? { blockSize } : {}),
    ...(v.roles !== undefined ? { roles: roleSettings(v.roles as string) } : {}),
    threads,
    ...provider,
    top: integer('top', v.top, 15, 0),
  };
}

function parseDevelopment(v: Record<string, string | boolean | string[] | undefined>, run: string | undefined, threads: number): DevelopmentCommand {
  const str = (k: string): string | undefined => v[k] as string | undefined;
  if (run !== undefined) {
    const extraFlag = ['final', 'checkpoints', 'corpus', 'tokens', 'out'].find((f) => v[f] !== undefined);
    if (extraFlag) throw new UsageError(`development RUN reads a finished run; drop --${extraFlag} (or drop RUN to make one)`);
    const neuron = str('neuron');
    if (neuron === undefined) return { kind: 'development', run };
    let refs: NeuronRef[];
    try {
      refs = parseNeuronList(neuron);
    } catch (e) {
      throw new UsageError(`--neuron: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (refs.length !== 1) throw new UsageError('--neuron takes one neuron here, e.g. --neuron L1.N5');
    return { kind: 'development', run, neuron: refs[0]! };
  }
  if (str('neuron') !== undefined) throw new UsageError('--neuron reads a finished development run: development RUN --neuron L1.N5');
  if (!str('final')) throw new UsageError('development needs --final DIR[@REV] and --checkpoints DIR@REV,... (or a finished run: development RUN)');
  const checkpoints = ((v.checkpoints as string[] | undefined) ?? []).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean);
  if (checkpoints.length === 0) throw new UsageError('development needs --checkpoints with at least one earlier revision, e.g. --checkpoints ENTRY@step1000');
  const corpus = v.corpus as string[] | undefined;
  if (!corpus || corpus.length === 0) throw new UsageError('development needs --corpus PATH...');
  if (str('tokens') === undefined) throw new UsageError('development needs --tokens N (the token budget)');
  return { kind: 'development', final: str('final')!, checkpoints, corpus, tokens: count('tokens', str('tokens')!, 2), out: str('out'), threads };
}

/** `--block-size A[,B]`: the first block's reference neurons and the others' (default B = A). */
function parseBlockSize(raw: string): readonly [number, number] {
  const m = /^(\d+)(?:,(\d+))?$/.exec(raw.trim());
  const [a, b] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [0, 0];
  if (!m || !(a >= 1 && b >= 1 && Number.isSafeInteger(a) && Number.isSafeInteger(b))) {
    throw new UsageError(`--block-size needs A or A,B, positive numbers of reference neurons per block, got ${JSON.stringify(raw)}`);
  }
  return [a, b];
}

/** `intervene`: the engine's own parsers (interventionSpec.ts) for the neurons, mode and range. */
function parseIntervene(v: Record<string, string | boolean | string[] | undefined>, threads: number): InterveneCommand {
  const str = (k: string): string | undefined => v[k] as string | undefined;
  if (!str('model')) throw new UsageError('intervene needs --model DIR');
  if ((str('text') === undefined) === (str('file') === undefined)) throw new UsageError('intervene needs exactly one of --text T or --file F');
  if (str('neuron') === undefined) throw new UsageError('intervene needs --neuron L{layer}.N{neuron}[,...], e.g. --neuron L3.N120');
  if (str('mode') === undefined) throw new UsageError('intervene needs --mode zero|mean|fix=V|scale=K');
  const hook = str('hook') ?? 'post';
  if (hook !== 'pre' && hook !== 'post') throw new UsageError(`--hook must be pre or post, got ${JSON.stringify(hook)}`);
  const usage = <T>(flag: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new UsageError(`--${flag}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const mode = usage('mode', () => parseMode(str('mode')!));
  if (str('run') !== undefined && mode.kind !== 'mean') throw new UsageError('--run gives the means of --mode mean; drop it or use --mode mean');
  return {
    kind: 'intervene',
    model: str('model')!,
    text: str('text'),
    file: str('file'),
    neurons: usage('neuron', () => parseNeuronList(str('neuron')!)),
    mode,
    hook,
    ...(str('tokens') !== undefined ? { tokens: usage('tokens', () => parseTokenRange(str('tokens')!)) } : {}),
    top: integer('top', str('top'), 5, 1),
    ...(str('run') !== undefined ? { run: str('run') } : {}),
    json: str('json'),
    threads,
  };
}
