#!/usr/bin/env node
/** universal-neurons CLI entry (bundled to dist/cli.js). Formatting only; the engine does the work. */
// First: onnxruntime's telemetry must be off before any session exists (see ortTelemetry.ts).
import '../engine/ortTelemetry';
import { CancelledError, type CancellationSignal } from '../engine/errors';
import { errorLine } from '../format';
import { runActivations } from './activations';
import { runAnalyze, runSummary, runTable } from './analyze';
import { commandHelp, HELP, parseCli, UsageError, type Command } from './args';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
  // First Ctrl-C asks the engine to stop between steps; a second one kills as usual.
  let cancelled = false;
  const signal: CancellationSignal = { get cancelled() { return cancelled; } };
  process.once('SIGINT', () => (cancelled = true));
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    note(`universal-neurons: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
