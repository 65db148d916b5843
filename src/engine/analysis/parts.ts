/**
 * Split runs (issue #17): a run cut into parts that different machines compute, and the merge
 * that finishes them into the run folder a single machine would have written.
 *
 * A part is one pass of the plan (pipeline.ts): a block of reference neurons against one other
 * model, or the statistics pass. Each pass already reads the whole corpus and holds accumulators
 * of its own, so a part streams its pass exactly as a single blocked run does and writes its
 * accumulators' end-of-stream state (part.ckpt) instead of finishing them. The merge restores every
 * pass's state in plan order and finishes it, as a resume finishes an end-of-stream checkpoint:
 * its arithmetic is the single run's, so its files are bit for bit the blocked run's (and the
 * blocked run's correlations are the unblocked one's: blocked-analysis.test.ts).
 *
 * Token shards (`--shard I/N`) split the corpus instead: shard I streams batches [b_I, b_I+1) of
 * every pass (or of pass J with `--block J`: both), and the merge sums the shards' states per
 * accumulator (stateMerge.ts), then finishes as above. What made states not summable is gone:
 *  - the histograms' range and the cross moments' shift were fixed by the first batch a run saw:
 *    a shard first primes its accumulators with the corpus' first batch (one extra forward of
 *    batch 0 per pass), so every shard fixes them as the single run does;
 *  - the examples' interval samples drew from one RNG in corpus order: they keep the smallest
 *    keys of a hash of (seed, model, neuron, row) now, and the top-K ranks by value then row;
 *  - the cross moments add an fp32 partial into float64 totals every ~chunk kept tokens: a shard
 *    begins only at a batch where the single run adds it (`shardCuts`, from the corpus' kept
 *    tokens alone), so every fp32 partial is the single run's, and the merge only re-associates
 *    float64 sums (|Δ| ≤ 1e-9; the issue's bound). The number of shards is therefore at most the
 *    number of such batches + 1 (GPT-2 at batches of 8 rows: every batch; the tiny family at
 *    8 rows of 128 tokens: every 8 batches, 5 shards of the 40,960-token demo budget).
 * Boundaries follow from the run's settings and the corpus alone, so any machine computes any shard.
 *
 * The merge is merge.ts (it runs the pipeline, which uses this module). Every part records the settings of the whole run and a key over what the parts of one run share
 * (version, models, corpus, settings, plan), so that the merge refuses a foreign part by name.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { EngineError } from '../errors';
import { decodeCheckpoint, encodeCheckpoint, writeFileAtomic } from '../store';
import { readRunManifest, writeManifest, type Manifest, type PartInfo, type Settings, type ShardInfo } from '../run/manifest';
import { row, type Corpus } from '../corpus';
import { steps } from './cross/common';
import { mergeStates } from './stateMerge';
import type { AccumulatorSpec, AccumulatorState, AnalysisOptions, PartRequest } from './types';

/** A part's accumulator states, written once its pass has streamed. */
export const PART_STATE = 'part.ckpt';

/** The plan's passes in order: specs grouped by `pass`, those without one last. */
export function planPasses(specs: readonly AccumulatorSpec[]): AccumulatorSpec[][] {
  const keys = [...new Set(specs.map((s) => s.pass ?? Infinity))].sort((a, b) => a - b);
  const passes = keys.map((k) => specs.filter((s) => (s.pass ?? Infinity) === k));
  for (const s of passes.slice(0, -1).flat()) {
    if (!s.pack || !s.unpack) throw new EngineError(`accumulator ${s.name} finishes before the last pass but cannot pack its result`);
  }
  return passes;
}

