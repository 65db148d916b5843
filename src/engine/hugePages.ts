/**
 * Transparent huge pages for the process's large allocations, through glibc's malloc tunable.
 *
 * Why: onnxruntime-node hands every graph output back as a fresh ArrayBuffer copy, even an output
 * bound to a buffer of ours (its Run converts each output to a new JS value). A blocked run's cross
 * step returns a B × N_m partial, 1.15 GB at GPT-2-small size: each step faulted in 282,000 fresh
 * 4 kB pages, ~2–3 s of system time on this VM and half the step (BENCHMARKS.md, "Huge pages").
 * With `glibc.malloc.hugetlb=1` glibc asks for transparent huge pages (madvise) on its mmap'd
 * chunks, so the same bytes fault in 2 MB at a time: 841 faults instead of 281,909, the step
 * 6.9 → 3.5 s. Tunables are read once when a process starts, so the CLI starts itself again with
 * the variable set (cli/main.ts); a user's own GLIBC_TUNABLES setting of it is kept, and
 * UN_HUGEPAGES=0 turns this off.
 */
import { readFileSync } from 'node:fs';

export const HUGEPAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/**
 * The environment to start this program again with, or undefined when there is nothing to gain:
 * not Linux with glibc ≥ 2.35, THP off (`never`), the tunable already set (either way), or
 * UN_HUGEPAGES=0.
 */
export function hugePagesEnv(env: NodeJS.ProcessEnv = process.env, thpFile = '/sys/kernel/mm/transparent_hugepage/enabled'): NodeJS.ProcessEnv | undefined {
  if (process.platform !== 'linux' || env.UN_HUGEPAGES === '0') return undefined;
  const current = env.GLIBC_TUNABLES ?? '';
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(current)) return undefined;
  let mode: string;
  try {
    mode = readFileSync(thpFile, 'utf8');
  } catch {
    return undefined;
  }
  if (!/\[(always|madvise)\]/.test(mode)) return undefined;
  if (!glibcAtLeast(2, 35)) return undefined;
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${HUGEPAGES_TUNABLE}` : HUGEPAGES_TUNABLE };
}

/** The C library is glibc of at least this version (the hugetlb tunable came in 2.35). */
function glibcAtLeast(major: number, minor: number): boolean {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const m = /^(\d+)\.(\d+)/.exec(header?.glibcVersionRuntime ?? '');
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

/** Whether this process runs with the tunable (for the manifest and the bench headers). */
export function hugePagesOn(env: NodeJS.ProcessEnv = process.env): boolean {
  return /(^|:)glibc\.malloc\.hugetlb=[12]/.test(env.GLIBC_TUNABLES ?? '');
}
