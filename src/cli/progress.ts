/**
 * Progress on stderr: on a terminal one line rewritten in place (\r); otherwise (a log file, CI)
 * a plain line at most every `intervalMs`, so logs stay readable.
 */
import type { Progress } from '../engine/analysis/pipeline';

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const int = (x: number) => Math.round(x).toLocaleString('en-US');

export function progressLine(p: Progress, width = 24): string {
  if (p.phase !== 'stream' || p.tokensTotal === undefined || p.tokensDone === undefined) return p.message ?? p.phase;
  const frac = p.tokensTotal ? p.tokensDone / p.tokensTotal : 1;
  const filled = Math.round(frac * width);
  const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
  return (
    `[${bar}] ${(100 * frac).toFixed(0).padStart(3)}%  ${int(p.tokensDone)}/${int(p.tokensTotal)} tokens` +
    `  ${int(p.tokensPerSec ?? 0)} tok/s  ETA ${formatDuration(p.etaSec ?? NaN)}`
  );
}

export function progressReporter(
  stream: { isTTY?: boolean; write(s: string): unknown },
  intervalMs = 5000,
  now: () => number = Date.now,
): { update(p: Progress): void; end(): void } {
  const tty = !!stream.isTTY;
  let last = -Infinity;
  let open = false; // a \r line is on screen
  const endLine = () => {
    if (open) stream.write('\n');
    open = false;
  };
  return {
    update(p: Progress) {
      if (p.phase === 'stream') {
        const t = now();
        const final = p.batch !== undefined && p.batch === p.batches;
        if (tty) {
          if (t - last < 100 && !final) return;
          stream.write(`\r${progressLine(p)}\u001b[K`);
          open = true;
        } else {
          if (t - last < intervalMs && !final) return;
          stream.write(progressLine(p) + '\n');
        }
        last = t;
        return;
      }
      if (p.phase === 'checkpoint') return; // frequent and uneventful
      endLine();
      if (p.message) stream.write(`${p.message}\n`);
    },
    end: endLine,
  };
}