/** Refuses a part whose settings another machine could not reproduce, or whose merge would not be exact. */
export function checkPartRequest(settings: Settings, opts: Pick<AnalysisOptions, 'refBlocks'>, req?: PartRequest): void {
  const flag = req?.block === undefined ? '--shard' : '--block';
  if (settings.mode !== 'exact') {
    throw new EngineError(`a split run (${flag}) needs mode exact: fast mode screens every block against its own sample, so its parts would not merge to the single run`);
  }
  if (req?.shard) {
    const { index, count } = req.shard;
    if (!(Number.isSafeInteger(count) && count >= 1 && Number.isSafeInteger(index) && index >= 0 && index < count)) {
      throw new EngineError(`--shard ${index}/${count}: give shard I of N as I/N with 0 ≤ I < N`);
    }
  }
  if (req?.block === undefined && req?.shard) return; // every pass of the plan: blocks need not be given
  if (!opts.refBlocks) {
    throw new EngineError(
      'a split run (--block) needs its blocks given (--block-size FIRST[,REST]): blocks the memory planner chose would depend on each machine\'s memory, and the parts would not fit together',
    );
  }
}

/** Kept tokens of each batch of `batchRows` rows (the pipeline's batches), from the corpus alone. */
export function keptPerBatch(corpus: Corpus, isKept: (id: number) => boolean, batchRows: number): number[] {
  const out: number[] = [];
  for (let r0 = 0; r0 < corpus.nRows; r0 += batchRows) {
    let n = 0;
    for (let r = r0; r < Math.min(r0 + batchRows, corpus.nRows); r++) for (const id of row(corpus, r)) if (isKept(id)) n++;
    out.push(n);
  }
  return out;
}

/**
 * The batches (> 0) where a single run adds the cross moments' fp32 partial into its float64
 * totals before the batch's first step (cross/dense.ts: before a step that would take the partial
 * past `chunk` tokens; steps of at most `chunk` tokens): where a token shard may begin.
 */
export function shardCuts(kept: readonly number[], chunk: number): number[] {
  const cuts: number[] = [];
  let partial = 0;
  kept.forEach((k, b) => {
    const st = steps(0, k, chunk);
    const first = st[0] ? st[0][1] - st[0][0] : 0;
    if (b > 0 && (partial === 0 || (first > 0 && partial + first > chunk))) cuts.push(b);
    for (const [s0, s1] of st) {
      if (partial + (s1 - s0) > chunk) partial = 0;
      partial += s1 - s0;
    }
  });
  return cuts;
}

/** Shard `index` of `count`: batches between cuts spread evenly over the cuts (parts' file comment). */
export function shardBatches(nBatches: number, cuts: readonly number[], index: number, count: number, chunk: number): [number, number] {
  if (count > cuts.length + 1) {
    throw new EngineError(
      `--shard ${index}/${count}: this run's corpus splits into at most ${cuts.length + 1} token shard${cuts.length ? 's' : ''}: a shard must begin where a single run adds ` +
        `the cross moments' fp32 partial sums into float64 (every ${chunk} kept tokens; ${nBatches} batches here), or the merge would not equal the single run; give N ≤ ${cuts.length + 1}, or more tokens`,
    );
  }
  const at = (i: number): number => (i === 0 ? 0 : i === count ? nBatches : cuts[Math.floor((i * (cuts.length + 1)) / count) - 1]!);
  return [at(index), at(index + 1)];
}

/** The shard's batches and rows, from the corpus and the run's settings alone. */
export function shardInfo(corpus: Corpus, isKept: (id: number) => boolean, batchRows: number, chunk: number, index: number, count: number): ShardInfo {
  const kept = keptPerBatch(corpus, isKept, batchRows);
  const batches = shardBatches(kept.length, shardCuts(kept, chunk), index, count, chunk);
  return { index, count, batches, rows: [batches[0] * batchRows, Math.min(batches[1] * batchRows, corpus.nRows)] };
}

/** Settings every machine records the same (threads and the execution provider are each machine's own). */
function sharedSettings(s: Settings): Omit<Settings, 'threads' | 'threadsUsed' | 'executionProvider'> {
  const { threads: _t, threadsUsed: _u, executionProvider: _p, ...rest } = s;
  return rest;
}

