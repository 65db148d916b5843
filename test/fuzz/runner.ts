// Runs one fuzz case in this process: the mutated files in a case folder, then the engine's real
// entry points on them, and the outcome judged against the unmutated baseline.
//
// Paths (what the CLI's commands call):
//   activations  openModel (loadCheckpoint + every check + the ONNX session) and
//                Model.activations on a fixed text of 45 tokens (two windows of the 32-token
//                context): every MLP activation, bit for bit, and on every other case every
//                logit too (ln_f and the LM head act only there; the logits variant is a second
//                ONNX session, so half the cases skip it to keep npm test quick).
//   analyze      runAnalysis, the pipeline of `analyze`, with a tiny token budget and a plan whose
//                one accumulator takes a sha256 of every batch it is given (ids, the kept-token
//                filter, each model's four activation arrays) and of the corpus rows, documents
//                and part-of-speech tags; the default plan's statistics are deterministic
//                functions of those batches. Model cases run [mutated, base] on 128 tokens of a
//                .tokens.bin (every case the activations path accepted, and every 8th of the
//                rest); corpus cases run [base, base] on the whole mutated corpus folder.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { type AnalysisPlan, runAnalysis } from '../../src/engine/analysis/pipeline';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { EngineError } from '../../src/engine/errors';
import { type Activations, openModel } from '../../src/engine/runtime';
import { errorLine } from '../../src/format';
import { BASE_NAMES, type BaseName, baseCorpus, baseModels } from './base';
import { JSONL, TOKENS } from './mutators/corpus';
import type { Mutation } from './mutation';

/** Good: refused, harmless, different-model. Failures: the rest. */
export const OUTCOMES = ['refused', 'harmless', 'different-model', 'silent-wrong', 'unclear', 'crash', 'hang'] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const FAILURES: readonly Outcome[] = ['silent-wrong', 'unclear', 'crash', 'hang'];

export interface PathResult {
  outcome: Outcome;
  message?: string;
  ms: number;
}

export interface CaseResult {
  index: number;
  family: Mutation['family'];
  op: string;
  detail: string;
  base: BaseName;
  outcome: Outcome;
  legit?: string;
  harmless?: string;
  paths: { activations?: PathResult; analyze?: PathResult };
  ms: number;
}

/** The probe: ASCII, digits, contractions, accents, CJK, an emoji, whitespace runs and a literal <|endoftext|>. */
export const PROBE =
  "Hello, world! It's 2024; they'll say: naïve café, Straße 東京 🙂.\n\n\tThe <|endoftext|> token, then 12345 and more words to pass one window of context.";

const MODEL_TOKENS = 128;
const CORPUS_TOKENS = 2048;
/** Model cases the activations path refused run the analyze path on every ANALYZE_EVERY-th case. */
export const ANALYZE_EVERY = 8;
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

interface Baseline {
  acts: Activations;
  analyze: string;
}

export class Runner {
  readonly root = mkdtempSync(join(tmpdir(), 'un-fuzz-'));
  private readonly baseDir = {} as Record<BaseName, string>;
  private readonly corpusDir = join(this.root, 'corpus');
  private readonly baseline = {} as Record<BaseName, Baseline>;
  private corpusBaseline = '';

  /**
   * Writes the base checkpoints and corpus, and computes every baseline. Were the forward not
   * deterministic, every accepted case would differ from its baseline and count as a failure, so a
   * second baseline run would only cost start-up time.
   */
  async init(): Promise<void> {
    for (const name of BASE_NAMES) {
      const dir = (this.baseDir[name] = join(this.root, `base-${name}`));
      mkdirSync(dir);
      for (const f of FILES) copyFileSync(join(baseModels()[name].fixture, f), join(dir, f));
    }
    mkdirSync(this.corpusDir);
    writeFileSync(join(this.corpusDir, JSONL), baseCorpus().jsonl);
    writeFileSync(join(this.corpusDir, TOKENS), baseCorpus().tokens);
    for (const name of BASE_NAMES) {
      const acts = await this.activations(this.baseDir[name]);
      const a = await this.analyze([this.baseDir[name], this.baseDir[name]], [join(this.corpusDir, TOKENS)], MODEL_TOKENS, 'baseline-' + name);
      this.baseline[name] = { acts, analyze: a };
    }
    this.corpusBaseline = await this.analyze([this.baseDir.f32, this.baseDir.f32], [this.corpusDir], CORPUS_TOKENS, 'baseline-corpus');
  }

