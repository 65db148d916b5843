#!/usr/bin/env node
/** universal-neurons CLI entry (bundled to dist/cli.js). Formatting only; the engine does the work. */
// First: onnxruntime's telemetry must be off before any session exists (see ortTelemetry.ts).
import '../engine/ortTelemetry';
import { CancelledError, type CancellationSignal } from '../engine/errors';
import { errorLine } from '../format';
import { runActivations } from './activations';
import { runAnalyze, runSummary, runTable } from './analyze';
import { commandHelp, HELP, parseCli, UsageError, type Command } from './args';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { hugePagesEnv } from '../engine/hugePages';
import { packageRoot } from '../locate';
import { runDemo } from './demo';
import { runDevelopment } from './development';
import { runIntervene } from './intervene';
import { PART_COMMANDS, runMerge, runPartsCommand, runStatus } from './parts';

const print = (line: string) => process.stdout.write(line + '\n');

/** The package's version (package.json above dist/cli.js, or above src/cli under tsx). */
function cliVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(packageRoot(__dirname), 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
const note = (line: string) => process.stderr.write(line + '\n');

async function main(argv: string[]): Promise<number> {
  let cmd: Command | { kind: 'parts' };
  try {
    // slurm parses its own arguments (it passes analyze's on to every part: slurm.ts).
    cmd = (PART_COMMANDS as readonly string[]).includes(argv[0] ?? '') ? { kind: 'parts' } : parseCli(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    note(`universal-neurons: ${e.message}`);
    note(`Try 'universal-neurons --help'.`);
    return 2;
  }
  if (cmd.kind === 'help') {
    process.stdout.write(cmd.command ? commandHelp(cmd.command) : HELP);
    return 0;
  }
  if (cmd.kind === 'version') {
    print(`universal-neurons ${cliVersion()}`);
    return 0;
  }
  // First Ctrl-C asks the engine to stop between steps; a second one kills as usual. Started
  // again with huge pages, a terminal's Ctrl-C arrives twice (from the terminal, and forwarded by
  // the first process, which must forward it for a signal sent to it alone): one second apart.
  let cancelled = false;
  const signal: CancellationSignal = { get cancelled() { return cancelled; } };
  let firstInt = -1;
  const onInt = (): void => {
    if (firstInt < 0) {
      firstInt = Date.now();
      cancelled = true;
    } else if (!(RELAUNCHED && Date.now() - firstInt < 1000)) {
      process.removeListener('SIGINT', onInt);
      process.kill(process.pid, 'SIGINT');
    }
  };
  process.on('SIGINT', onInt);
  try {
    // Before any model opens: a missing CUDA provider fails now, with how to install it. The
    // analysis (analyze, demo, development) runs in a worker, which checks and sets it itself.
    if ('executionProvider' in cmd && cmd.executionProvider) {
      const { checkExecutionProvider, setExecutionProvider } = await import('../engine/provider');
      await checkExecutionProvider(cmd.executionProvider);
      setExecutionProvider(cmd.executionProvider);
    }
    if (cmd.kind === 'parts') await runPartsCommand(argv, print);
    else if (cmd.kind === 'merge') await runMerge(cmd, print, note, signal);
    else if (cmd.kind === 'status') await runStatus(cmd, print);
    else if (cmd.kind === 'activations') await runActivations(cmd, print, signal);
    else if (cmd.kind === 'analyze') await runAnalyze({ ...cmd, topSummary: cmd.top }, print, note, signal);
    else if (cmd.kind === 'summary') await runSummary(cmd, print);
    else if (cmd.kind === 'table') await runTable(cmd, print);
    else if (cmd.kind === 'intervene') await runIntervene(cmd, print, signal);
    else if (cmd.kind === 'development') await runDevelopment(cmd, print, note, signal);
    else await runDemo(cmd, print, note, signal);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      note(`universal-neurons: ${e.message}`);
      return 2;
    }
    if (e instanceof CancelledError) {
      note('universal-neurons: interrupted');
      return 130;
    }
    note(`universal-neurons: error: ${errorLine(e)}`);
    return 1;
  }
}

// A reader that closes early (`… | head`) is not an error: stop quietly, as Unix tools do on
// SIGPIPE (Node ignores SIGPIPE and reports the closed pipe as an EPIPE on the next write).
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

/** Commands that forward models or run the analysis: they start again with huge pages (hugePages.ts). */
const HEAVY = new Set(['analyze', 'demo', 'development', 'merge', 'activations', 'intervene']);

/**
 * Runs this CLI again as a child with `env` and ends with its exit status. SIGINT, SIGTERM and
 * SIGHUP sent to this process go on to the child; the child ends itself at once (SIGKILL) when
 * this process is gone, so that killing this one stops the run as it would have without huge
 * pages (its last checkpoint stays resumable).
 */
function relaunch(env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...env, UN_PARENT_PID: String(process.pid) } });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    note(`universal-neurons: internal error: could not start again with huge pages (${e.message}); run with UN_HUGEPAGES=0`);
    process.exit(1);
  });
  child.on('exit', (code, sig) => process.exit(code ?? 128 + (sig ? (osConstants.signals[sig] ?? 1) : 1)));
}

/** Started again by relaunch(): the first process's pid, watched. */
const RELAUNCHED = Number(process.env.UN_PARENT_PID ?? 0) > 0;
if (RELAUNCHED) {
  const parent = Number(process.env.UN_PARENT_PID);
  // Not for what this process starts (a Slurm job's own CLI would watch the wrong parent).
  delete process.env.UN_PARENT_PID;
  // On a thread of its own: the main thread can be inside onnxruntime for seconds.
  new Worker(`setInterval(() => { if (process.ppid !== ${parent}) process.kill(process.pid, 'SIGKILL'); }, 50);`, { eval: true }).unref();
}

const env = !RELAUNCHED && HEAVY.has(process.argv[2] ?? '') ? hugePagesEnv() : undefined;
if (env) {
  relaunch(env);
} else {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      note(`universal-neurons: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 1;
    },
  );
}
