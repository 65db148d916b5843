// The environment the benches give a PyTorch peer, so that it runs at its best on this CPU.
//
// Debian's torch does its fp32 GEMMs in OpenBLAS, which picks its kernels by CPU model. OpenBLAS
// 0.3.21 (Debian 12) does not know newer Xeons (this box, 2026-12-03: family 6 model 207, Emerald
// Rapids) and falls back to "Prescott", its SSE3 kernels: 32–42 GFLOP/s on two threads where its
// SkylakeX (AVX-512) kernels give ~210 (BENCHMARKS.md, "The peer's BLAS"). A peer left on Prescott
// makes any "× the peer" figure look better than it is, so the benches name the core for it
// (OPENBLAS_CORETYPE) when OpenBLAS has fallen back, and say so in their output.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface TorchEnv {
  env: NodeJS.ProcessEnv;
  /** One line for the bench's header: the core OpenBLAS uses and why. */
  note: string;
}

/** The core OpenBLAS reports for `python` under `env` (OPENBLAS_VERBOSE=2 prints "Core: X"), or undefined. */
function openblasCore(python: string, env: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync(python, ['-c', 'import torch; (torch.ones(64, 64) @ torch.ones(64, 64)).sum().item()'], {
    env: { ...env, OPENBLAS_VERBOSE: '2' },
    encoding: 'utf8',
  });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.match(/Core:\s*(\S+)/)?.[1];
}

/** The OpenBLAS core this CPU's flags allow (undefined: none better than what OpenBLAS chose). */
function bestCore(): string | undefined {
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
    flags = new Set(line.trim().split(/\s+/));
  } catch {
    return undefined;
  }
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f))) return 'SKYLAKEX';
  if (flags.has('avx2') && flags.has('fma')) return 'HASWELL';
  return undefined;
}

// OpenBLAS's fallbacks for a CPU it does not recognise.
const GENERIC = new Set(['Prescott', 'Katmai', 'Coppermine', 'Northwood', 'Banias', 'Core2', 'Penryn', 'Dunnington', 'Nehalem', 'Sandybridge']);

/**
 * The peer's environment: as given when OPENBLAS_CORETYPE is already set, when `--peer-blas as-is`
 * asks for it (`asIs`), or when OpenBLAS chose a core that uses the CPU; otherwise the best core the
 * CPU's flags allow, checked by asking OpenBLAS again.
 */
export function torchEnv(python: string, asIs = false, base: NodeJS.ProcessEnv = process.env): TorchEnv {
  const core = openblasCore(python, base);
  if (!core) return { env: base, note: 'OpenBLAS core: not reported (torch without OpenBLAS?)' };
  if (base.OPENBLAS_CORETYPE) return { env: base, note: `OpenBLAS core ${core} (OPENBLAS_CORETYPE=${base.OPENBLAS_CORETYPE} as given)` };
  const best = bestCore();
  if (asIs || !GENERIC.has(core) || !best) return { env: base, note: `OpenBLAS core ${core}${asIs && best && GENERIC.has(core) ? ` (as detected; this CPU allows ${best})` : ''}` };
  const env = { ...base, OPENBLAS_CORETYPE: best };
  const now = openblasCore(python, env);
  if (now?.toUpperCase() !== best) return { env: base, note: `OpenBLAS core ${core} (asked for ${best}, OpenBLAS answered ${now ?? 'nothing'})` };
  return { env, note: `OpenBLAS core ${best} (it detected ${core}, its generic fallback for a CPU it does not know; OPENBLAS_CORETYPE=${best})` };
}
