/**
 * Split runs from the command line (issue #17): `merge` finishes the parts of a run, `status`
 * says where they stand, `slurm` writes the job scripts that compute them on a cluster (a Slurm
 * job array and a Kubernetes Indexed Job). The engine's side is src/engine/analysis/parts.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
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
    const sh = c.shards.length > 1 || c.shards[0] !== 0 ? ` of token shards ${c.shards.join(', ')}` : '';
    print(`wrote part ${c.dir} holding blocks ${c.passes.join(', ')}${sh}; merge it with the others as any part`);
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

/**
 * How part J's job ended, from DIR/logs/part-J.exit (the line the job script's EXIT trap writes:
 * `exit CODE on HOST[, Slurm job ID], DATE`; slurm.ts). Undefined while none was written: never
 * started, still running, or the shell itself SIGKILLed.
 */
export function partEnd(logs: string, block: number): { code: number; at?: number; text: string } | undefined {
  const f = join(logs, `part-${block}.exit`);
  if (!fs.existsSync(f)) return undefined;
  const line = fs.readFileSync(f, 'utf8').trim();
  const m = /^exit (\d+)(.*)$/.exec(line);
  if (!m) return undefined;
  const code = Number(m[1]);
  // 128+N: killed by signal N (bash's convention), e.g. 137 SIGKILL (out of memory), 152 SIGXCPU.
  const sig = code > 128 ? Object.entries(os.constants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  const at = /, (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/.exec(line)?.[1];
  return { code, at: at ? Date.parse(at) : undefined, text: `its job exited with status ${code}${sig ? ` (${sig})` : ''}${m[2]}` };
}

/**
 * One line per part: its block and/or token shard, state, tokens streamed of its pass (a token
 * shard: of its own rows); then the parts missing, and those whose job failed before writing
 * anything. Parts are numbered as slurm.ts numbers its tasks (`taskIndex`): `missing` and
 * `failed` are those numbers, `names` says what each is (block J, shard I/N, or both).
 */
export async function partsStatus(dir: string): Promise<{ lines: string[]; missing: number[]; failed: number[]; done: number; blocks: number; names: Record<number, string> }> {
  const { readRunManifest } = await import('../engine/run/manifest');
  const { statusText, runLiveness } = await import('../engine/run/liveness');
  const { partName } = await import('../engine/analysis/parts');
  const lines: string[] = [];
  const seen = new Set<number>();
  const failed: number[] = [];
  // slurm.ts writes DIR/logs (the jobs' logs and exit lines) beside DIR/parts.
  const logs = join(dirname(dir), 'logs');
  let blocks = 0;
  let done = 0;
  // Token shards: N, and whether the parts are blocks × shards (else shards alone).
  let shards = 1;
  let byBlock = true;
  const names: Record<number, string> = {};
  const folders = fs.existsSync(dir) ? fs.readdirSync(dir).sort().map((n) => join(dir, n)) : [];
  for (const p of folders) {
    if (!fs.existsSync(join(p, 'manifest.json'))) continue;
    const m = readRunManifest(p);
    if (!m.part) continue;
    const sh = m.part.shard;
    if (sh) {
      shards = sh.count;
      byBlock = m.part.block !== undefined;
    }
    const J = taskIndex(m.part);
    blocks = Math.max(blocks, (byBlock ? m.part.blocks : 1) * shards);
    seen.add(J);
    names[J] = partName(m.part);
    const total = sh ? (sh.rows[1] - sh.rows[0]) * m.corpus.row_length : m.corpus.rows * m.corpus.row_length;
    const tokens = `${m.progress.tokens_done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} tokens`;
    const resume = `universal-neurons analyze --resume ${p}`;
    // A failed job's exit line, unless the part was resumed since (by hand: the job script removes it).
    const e = m.status === 'complete' ? undefined : partEnd(logs, J);
    const end = e && e.code !== 0 && !(e.at !== undefined && e.at < Date.parse(m.updated) - 1000) ? e : undefined;
    // Slurm's own word on why, when it has one, is the log's last line ("CANCELLED … DUE TO TIME LIMIT", an oom_kill event).
    const tail = end ? logTail(logs, J) : '';
    const live = m.status === 'running' ? runLiveness(m) : undefined;
    let state: string;
    let why = '';
    if (m.status === 'complete') {
      state = 'done';
      done++;
    } else if (live === 'alive' || (live === 'unknown' && !end)) state = 'running'; // another host's: taken as running
    else if (live === 'unknown') {
      // Killed where its manifest could not say so (out of memory, a limit, on another node).
      state = 'failed';
      why = `${end!.text}${tail ? `; ${tail}` : ''}; resume it with: ${resume}`;
    } else {
      state = m.status === 'running' ? 'interrupted' : m.status;
      why = `it ${statusText(m, resume)}${end ? ` (${end.text}${tail ? `; ${tail}` : ''})` : ''}`;
    }
    if (state !== 'done' && state !== 'running') failed.push(J);
    lines.push(`${names[J]}: ${state}, ${tokens} (${p})${why ? `: ${why}` : ''}`);
  }
  // Parts whose jobs all stopped before writing anything leave no manifest: the job scripts say how many there are.
  blocks = Math.max(blocks, scriptedParts(dirname(dir)));
  const absent = Array.from({ length: blocks }, (_, i) => i).filter((i) => !seen.has(i));
  for (const i of absent) names[i] = shards === 1 ? `block ${i}` : partName({ ...(byBlock ? { block: Math.floor(i / shards) } : {}), shard: { index: i % shards, count: shards, batches: [0, 0], rows: [0, 0] } });
  const missing: number[] = [];
  // A part whose job stopped before its folder existed (bad input is refused before any work, a
  // limit can kill it while it opens the models) has only its exit line and its Slurm log.
  for (const i of absent) {
    const end = partEnd(logs, i);
    const tail = logTail(logs, i);
    if (end && end.code !== 0) {
      failed.push(i);
      lines.push(`${names[i]}: failed before its part folder existed: ${end.text}${tail ? `; ${tail}` : ''}`);
      continue;
    }
    missing.push(i);
    if (tail) lines.push(`${names[i]}: no part folder; ${tail}`);
  }
  return { lines, missing, failed: failed.sort((a, b) => a - b), done, blocks, names };
}

/** The task of a part in slurm.ts' numbering: block J of shard I is J·N + I (blocks alone: J; shards alone: I). */
export function taskIndex(p: { block?: number; shard?: { index: number; count: number } }): number {
  return (p.block ?? 0) * (p.shard?.count ?? 1) + (p.shard?.index ?? 0);
}

/** "its job's log L ends: LINE" for part J's Slurm log (slurm.ts: DIR/logs/part-J.out), or '' without one. */
function logTail(logs: string, block: number): string {
  const log = join(logs, `part-${block}.out`);
  if (!fs.existsSync(log)) return '';
  const last = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).pop();
  return `its job's log ${log} ends: ${last ?? '(empty)'}`;
}

/** The number of parts the job scripts of DIR (slurm.ts) run; 0 without them. */
function scriptedParts(dir: string): number {
  for (const [f, re] of [['analyze.sbatch', /^#SBATCH --array=0-(\d+)$/m], ['k8s-parts.yaml', /^ {2}completions: (\d+)$/m]] as const) {
    const p = join(dir, f);
    const m = fs.existsSync(p) ? re.exec(fs.readFileSync(p, 'utf8')) : null;
    if (m) return Number(m[1]) + (f === 'analyze.sbatch' ? 1 : 0);
  }
  return 0;
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
  const named = (xs: number[]): string => (xs.every((i) => s.names[i] === `block ${i}`) ? `block ${xs.join(', ')}` : xs.map((i) => `${s.names[i]} (task ${i})`).join('; '));
  print(`${s.done} of ${s.blocks} parts done` + (s.missing.length ? `; not started: ${named(s.missing)}` : '') + (s.failed.length ? `; failed: ${named(s.failed)}` : ''));
  const top = dirname(dir);
  if (s.failed.length && fs.existsSync(join(top, 'analyze.sbatch'))) {
    // The first merge job waits forever (afterok, DependencyNeverSatisfied): a new one follows the rerun.
    print(`rerun only those parts, then the merge (after scancel of the merge job still pending):`);
    print(`  cd ${top} && j=$(sbatch --parsable --array=${s.failed.join(',')} analyze.sbatch) && sbatch --dependency=afterok:\${j%%;*} merge.sbatch`);
  }
}
