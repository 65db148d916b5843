/**
 * A synthetic, complete analysis run folder in the contract's layout (manifest.json,
 * neurons.arrow, partners.arrow, examples.json/.bin, optionally vocab.arrow and the family/role
 * columns with roles.json), with plausible numbers (a U-shaped universal share per layer), for the
 * result views' tests and previews. Nothing here is science: the values are random.
 *
 * Families (`families: true`): every neuron gets a family (`unexplained` for most), a label that
 * fits it, its VR, position MI, roles and per-example hits; fixed neurons carry the rarer roles so
 * tests can find them: (L−1, 1) is an entropy neuron with an intervention in roles.json, (0, 2) an
 * attention-deactivation neuron of head L1.H0. `families: 'family-only'` writes just the `family`
 * column, as runs made before labels and roles did.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TopExamplesResult } from '../../src/engine/analysis/examples';
import { serializeExamples } from '../../src/engine/run/examples';
import { PAPER_COLUMNS, partnerColumns } from '../../src/engine/run/neurons';
import { arrowBytes } from '../../src/engine/store';
import { mulberry32 } from '../../src/engine/rng';

export interface SyntheticRunOptions {
  dir: string;
  nLayers: number;
  dMlp: number;
  /** Labels, reference first. */
  models?: string[];
  /** Reference model folder (its tokenizer gives token text). */
  modelDir?: string;
  /** Top examples per neuron (0: no examples files). */
  k?: number;
  families?: boolean | 'family-only';
  vocab?: boolean;
  partners?: boolean;
  /** Also write what the pipeline's plan puts in neurons.arrow: a `universal` column and wide partner columns. */
  wide?: boolean;
  seed?: number;
  threshold?: number;
  status?: string;
}

/** The project's seeded generator (src/engine/rng.ts), under the name the tests use. */
export const rng = mulberry32;

const FAMILIES = ['unigram', 'alphabet', 'previous-token', 'position', 'syntax', 'semantic'];
const WORDS = ['the', 'of', 'and', 'to', 'in', 'that', 'he', 'said'];
const POS = ['NOUN', 'VERB', 'ADJ', 'DET', 'ADP', 'PRON'];

/** Entropy neuron (layer L−1) and attention-deactivation neuron (layer 0) the roles columns always have. */
export const SYNTHETIC_ENTROPY_NEURON = (nLayers: number) => ({ layer: nLayers - 1, neuron: 1 });
export const SYNTHETIC_ATTENTION_NEURON = { layer: 0, neuron: 2, head: 'L1.H0' };

function labelFor(family: string, pick: <T>(xs: readonly T[]) => T): string {
  switch (family) {
    case 'unigram':
      return `unigram:${pick(WORDS)}`;
    case 'alphabet':
      return `alphabet:${pick(['t', 's', 'a', 'w'])}`;
    case 'previous-token':
      return pick([`prev:unigram:${pick(WORDS)}`, `prev:alphabet:${pick(['t', 'c'])}`, 'prev:feature:space', 'prev:pos:DET']);
    case 'position':
      return pick(['position:<32', 'position:=5', 'position:<8']);
    case 'syntax':
      return pick([`pos:${pick(POS)}`, 'feature:punct-comma', 'feature:capitalised', 'feature:newline']);
    case 'semantic':
      return pick(['source:kjv', 'source:sotu', 'topic:brown/press', 'feature:year']);
    default:
      return pick([`unigram:${pick(WORDS)}`, 'feature:numeric', `pos:${pick(POS)}`, 'position:<64']);
  }
}

