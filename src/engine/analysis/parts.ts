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
 * Token shards (a pass's tokens over machines) are not here: their states would have to be
 * summed, and two accumulators are not sums of their batches (the histograms' range is fixed by
 * the first batch, the examples' interval reservoirs draw from one RNG in corpus order).
 *
 * The merge is merge.ts (it runs the pipeline, which uses this module). Every part records the settings of the whole run and a key over what the parts of one run share
 * (version, models, corpus, settings, plan), so that the merge refuses a foreign part by name.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { EngineError } from '../errors';
import { decodeCheckpoint, encodeCheckpoint, writeFileAtomic } from '../store';
import { readRunManifest, writeManifest, type Manifest, type PartInfo, type Settings } from '../run/manifest';
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
export function checkPartRequest(settings: Settings, opts: Pick<AnalysisOptions, 'refBlocks'>): void {
  if (settings.mode !== 'exact') {
    throw new EngineError('a split run (--block) needs mode exact: fast mode screens every block against its own sample, so its parts would not merge to the single run');
  }
  if (!opts.refBlocks) {
    throw new EngineError(
      'a split run (--block) needs its blocks given (--block-size FIRST[,REST]): blocks the memory planner chose would depend on each machine\'s memory, and the parts would not fit together',
    );
  }
}

/** Settings every machine records the same (threads and the execution provider are each machine's own). */
function sharedSettings(s: Settings): Omit<Settings, 'threads' | 'threadsUsed' | 'executionProvider'> {
  const { threads: _t, threadsUsed: _u, executionProvider: _p, ...rest } = s;
  return rest;
}

/** What the parts of one run share, by name: the merge says which of these a foreign part differs in. */
export function partFacets(m: Pick<Manifest, 'software' | 'models' | 'corpus' | 'settings'> & { part?: Pick<PartInfo, 'plan' | 'blocks'> }): Record<string, unknown> {
  return {
    version: m.software['universal-neurons'],
    models: m.models.map((x) => ({ label: x.label, config: x.config_sha256, weights: x.safetensors_sha256, tokenizer: x.tokenizer_sha256 ?? x.vocab_sha256 })),
    corpus: m.corpus.hash,
    settings: sharedSettings(m.settings),
    plan: m.part?.plan ?? {},
    blocks: m.part?.blocks,
  };
}

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );

export function partInfo(m: Manifest, req: PartRequest, blocks: number): PartInfo {
  const plan = req.plan ?? {};
  const key = createHash('sha256').update(canonical(partFacets({ ...m, part: { plan, blocks } }))).digest('hex');
  return { block: req.block, blocks, key, plan };
}

interface PartMeta {
  corpusHash: string;
  batchRows: number;
  nBatches: number;
}

/** The passes a part folder holds state for, and the states (by accumulator name). */
export function readPartState(dir: string): { passes: number[]; meta: PartMeta; states: Record<string, AccumulatorState> } | undefined {
  const p = join(dir, PART_STATE);
  if (!fs.existsSync(p)) return undefined;
  const b = fs.readFileSync(p);
  const ck = decodeCheckpoint(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), p);
  const passes = ck.meta.passes;
  if (!Array.isArray(passes) || !passes.every((x) => Number.isSafeInteger(x))) throw new EngineError(`${p} names no passes; recompute the part`, p);
  return { passes: passes as number[], meta: ck.meta as unknown as PartMeta, states: ck.states };
}

/** Adds `pass`'s states to the part's state file (atomically: a killed write leaves the old file). */
export function writePartState(dir: string, pass: number, meta: PartMeta, states: Record<string, AccumulatorState>): void {
  const old = readPartState(dir);
  const passes = [...new Set([...(old?.passes ?? []), pass])].sort((a, b) => a - b);
  writeFileAtomic(join(dir, PART_STATE), encodeCheckpoint({ nextBatch: meta.nBatches, meta: { ...meta, passes }, states: { ...(old?.states ?? {}), ...states } }));
}

// ---------------------------------------------------------------------------------------------
// Merge

/** A part folder as the merge reads it. */
interface Part {
  dir: string;
  manifest: Manifest;
  passes: number[];
}

function readPart(dir: string): Part {
  const path = join(dir, 'manifest.json');
  if (!fs.existsSync(path)) throw new EngineError(`${dir} is not a part of a split run: it has no manifest.json`, dir);
  const m = readRunManifest(dir);
  if (!m.part) throw new EngineError(`${dir} is a whole run, not a part of a split run (its manifest has no "part")`, dir);
  if (m.status !== 'complete') {
    throw new EngineError(`part ${dir} (block ${m.part.block}) is ${m.status}, not complete${m.reason ? ` (${m.reason})` : ''}; finish it with: universal-neurons analyze --resume ${dir}`, dir);
  }
  const st = readPartState(dir);
  if (!st) throw new EngineError(`part ${dir} has no ${PART_STATE}; recompute it with: universal-neurons analyze --resume ${dir}`, join(dir, PART_STATE));
  if (st.meta.corpusHash !== m.corpus.hash) throw new EngineError(`${join(dir, PART_STATE)} belongs to another corpus than its manifest`, join(dir, PART_STATE));
  return { dir, manifest: m, passes: st.passes };
}

/**
 * Checks that `dirs` are the parts of one run, every pass once, and returns them with the pass
 * each holds. Throws naming the offending part: foreign (and in what), duplicated, or the blocks missing.
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
  const owner = new Map<number, string>();
  for (const p of parts) {
    for (const b of p.passes) {
      const o = owner.get(b);
      if (o !== undefined) throw new EngineError(`block ${b} is in two parts: ${o} and ${p.dir}; give each block once`, p.dir);
      owner.set(b, p.dir);
    }
  }
  const blocks = first.manifest.part!.blocks;
  const missing = Array.from({ length: blocks }, (_, i) => i).filter((i) => !owner.has(i));
  if (missing.length && !partial) {
    throw new EngineError(`the parts hold ${owner.size} of ${blocks} blocks; missing: --block ${missing.join(', ')} (compute them with analyze … --block J, then merge again)`);
  }
  return parts;
}

/**
 * Joins parts of one run into one part holding all their passes (`merge --partial`), which merges
 * like any other: a tree reduction, for parts spread over several file systems.
 */
export function combineParts(dirs: readonly string[], out: string): { dir: string; passes: number[] } {
  const parts = checkParts(dirs, true);
  const dir = resolve(out);
  if (fs.existsSync(join(dir, 'manifest.json'))) throw new EngineError(`${dir} already holds a run or part (manifest.json); choose another --out`, dir);
  fs.mkdirSync(dir, { recursive: true });
  const states: Record<string, AccumulatorState> = {};
  const passes: number[] = [];
  for (const p of parts) {
    const st = readPartState(p.dir)!;
    Object.assign(states, st.states);
    passes.push(...st.passes);
  }
  passes.sort((a, b) => a - b);
  const first = parts[0]!;
  const meta = readPartState(first.dir)!.meta;
  // The states first: a part folder counts once its manifest is there.
  writeFileAtomic(join(dir, PART_STATE), encodeCheckpoint({ nextBatch: meta.nBatches, meta: { ...meta, passes }, states }));
  const m: Manifest = { ...first.manifest, id: basename(dir), part: { ...first.manifest.part!, block: passes[0]! }, updated: new Date().toISOString() };
  writeManifest(dir, m);
  return { dir, passes };
}