  close(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  async run(m: Mutation, index: number): Promise<CaseResult> {
    const t0 = performance.now();
    const caseDir = join(this.root, `case-${index}`);
    const dir = join(caseDir, m.target);
    mkdirSync(dir, { recursive: true });
    const paths: CaseResult['paths'] = {};
    try {
      const links = m.target === 'model' ? FILES.map((f) => [f, join(this.baseDir[m.base], f)]) : [JSONL, TOKENS].map((f) => [f, join(this.corpusDir, f)]);
      for (const [f, src] of links) if (!m.changes.some((c) => c.path === f)) symlinkSync(src!, join(dir, f!));
      for (const c of m.changes) {
        const p = join(dir, c.path);
        mkdirSync(dirname(p), { recursive: true });
        if (c.content === 'dir') mkdirSync(p);
        else if (c.content !== 'delete') writeFileSync(p, c.content);
      }
      if (m.target === 'model') {
        const base = this.baseline[m.base];
        const logits = index % 2 === 0;
        paths.activations = await this.judge(m, dir, async () => {
          const acts = await this.activations(dir, logits);
          return diff(acts, base.acts);
        });
        // A model the activations path refused is refused by the analysis too (openModels calls
        // the same openModel), so that is checked on a sample; accepted ones always go through.
        if (paths.activations.outcome !== 'refused' || index % ANALYZE_EVERY === 0) {
          paths.analyze = await this.judge(m, dir, async () => {
            const d = await this.analyze([dir, this.baseDir[m.base]], [join(this.corpusDir, TOKENS)], MODEL_TOKENS, join(caseDir, 'run'));
            return d === base.analyze ? undefined : 'the analysis batches differ from the baseline';
          });
        }
      } else {
        paths.analyze = await this.judge(m, dir, async () => {
          const d = await this.analyze([this.baseDir.f32, this.baseDir.f32], [dir], CORPUS_TOKENS, join(caseDir, 'run'));
          return d === this.corpusBaseline ? undefined : 'the corpus rows or the analysis batches differ from the baseline';
        });
      }
    } finally {
      rmSync(caseDir, { recursive: true, force: true });
    }
    const all = [paths.activations, paths.analyze].filter((p): p is PathResult => !!p);
    const outcome = worst(all.map((p) => p.outcome));
    return {
      index,
      family: m.family,
      op: m.op,
      detail: m.detail,
      base: m.base,
      outcome,
      ...(m.legit ? { legit: m.legit } : {}),
      ...(m.harmless ? { harmless: m.harmless } : {}),
      paths,
      ms: performance.now() - t0,
    };
  }

  /** Runs one path: its error, or the difference from the baseline ('' or undefined when identical). */
  private async judge(m: Mutation, dir: string, fn: () => Promise<string | undefined>): Promise<PathResult> {
    const t0 = performance.now();
    const done = (outcome: Outcome, message?: string): PathResult => ({ outcome, ...(message ? { message } : {}), ms: performance.now() - t0 });
    let changed: string | undefined;
    try {
      changed = await fn();
    } catch (e) {
      if (!(e instanceof EngineError)) {
        const err = e as Error;
        return done('crash', `${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${(err?.stack ?? '').split('\n').slice(1, 6).join('\n')}`);
      }
      const line = errorLine(e);
      const missing = unnamed(m, dir, line);
      return done(missing ? 'unclear' : 'refused', missing ? `${missing}: ${line}` : line);
    }
    if (changed === undefined) return done('harmless');
    if (changed.startsWith('non-finite')) return done('silent-wrong', changed);
    return m.legit ? done('different-model', changed) : done('silent-wrong', changed);
  }

  private async activations(dir: string, logits = true): Promise<Activations> {
    const model = await openModel(dir, { threads: 1 });
    try {
      return await model.activations(PROBE, { logits });
    } finally {
      await model.close();
    }
  }

  /** The analyze path's digest of everything the statistics are computed from. */
  private async analyze(models: string[], corpus: string[], tokens: number, out: string): Promise<string> {
    const r = await runAnalysis({ models, corpus, tokens, out: out.includes('/') ? out : join(this.root, out), threads: 1, plan: digestPlan() });
    if (r.manifest.status !== 'complete') throw new Error(`analysis ended ${r.manifest.status}`);
    return String((r.manifest.results as { digest: string }).digest);
  }
}

/** What a refusal's message fails to name, or '' when it names the mutated file (and one of m.names). */
function unnamed(m: Mutation, dir: string, line: string): string {
  const fileNamed = m.changes.some((c) => line.includes(join(dir, c.path)) || (line.includes(dir) && line.includes(basename(c.path))));
  if (!fileNamed) return `names none of ${m.changes.map((c) => c.path).join(', ')}`;
  if (m.names && m.names.length > 0 && !m.names.some((n) => line.includes(n))) return `names none of ${m.names.join(', ')}`;
  return '';
}

const SEVERITY: Outcome[] = ['harmless', 'refused', 'different-model', 'unclear', 'silent-wrong', 'hang', 'crash'];
export function worst(outcomes: Outcome[]): Outcome {
  return outcomes.reduce((a, b) => (SEVERITY.indexOf(b) > SEVERITY.indexOf(a) ? b : a), 'harmless' as Outcome);
}

const bytesOf = (a: Float32Array | Int32Array | Uint8Array | Int8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const equalBytes = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(bytesOf(a)).equals(Buffer.from(bytesOf(b)));

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/** How `a` differs from the baseline `b`; undefined when bit-identical. Non-finite output is reported first. */
function diff(a: Activations, b: Activations): string | undefined {
  for (const [name, arrs] of [['hook_pre', a.hookPre], ['hook_post', a.hookPost], ['logits', a.logits ? [a.logits] : []]] as const) {
    for (const [l, x] of arrs.entries()) {
      const i = firstNonFinite(x);
      if (i >= 0) return `non-finite ${name} accepted: ${x[i]} at layer ${l} index ${i}`;
    }
  }
  if (JSON.stringify(a.tokens) !== JSON.stringify(b.tokens)) return 'tokens differ';
  for (const [name, x, y] of [['hook_pre', a.hookPre, b.hookPre], ['hook_post', a.hookPost, b.hookPost]] as const) {
    if (x.length !== y.length) return `${name}: ${x.length} layers, baseline ${y.length}`;
    for (let l = 0; l < x.length; l++) if (!equalBytes(x[l]!, y[l]!)) return `${name} of layer ${l} differs`;
  }
  if (a.logits && (!b.logits || !equalBytes(a.logits, b.logits))) return 'logits differ';
  return undefined;
}

/** One accumulator: sha256 over every batch (refusing non-finite values, as the statistics do) and the corpus. */
function digestPlan(): AnalysisPlan {
  return {
    accumulators: (ctx) => {
      const c = ctx.corpus;
      const corpus = createHash('sha256')
        .update(bytesOf(c.ids))
        .update(bytesOf(c.doc))
        .update(c.pos ? bytesOf(c.pos) : new Uint8Array(0))
        .update(JSON.stringify(c.documents))
        .digest('hex');
      return [
        {
          name: 'digest',
          create: () => {
            const h = createHash('sha256').update(corpus);
            return {
              add(b: ActivationBatch) {
                h.update(JSON.stringify(b.rows)).update(bytesOf(b.keep)).update(bytesOf(b.keptIndex));
                b.models.forEach((m, i) => {
                  for (const k of ['pre', 'post', 'keptPre', 'keptPost'] as const) {
                    const j = firstNonFinite(m[k]);
                    if (j >= 0) throw new EngineError(`activation column ${j % 64} has a non-finite value (NaN or ±Infinity) in this batch`);
                    h.update(`${i}${k}`).update(bytesOf(m[k]));
                  }
                });
              },
              state: () => ({}),
              finish: () => h.digest('hex'),
            };
          },
          restore: () => {
            throw new Error('the fuzz digest plan does not resume');
          },
        },
      ];
    },
    finalize: async (_ctx, results) => ({ digest: results.get('digest') }),
  };
}