/** The family and role columns and roles.json (own random stream: the other columns stay as they were). */
function familyColumns(cols: Record<string, Float64Array>, L: number, D: number, K: number, seed: number): { table: Record<string, Float64Array | string[]>; roles: unknown } {
  const N = L * D;
  const r = rng(seed + 101);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const family: string[] = [];
  const label: string[] = [];
  const vr = new Float64Array(N);
  const mi = new Float64Array(N);
  const role: string[] = [];
  const roles: string[] = [];
  const head: string[] = [];
  const score = new Float64Array(N).fill(NaN);
  const hits: string[] = [];
  const vocabVar = Float64Array.from(cols.vocab_var!).sort();
  const partition = vocabVar[Math.floor(0.98 * (N - 1))]!;
  const entropy = SYNTHETIC_ENTROPY_NEURON(L);
  const attn = SYNTHETIC_ATTENTION_NEURON;
  for (let i = 0; i < N; i++) {
    const l = Math.floor(i / D);
    const n = i % D;
    const universal = cols.excess_corr![i]! > 0.5;
    // Early layers: token families; middle: previous token and position; late: syntax and semantics.
    const depth = L > 1 ? l / (L - 1) : 0;
    const pool = depth < 0.34 ? FAMILIES.slice(0, 2) : depth < 0.67 ? FAMILIES.slice(2, 4) : FAMILIES.slice(3);
    const explained = r() < (universal ? 0.7 : 0.2);
    const f = explained ? (r() < 0.8 ? pick(pool) : pick(FAMILIES)) : 'unexplained';
    family.push(f);
    label.push(labelFor(f, pick));
    vr[i] = explained ? 0.35 + 0.55 * r() : 0.02 + 0.25 * r();
    mi[i] = f === 'position' ? 0.05 + 0.25 * r() : 0.01 * r();
    const rs: string[] = [];
    if (l === entropy.layer && n === entropy.neuron) rs.push('entropy');
    if (cols.vocab_kurt![i]! > 10) rs.push(cols.vocab_skew![i]! >= 0 ? 'prediction' : 'suppression');
    if (cols.vocab_var![i]! > partition) rs.push('partition');
    const deact = (l === attn.layer && n === attn.neuron) || (l < L - 1 && r() < 0.02);
    if (deact) rs.push('attention-deactivation');
    role.push(rs[0] ?? '');
    roles.push(rs.join(','));
    head.push(deact ? (l === attn.layer && n === attn.neuron ? attn.head : `L${l + 1 + Math.floor(r() * (L - 1 - l))}.H${Math.floor(r() * 4)}`) : '');
    if (deact) score[i] = 3 + 3 * r();
    // Most neurons: one hit flag per stored example; a few have none (an engine that skipped them).
    hits.push(i % 11 === 7 ? '' : Array.from({ length: K }, () => (r() < vr[i]! ? '1' : '0')).join(''));
  }
  const points = [-0.17, 0, 0.5, 1, 2, 3, 4, 6].map((value) => {
    const lnScale = 1 / (1 + 0.35 * Math.max(0, value));
    const ent = 2.5 + 0.5 * Math.log1p(Math.max(0, value));
    const loss = 3.1 + 0.04 * value * value;
    return { value, lnScale, entropy: ent, loss, dLoss: loss - 3.1, dEntropy: ent - 2.5 };
  });
  const rolesJson = {
    entropy: [{ layer: entropy.layer, neuron: entropy.neuron, candidate: true, baseline: { lnScale: 1, entropy: 2.5, loss: 3.1 }, points }],
    attention: head
      .map((h, i) => ({ layer: Math.floor(i / D), neuron: i % D, head: h, score: score[i]!, raw: 0.1 * score[i]! }))
      .filter((a) => a.head !== '')
      .sort((a, b) => b.score - a.score),
  };
  return {
    table: { family, family_label: label, family_vr: vr, position_mi: mi, role, roles, attn_head: head, attn_score: score, family_hits: hits },
    roles: rolesJson,
  };
}