/** What the parts of one run share, by name: the merge says which of these a foreign part differs in. */
export function partFacets(m: Pick<Manifest, 'software' | 'models' | 'corpus' | 'settings'> & { part?: Pick<PartInfo, 'plan' | 'blocks' | 'shard'> }): Record<string, unknown> {
  return {
    version: m.software['universal-neurons'],
    models: m.models.map((x) => ({ label: x.label, config: x.config_sha256, weights: x.safetensors_sha256, tokenizer: x.tokenizer_sha256 ?? x.vocab_sha256 })),
    corpus: m.corpus.hash,
    settings: sharedSettings(m.settings),
    plan: m.part?.plan ?? {},
    blocks: m.part?.blocks,
    // Token shards: how many (shards of N and of M do not fit together).
    shards: m.part?.shard?.count ?? 1,
  };
}

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );

export function partInfo(m: Manifest, req: PartRequest, blocks: number, shard?: ShardInfo): PartInfo {
  const plan = req.plan ?? {};
  const key = createHash('sha256').update(canonical(partFacets({ ...m, part: { plan, blocks, ...(shard ? { shard } : {}) } }))).digest('hex');
  return { ...(req.block !== undefined ? { block: req.block } : {}), blocks, key, plan, ...(shard ? { shard } : {}) };
}

/** A part's name in messages: `block J`, `shard I/N`, or both. */
export function partName(p: Pick<PartInfo, 'block' | 'shard'>): string {
  const shard = p.shard ? `shard ${p.shard.index}/${p.shard.count}` : '';
  return p.block === undefined ? shard : `block ${p.block}${shard ? `, ${shard}` : ''}`;
}

interface PartMeta {
  corpusHash: string;
  batchRows: number;
  nBatches: number;
}

/** What a part's state file covers: per pass, its accumulators and the token shards summed into them. */
interface Coverage {
  passes: number[];
  /** pass → shard indices (ascending); a part without shards covers shard 0 of 1. */
  cover: Record<string, number[]>;
  /** pass → the accumulator names of the pass. */
  names: Record<string, string[]>;
  shardCount: number;
}

type PartState = Coverage & { meta: PartMeta; states: Record<string, AccumulatorState> };

/** The passes a part folder holds state for, which shards of them, and the states (by accumulator name). */
export function readPartState(dir: string): PartState | undefined {
  const p = join(dir, PART_STATE);
  if (!fs.existsSync(p)) return undefined;
  const b = fs.readFileSync(p);
  const ck = decodeCheckpoint(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), p);
  const passes = ck.meta.passes;
  if (!Array.isArray(passes) || !passes.every((x) => Number.isSafeInteger(x))) throw new EngineError(`${p} names no passes; recompute the part`, p);
  const m = ck.meta as Record<string, unknown>;
  // Parts written before token shards: each pass whole (shard 0 of 1), its names unknown (all states).
  const cover = (m.cover as Record<string, number[]> | undefined) ?? Object.fromEntries((passes as number[]).map((x) => [String(x), [0]]));
  const names = (m.names as Record<string, string[]> | undefined) ?? {};
  return { passes: passes as number[], cover, names, shardCount: typeof m.shardCount === 'number' ? m.shardCount : 1, meta: ck.meta as unknown as PartMeta, states: ck.states };
}

function writeState(dir: string, meta: PartMeta, c: Coverage, states: Record<string, AccumulatorState>): void {
  writeFileAtomic(join(dir, PART_STATE), encodeCheckpoint({ nextBatch: meta.nBatches, meta: { ...meta, passes: c.passes, cover: c.cover, names: c.names, shardCount: c.shardCount }, states }));
}

/** Adds `pass`'s states (of `shard`, if a token shard) to the part's state file (atomically: a killed write leaves the old file). */
export function writePartState(dir: string, pass: number, meta: PartMeta, states: Record<string, AccumulatorState>, shard?: Pick<ShardInfo, 'index' | 'count'>): void {
  const old = readPartState(dir);
  const passes = [...new Set([...(old?.passes ?? []), pass])].sort((a, b) => a - b);
  const c: Coverage = {
    passes,
    cover: { ...(old?.cover ?? {}), [String(pass)]: [shard?.index ?? 0] },
    names: { ...(old?.names ?? {}), [String(pass)]: Object.keys(states) },
    shardCount: shard?.count ?? 1,
  };
  writeState(dir, meta, c, { ...(old?.states ?? {}), ...states });
}

