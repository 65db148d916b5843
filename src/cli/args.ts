/** Command-line parsing: turns argv into a typed command or a UsageError (exit code 2). */
import { parseArgs } from 'node:util';
import type { NeuronRef } from '../engine/arch/common';
import { parseMode, parseNeuronList, parseTokenRange, type InterventionMode } from '../engine/interventionSpec';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from '../engine/provider';
import { isUsableThreshold } from '../engine/run/defaults';
import { ROLE_SETTING_KEYS, ROLE_SETTINGS, roleSettingProblem, type RoleSettings } from '../engine/run/roleSettings';
import { ALLOWED, COMMANDS } from './help';

// The help text, the command table and the flags each command takes live in help.ts.
export { commandHelp, COMMANDS, HELP } from './help';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

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
  /** Token shard I of N of a split run (parts.ts), alone or with --block. */
  shard?: { index: number; count: number };
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
const VALUE_FLAGS = new Set(['--model', '--text', '--file', '--top', '--json', '--threads', '--tokens', '--out', '--reference', '--threshold', '--seed', '--batch-rows', '--checkpoint-every', '--memory-gb', '--mode', '--family-vr', '--roles', '--resume', '--block', '--block-size', '--shard', '--d-mlp', '--neuron', '--hook', '--run', '--final', '--execution-provider']);

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
        shard: { type: 'string' },
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
  const shard = v.shard === undefined ? undefined : parseShard(v.shard as string);
  if (shard && mode === 'fast') throw new UsageError('--shard needs mode exact: fast mode\'s parts would not merge to the single run');
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
    ...(shard ? { shard } : {}),
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

/** `--shard I/N`: token shard I (0 ≤ I < N) of N. */
function parseShard(raw: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [-1, 0];
  if (!m || !(Number.isSafeInteger(count) && count >= 1 && index < count)) {
    throw new UsageError(`--shard needs I/N, token shard I of N with 0 ≤ I < N (e.g. --shard 0/4), got ${JSON.stringify(raw)}`);
  }
  return { index, count };
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