export async function writeSyntheticRun(o: SyntheticRunOptions): Promise<void> {
  const { dir, nLayers: L, dMlp: D } = o;
  const models = o.models ?? ['tiny-gpt2-a', 'tiny-gpt2-b', 'tiny-gpt2-c'];
  const N = L * D;
  const r = rng(o.seed ?? 1);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  mkdirSync(dir, { recursive: true });

  const cols: Record<string, Float64Array> = {};
  for (const c of PAPER_COLUMNS) cols[c] = new Float64Array(N);
  for (let l = 0; l < L; l++) {
    const edge = Math.abs(l - (L - 1) / 2) / ((L - 1) / 2 || 1); // 0 mid, 1 first/last
    const pUniv = 0.02 + 0.08 * edge * edge;
    for (let n = 0; n < D; n++) {
      const i = l * D + n;
      const univ = r() < pUniv;
      const base = 0.12 + 0.05 * r();
      const mean = univ ? 0.65 + 0.3 * r() + 0.0 * base : base + 0.05 + 0.35 * r() * r();
      cols.layer![i] = l;
      cols.neuron![i] = n;
      cols.mean_corr![i] = Math.min(0.999, mean);
      cols.max_corr![i] = Math.min(0.999, mean + 0.05 * r());
      cols.min_corr![i] = Math.max(0, mean - 0.1 * r());
      cols.mean_baseline![i] = base;
      cols.max_baseline![i] = base + 0.03 * r();
      cols.min_baseline![i] = base - 0.03 * r();
      cols.excess_corr![i] = cols.mean_corr![i]! - base;
      cols.w_in_norm![i] = 0.5 + 0.2 * gauss() + (univ ? 0.3 : 0);
      cols.input_bias![i] = -0.2 + 0.1 * gauss() - (univ ? 0.4 : 0);
      cols.w_out_norm![i] = 0.4 + 0.1 * gauss() + (univ ? 0.2 : 0);
      cols.in_out_sim![i] = 0.1 * gauss();
      cols.l2_penalty![i] = cols.w_in_norm![i]! ** 2 + cols.w_out_norm![i]! ** 2;
      cols.mean![i] = -0.5 + 0.3 * gauss() - (univ ? 0.5 : 0);
      cols.var![i] = 0.2 + 0.1 * r();
      cols.skew![i] = 0.5 * gauss() + (univ ? 1.5 : 0);
      cols.kurt![i] = 3 + Math.abs(gauss()) + (univ ? 3 : 0);
      cols.vocab_mean![i] = 0.001 * gauss();
      cols.vocab_var![i] = 0.001 + 0.0005 * r();
      cols.vocab_skew![i] = 0.3 * gauss();
      cols.vocab_kurt![i] = 3 + 2 * Math.abs(gauss()) + (univ && l === L - 1 ? 10 : 0);
      cols.sparsity![i] = univ ? 0.01 + 0.03 * r() : 0.05 + 0.3 * r();
    }
  }
  cols.excess_corr![Math.min(3, N - 1)] = NaN; // one missing value, as a NaN in the file
  const table: Record<string, Float64Array | Int32Array | string[] | boolean[]> = {
    layer: Int32Array.from(cols.layer!),
    neuron: Int32Array.from(cols.neuron!),
  };
  for (const c of PAPER_COLUMNS) if (c !== 'layer' && c !== 'neuron') table[c] = cols[c]!;
  if (o.families === 'family-only') table.family = Array.from({ length: N }, () => (r() < 0.3 ? FAMILIES[Math.floor(r() * FAMILIES.length)]! : ''));
  else if (o.families) {
    const f = familyColumns(cols, L, D, o.k ?? 5, o.seed ?? 1);
    Object.assign(table, f.table);
    writeFileSync(join(dir, 'roles.json'), JSON.stringify(f.roles, null, 1));
  }
  if (o.wide) {
    // The run's own flag; neuron 0 is flagged whatever its excess (the flag wins over the threshold).
    table.universal = Array.from(cols.excess_corr!, (x, i) => i === 0 || x > (o.threshold ?? 0.5));
    for (const m of models.slice(1)) {
      const c = partnerColumns(m);
      table[c.layer] = Int32Array.from({ length: N }, (_, i) => Math.floor(i / D));
      table[c.neuron] = Int32Array.from({ length: N }, (_, i) => (i * 7) % D);
      table[c.corr] = Float64Array.from(cols.mean_corr!);
      table[c.baseline] = Float64Array.from(cols.mean_baseline!);
    }
  }
  writeFileSync(join(dir, 'neurons.arrow'), await arrowBytes(table));

  if (o.partners ?? true) {
    const rows = N * (models.length - 1);
    const p = {
      layer: new Int32Array(rows),
      neuron: new Int32Array(rows),
      model: [] as string[],
      partner_layer: new Int32Array(rows),
      partner_neuron: new Int32Array(rows),
      corr: new Float64Array(rows),
      baseline: new Float64Array(rows),
    };
    let k = 0;
    for (let m = 1; m < models.length; m++) {
      for (let i = 0; i < N; i++, k++) {
        const l = Math.floor(i / D);
        p.layer[k] = l;
        p.neuron[k] = i % D;
        p.model.push(models[m]!);
        p.partner_layer[k] = Math.max(0, Math.min(L - 1, l + (r() < 0.8 ? 0 : r() < 0.5 ? -1 : 1)));
        // Some partners shared by several reference neurons (so "best reference match" varies).
        p.partner_neuron[k] = r() < 0.3 ? Math.floor(r() * Math.min(D, 8)) : Math.floor(r() * D);
        p.corr[k] = Math.min(0.999, cols.mean_corr![i]! + 0.05 * gauss());
        p.baseline[k] = cols.mean_baseline![i]! + 0.02 * gauss();
      }
    }
    writeFileSync(join(dir, 'partners.arrow'), await arrowBytes(p));
  }

  const K = o.k ?? 5;
  if (K > 0) {
    const before = 12;
    const after = 4;
    const W = before + 1 + after;
    const F = 2;
    const R = 1;
    const B = 32;
    const slots = (n: number) => ({
      value: new Float32Array(n),
      row: new Int32Array(n).fill(-1),
      pos: new Int32Array(n),
      start: new Int32Array(n),
      len: new Int32Array(n),
      ids: new Int32Array(n * W).fill(-1),
      acts: new Float32Array(n * W),
    });
    const top = slots(N * K);
    const topCount = new Int32Array(N);
    const words = [464, 3797, 3332, 319, 262, 2603, 13, 314, 588, 340, 11, 290, 257, 1110, 286, 6403, 198, 818, 383, 995];
    for (let j = 0; j < N; j++) {
      const count = j % 17 === 5 ? 0 : K; // a few neurons never fire
      topCount[j] = count;
      let v = 2 + 3 * r();
      for (let q = 0; q < count; q++) {
        const s = j * K + q;
        v *= 0.8 + 0.15 * r();
        top.value[s] = v;
        top.row[s] = Math.floor(r() * 1000);
        top.start[s] = 3 + q;
        top.pos[s] = top.start[s]! + before;
        top.len[s] = W;
        for (let t = 0; t < W; t++) {
          top.ids[s * W + t] = words[Math.floor(r() * words.length)]!;
          top.acts[s * W + t] = t === before ? v : (r() - 0.3) * v * 0.6;
        }
      }
    }
    const hist = { bins: B, lo: new Float64Array(N), hi: new Float64Array(N), counts: new Uint32Array(N * (B + 2)), min: new Float64Array(N), max: new Float64Array(N) };
    for (let j = 0; j < N; j++) {
      hist.lo[j] = -0.2;
      hist.hi[j] = 3;
      hist.min[j] = -0.17;
      hist.max[j] = 2.9;
      for (let b = 0; b < B; b++) hist.counts[j * (B + 2) + 1 + b] = Math.round(1000 * Math.exp(-b / 3) + 5 * r());
      hist.counts[j * (B + 2)] = 0;
      hist.counts[j * (B + 2) + B + 1] = 2;
    }
    const res = new TopExamplesResult(0, N, K, before, after, F, R, topCount, top, new Float64Array(N).fill(4), new Float64Array(N * F), new Int32Array(N * F), slots(N * F * R), hist);
    const { json, binary } = serializeExamples([res]);
    writeFileSync(join(dir, 'examples.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'examples.bin'), binary);
  }

  if (o.vocab) {
    const per = 5;
    const rows = N * per * 2;
    const v = { layer: new Int32Array(rows), neuron: new Int32Array(rows), side: [] as string[], rank: new Int32Array(rows), token: new Int32Array(rows), value: new Float64Array(rows) };
    let k = 0;
    for (let i = 0; i < N; i++) {
      for (const side of ['top', 'bottom']) {
        for (let q = 0; q < per; q++, k++) {
          v.layer[k] = Math.floor(i / D);
          v.neuron[k] = i % D;
          v.side.push(side);
          v.rank[k] = q;
          v.token[k] = 1000 + Math.floor(r() * 20000);
          v.value[k] = (side === 'top' ? 1 : -1) * (0.3 - 0.04 * q);
        }
      }
    }
    writeFileSync(join(dir, 'vocab.arrow'), await arrowBytes(v));
  }

  const manifest = {
    format: 'universal-neurons/run@1',
    id: dir.split('/').pop(),
    status: o.status ?? 'complete',
    created: '2026-11-27T12:00:00.000Z',
    updated: '2026-11-27T12:05:00.000Z',
    software: {},
    models: models.map((label, i) => ({ label, dir: o.modelDir ?? `/nonexistent/${label}`, nLayers: L, dMlp: D, nNeurons: N, nPositions: 128, role: i ? 'other' : 'reference' })),
    corpus: {},
    settings: { reference: models[0], threshold: o.threshold ?? 0.5, seed: 0, batchRows: 8, checkpointEvery: 25, mode: 'exact', threads: 0, topK: K, tokens: 1_000_000 },
    choices: {},
    progress: { batches_done: 10, batches_total: 10, tokens_done: 1_000_000 },
    timings: {},
    warnings: [],
    results: {},
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}