// ---------------------------------------------------------------------------------------------
// Merge

/** A part folder as the merge reads it. */
interface Part {
  dir: string;
  manifest: Manifest;
  passes: number[];
  cover: Record<string, number[]>;
}

function readPart(dir: string): Part {
  const path = join(dir, 'manifest.json');
  if (!fs.existsSync(path)) throw new EngineError(`${dir} is not a part of a split run: it has no manifest.json`, dir);
  const m = readRunManifest(dir);
  if (!m.part) throw new EngineError(`${dir} is a whole run, not a part of a split run (its manifest has no "part")`, dir);
  if (m.status !== 'complete') {
    throw new EngineError(`part ${dir} (${partName(m.part)}) is ${m.status}, not complete${m.reason ? ` (${m.reason})` : ''}; finish it with: universal-neurons analyze --resume ${dir}`, dir);
  }
  const st = readPartState(dir);
  if (!st) throw new EngineError(`part ${dir} has no ${PART_STATE}; recompute it with: universal-neurons analyze --resume ${dir}`, join(dir, PART_STATE));
  if (st.meta.corpusHash !== m.corpus.hash) throw new EngineError(`${join(dir, PART_STATE)} belongs to another corpus than its manifest`, join(dir, PART_STATE));
  return { dir, manifest: m, passes: st.passes, cover: st.cover };
}

/**
 * Checks that `dirs` are the parts of one run, every pass and token shard once, and returns
 * them. Throws naming the offending part: foreign (and in what), duplicated, or what is missing.
 */
export function checkParts(dirs: readonly string[], partial = false): Part[] {
  if (dirs.length === 0) throw new EngineError('merge: no parts given');
  const parts = dirs.map((d) => readPart(resolve(d)));
  const first = parts[0]!;
  const want = partFacets(first.manifest);
  for (const p of parts.slice(1)) {
    if (p.manifest.part!.key === first.manifest.part!.key) continue;
    const got = partFacets(p.manifest);
    const what = Object.keys(want).filter((k) => canonical(want[k]) !== canonical(got[k]));
    throw new EngineError(
      `part ${p.dir} belongs to another run than ${first.dir}: its ${what.length ? what.join(', ') : 'key'} differ${what.length === 1 ? 's' : ''}`,
      p.dir,
    );
  }
  const shards = first.manifest.part!.shard?.count ?? 1;
  const owner = new Map<string, string>();
  const cell = (b: number, i: number): string => (shards > 1 ? `block ${b}, shard ${i}/${shards}` : `block ${b}`);
  for (const p of parts) {
    for (const b of p.passes) {
      for (const i of p.cover[String(b)] ?? [0]) {
        const o = owner.get(cell(b, i));
        if (o !== undefined) throw new EngineError(`${cell(b, i)} is in two parts: ${o} and ${p.dir}; give each ${shards > 1 ? 'block and shard' : 'block'} once`, p.dir);
        owner.set(cell(b, i), p.dir);
      }
    }
  }
  const blocks = first.manifest.part!.blocks;
  const all = Array.from({ length: blocks }, (_, b) => b);
  if (shards === 1) {
    const missing = all.filter((b) => !owner.has(cell(b, 0)));
    if (missing.length && !partial) {
      throw new EngineError(`the parts hold ${owner.size} of ${blocks} blocks; missing: --block ${missing.join(', ')} (compute them with analyze … --block J, then merge again)`);
    }
    return parts;
  }
  // Token shards: a shard missing from every block is named as one shard, else block by block.
  const missing: string[] = [];
  for (let i = 0; i < shards; i++) {
    const gone = all.filter((b) => !owner.has(cell(b, i)));
    if (gone.length === blocks) missing.push(`--shard ${i}/${shards}`);
    else missing.push(...gone.map((b) => `--block ${b} --shard ${i}/${shards}`));
  }
  if (missing.length && !partial) {
    throw new EngineError(`the parts hold ${owner.size} of ${blocks * shards} blocks × token shards; missing: ${missing.join('; ')} (compute them with analyze …, then merge again)`);
  }
  return parts;
}

