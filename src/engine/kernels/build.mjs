// Compiles each AssemblyScript kernel in ./assembly into dist/kernels/<name>.wasm (called by
// esbuild.config.mjs, i.e. `npm run build`, and by the test runner before the tests).
// Skips a kernel whose .wasm is newer than its source and this script.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

// SIMD for the kernels; threads for the shared memory the worker pool runs them on.
const FLAGS = ['-O3', '--runtime', 'stub', '--noAssert', '--use', 'abort=', '--enable', 'simd', '--importMemory'];
const SHARED = ['--enable', 'threads', '--sharedMemory', '--maximumMemory', '65536'];
// Kernels on a plain (unshared) memory, for a memory that onnxruntime-node writes into (it
// refuses views of a SharedArrayBuffer: "Invalid argument"). None at present.
const UNSHARED = new Set([]);

export async function buildKernels() {
  const src = join(here, 'assembly');
  const out = join(root, 'dist', 'kernels');
  mkdirSync(out, { recursive: true });
  const self = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
  for (const name of readdirSync(src).filter((n) => n.endsWith('.ts')).sort()) {
    const input = join(src, name);
    const wasm = join(out, name.replace(/\.ts$/, '.wasm'));
    let fresh = false;
    try {
      fresh = statSync(wasm).mtimeMs > Math.max(statSync(input).mtimeMs, self);
    } catch {
      // not built yet
    }
    if (fresh) continue;
    const flags = UNSHARED.has(name.replace(/\.ts$/, '')) ? FLAGS : [...FLAGS, ...SHARED];
    const r = spawnSync(process.execPath, [asc, input, ...flags, '-o', wasm], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`AssemblyScript failed on ${input} (exit ${r.status})`);
    if (hasDataSegment(readFileSync(wasm))) {
      rmSync(wasm);
      throw new Error(
        `${input} compiles to a module with a data segment (static data, e.g. Math.log's tables or a string): ` +
          'every instantiation, on each pool worker too, would write it over the arrays that share the kernel memory',
      );
    }
  }
}

/** Whether a WebAssembly binary has a data section (id 11) with any segment. */
export function hasDataSegment(bytes) {
  let i = 8;
  const leb = () => {
    let r = 0;
    let s = 0;
    let x;
    do {
      x = bytes[i++];
      r += (x & 0x7f) * 2 ** s;
      s += 7;
    } while (x & 0x80);
    return r;
  };
  while (i < bytes.length) {
    const id = bytes[i++];
    const n = leb();
    const end = i + n;
    if (id === 11 && leb() > 0) return true;
    i = end;
  }
  return false;
}
