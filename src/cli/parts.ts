/**
 * Split runs from the command line (issue #17): `merge` finishes the parts of a run, `status`
 * says where they stand, `slurm` writes the job scripts that compute them on a cluster (a Slurm
 * job array and a Kubernetes Indexed Job). The engine's side is src/engine/analysis/parts.ts.
 */
import * as fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EngineError, type CancellationSignal } from '../engine/errors';
import type { Print } from './activations';
import { commandHelp, type MergeCommand } from './args';
import { formatDuration, progressReporter } from './progress';

/** slurm parses its own arguments (it passes analyze's through to every part); merge and status are parseCli's. */
export const PART_COMMANDS = ['slurm'] as const;

/** The part folders of `args`: each a part, or a folder whose subfolders are parts. */
export function partFolders(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    const d = resolve(a);
    if (fs.existsSync(join(d, 'manifest.json')) || !fs.existsSync(d) || !fs.statSync(d).isDirectory()) {
      out.push(d);
      continue;
    }
    const subs = fs.readdirSync(d).sort().map((n) => join(d, n)).filter((p) => fs.existsSync(join(p, 'manifest.json')));
    if (subs.length === 0) throw new EngineError(`${d} holds no parts (no subfolder with a manifest.json)`, d);
    out.push(...subs);
  }
  return out;
}

export async function runPartsCommand(argv: string[], print: Print): Promise<void> {
  const [sub, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(sub!));
    return;
  }
  const { runSlurm } = await import('./slurm');
  return runSlurm(rest, print);
}

export async function runMerge(cmd: MergeCommand, print: Print, note: Print, signal: CancellationSignal): Promise<void> {
  const { parts: positionals, threads } = cmd;
  const values = { out: cmd.out, partial: cmd.partial };
  const { combineParts } = await import('../engine/analysis/parts');
  const { mergeParts } = await import('../engine/analysis/merge');
  if (values.partial) {
    const c = combineParts(partFolders(positionals), values.out as string);
    print(`wrote part ${c.dir} holding blocks ${c.passes.join(', ')}; merge it with the others as any part`);
    return;
  }
  const progress = progressReporter(process.stderr);
  const parts = partFolders(positionals);
  note(`merging ${parts.length} parts`);
  try {
    const r = await mergeParts(parts, resolve(values.out as string), (p) => progress.update(p), signal, threads);
    progress.end();
    print(`wrote ${r.runDir} in ${formatDuration(r.manifest.timings.total_s)} from ${parts.length} parts`);
    print('');
    const { runSummaryOf } = await import('./analyze');
    await runSummaryOf(r.runDir, print, 15);
  } catch (e) {
    progress.end();
    throw e;
  }
}

/** One line per part: block, state, tokens streamed of its pass; then the blocks missing. */
export async function partsStatus(dir: string): Promise<{ lines: string[]; missing: number[]; failed: number[]; done: number; blocks: number }> {
  const { readJson } = await import('../engine/store');
  const { statusText, runLiveness } = await import('../engine/run/liveness');
  type M = import('../engine/run/manifest').Manifest;
  const lines: string[] = [];
  const seen = new Set<number>();
  const failed: number[] = [];
  let blocks = 0;
  let done = 0;
  const folders = fs.existsSync(dir) ? fs.readdirSync(dir).sort().map((n) => join(dir, n)) : [];
  for (const p of folders) {
    if (!fs.existsSync(join(p, 'manifest.json'))) continue;
    const m = readJson<M>(join(p, 'manifest.json'));
    if (!m.part) continue;
    blocks = Math.max(blocks, m.part.blocks);
    seen.add(m.part.block);
    const total = m.corpus.rows * m.corpus.row_length;
    const tokens = `${m.progress.tokens_done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} tokens`;
    let state: string;
    if (m.status === 'complete') {
      state = 'done';
      done++;
    } else if (m.status === 'running' && runLiveness(m) !== 'dead') state = 'running'; // another host's: taken as running
    else {
      state = m.status === 'running' ? 'interrupted' : m.status;
      failed.push(m.part.block);
    }
    lines.push(`block ${m.part.block}: ${state}, ${tokens} (${p})${state === 'done' || state === 'running' ? '' : `: it ${statusText(m, `universal-neurons analyze --resume ${p}`)}`}`);
  }
  const missing = Array.from({ length: blocks }, (_, i) => i).filter((i) => !seen.has(i));
  // A part whose job stopped before its folder existed (bad input is refused before any work)
  // has only its Slurm log (slurm.ts writes DIR/logs/part-%a.out beside DIR/parts): show its end.
  for (const i of missing) {
    const log = join(dirname(dir), 'logs', `part-${i}.out`);
    if (!fs.existsSync(log)) continue;
    const last = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).pop();
    lines.push(`block ${i}: no part folder; its job's log ${log} ends: ${last ?? '(empty)'}`);
  }
  return { lines, missing, failed, done, blocks };
}

export async function runStatus(cmd: { dir: string }, print: Print): Promise<void> {
  const dir = resolve(cmd.dir);
  if (!fs.existsSync(dir)) throw new EngineError(`${dir} does not exist`, dir);
  const s = await partsStatus(dir);
  if (s.blocks === 0) {
    print(`${dir}: no parts yet`);
    return;
  }
  for (const l of s.lines) print(l);
  print(`${s.done} of ${s.blocks} parts done` + (s.missing.length ? `; not started: block ${s.missing.join(', ')}` : '') + (s.failed.length ? `; to rerun: block ${s.failed.join(', ')}` : ''));
}
