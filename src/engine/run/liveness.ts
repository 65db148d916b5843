/**
 * Whether a run whose manifest says `running` is really running. The pipeline records the pid and
 * host of the process that runs it; on the same host, `process.kill(pid, 0)` tells whether that
 * process still exists. A run killed by `kill -9`, a crash or a power cut keeps `running` in its
 * manifest; readers (the CLI's summary, the editor's Runs view) say it was interrupted, and how
 * to resume it, instead of "is running".
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * `alive`: the recorded process exists on this host; `dead`: it does not (killed or crashed);
 * `unknown`: the manifest records no pid (an older run) or another host ran it.
 */
export type RunLiveness = 'alive' | 'dead' | 'unknown';

export function runLiveness(m: { pid?: number; hostname?: string }, host: string = hostname()): RunLiveness {
  if (m.pid === undefined || !Number.isSafeInteger(m.pid) || m.pid <= 0 || m.hostname === undefined) return 'unknown';
  if (m.hostname !== host) return 'unknown';
  if (m.pid === process.pid) return 'alive';
  return processAlive(m.pid) ? 'alive' : 'dead';
}

/**
 * Whether process `pid` exists and has not ended. A zombie has ended: a CLI started again with
 * huge pages (cli/main.ts) and killed with its first process is reaped by init, which may take
 * a second, and `kill(pid, 0)` still finds it until then (Linux: its /proc state is Z or X).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists, owned by another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // No /proc (not Linux), or it ended just now.
    return process.platform !== 'linux';
  }
}

/** How a run that is not complete reads to a person, with what to do next (`resume`: the command). */
export function statusText(m: { status: string; pid?: number; hostname?: string; error?: string; reason?: string }, resume: string): string {
  if (m.status === 'running') {
    const l = runLiveness(m);
    if (l === 'dead') return `was interrupted (its process ${m.pid} is gone: killed or crashed); resume it with: ${resume}`;
    if (l === 'alive') return `is still running (process ${m.pid}); wait for it, or stop it and resume later with: ${resume}`;
    return `is still running, or was killed${m.hostname ? ` (it ran on ${m.hostname})` : ''}; if it was killed, resume it with: ${resume}`;
  }
  if (m.status === 'cancelled') return `was cancelled${m.reason ? ` (${m.reason.replace(/; resume it with:.*$/, '')})` : ''}; resume it with: ${resume}`;
  if (m.status === 'failed') return `failed${m.error ? `: ${m.error}` : ''}; after fixing the cause, resume it with: ${resume}`;
  return `is ${m.status}`;
}