/**
 * The parts' states joined: per pass, the states of its token shards merged accumulator by
 * accumulator, in shard order (stateMerge.ts), so that the result does not depend on the order
 * the parts are given in.
 */
function gatherStates(parts: readonly Part[]): Coverage & { states: Record<string, AccumulatorState>; meta: PartMeta } {
  const read = parts.map((p) => readPartState(p.dir)!);
  const passes = [...new Set(read.flatMap((r) => r.passes))].sort((a, b) => a - b);
  const states: Record<string, AccumulatorState> = {};
  const cover: Record<string, number[]> = {};
  const names: Record<string, string[]> = {};
  for (const b of passes) {
    const k = String(b);
    const holders = read.filter((r) => r.passes.includes(b)).sort((x, y) => Math.min(...x.cover[k]!) - Math.min(...y.cover[k]!));
    cover[k] = holders.flatMap((r) => r.cover[k]!).sort((x, y) => x - y);
    // Parts written before token shards name no accumulators: one holder, all its states.
    const pass = holders[0]!.names[k];
    if (!pass) {
      if (holders.length > 1) throw new EngineError(`block ${b}: its parts name no accumulators, so their token shards cannot be merged; recompute them`);
      Object.assign(states, holders[0]!.states);
      continue;
    }
    names[k] = pass;
    for (const name of pass) {
      states[name] = mergeStates(
        name,
        holders.map((r) => {
          const st = r.states[name];
          if (!st) throw new EngineError(`a part of block ${b} holds no state for ${name}; recompute it`);
          return st;
        }),
      );
    }
  }
  return { passes, cover, names, shardCount: read[0]!.shardCount, states, meta: read[0]!.meta };
}

/** Every accumulator's state of a complete set of parts, token shards merged (merge.ts finishes them). */
export function partStates(dirs: readonly string[]): { parts: Part[]; states: Record<string, AccumulatorState> } {
  const parts = checkParts(dirs);
  return { parts, states: gatherStates(parts).states };
}

/**
 * Joins parts of one run into one part holding all their passes and shards (`merge --partial`),
 * token shards of a pass merged: it merges like any other, a tree reduction, for parts spread
 * over several file systems.
 */
export function combineParts(dirs: readonly string[], out: string): { dir: string; passes: number[]; shards: number[] } {
  const parts = checkParts(dirs, true);
  const dir = resolve(out);
  if (fs.existsSync(join(dir, 'manifest.json'))) throw new EngineError(`${dir} already holds a run or part (manifest.json); choose another --out`, dir);
  fs.mkdirSync(dir, { recursive: true });
  const g = gatherStates(parts);
  // The states first: a part folder counts once its manifest is there.
  writeState(dir, g.meta, g, g.states);
  const first = parts[0]!;
  const shards = [...new Set(Object.values(g.cover).flat())].sort((a, b) => a - b);
  const info: PartInfo = { ...first.manifest.part! };
  if (parts.some((p) => p.manifest.part!.block !== info.block)) delete info.block;
  if (info.shard && parts.some((p) => p.manifest.part!.shard?.index !== info.shard!.index)) {
    // Several shards: rows and batches from the first to the last (the cover says which).
    const sh = parts.map((p) => p.manifest.part!.shard!);
    info.shard = {
      ...info.shard,
      index: Math.min(...sh.map((x) => x.index)),
      batches: [Math.min(...sh.map((x) => x.batches[0])), Math.max(...sh.map((x) => x.batches[1]))],
      rows: [Math.min(...sh.map((x) => x.rows[0])), Math.max(...sh.map((x) => x.rows[1]))],
    };
  }
  const m: Manifest = { ...first.manifest, id: basename(dir), part: info, updated: new Date().toISOString() };
  writeManifest(dir, m);
  return { dir, passes: g.passes, shards };
}
