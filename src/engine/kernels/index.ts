/**
 * WebAssembly SIMD kernels for the analysis' per-value loops. Their sources are AssemblyScript
 * under ./assembly; `npm run build` (esbuild.config.mjs) compiles each into dist/kernels/<name>.wasm,
 * which is found here from the package root at run time (bundles and tsx-run sources alike).
 *
 * Every kernel imports one shared memory (`KernelMemory`): an accumulator allocates its arrays
 * there, so the kernel updates them in place, and views on a shared memory stay valid when it
 * grows. Shared memory is also what lets the worker pool (pool.ts) run a kernel over other
 * columns of the same arrays on other cores.
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { EngineError } from '../errors';

export type KernelName = 'stats' | 'families' | 'sddmm' | 'vocab' | 'finish' | 'paperhist' | 'pick' | 'entropy';

const modules = new Map<KernelName, WebAssembly.Module>();

/** The package root: the nearest folder above this file with our package.json. */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (fs.existsSync(p)) {
      try {
        if ((JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string }).name === 'universal-neurons') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    if (dirname(dir) === dir) throw new EngineError(`kernels: no universal-neurons package.json above ${__dirname}`);
  }
}

export function kernelPath(name: KernelName): string {
  return join(packageRoot(), 'dist', 'kernels', `${name}.wasm`);
}

/** The compiled module of a kernel (cached; posted as is to the pool's workers). */
export function kernelModule(name: KernelName): WebAssembly.Module {
  let m = modules.get(name);
  if (!m) {
    const path = kernelPath(name);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(path);
    } catch {
      throw new EngineError(`kernel ${name}: ${path} is missing; run \`npm run build\` (it compiles src/engine/kernels/assembly)`, path);
    }
    try {
      m = new WebAssembly.Module(new Uint8Array(bytes));
    } catch (e) {
      throw new EngineError(`kernel ${name}: ${path} does not compile (${(e as Error).message}); run \`npm run build\` again`, path);
    }
    modules.set(name, m);
  }
  return m;
}

const PAGE = 65536;
/** 4 GiB: wasm32's whole address space. A shared memory reserves address space, not RAM. */
const MAX_PAGES = 65536;

/**
 * A shared WebAssembly memory with a bump allocator. Views returned stay valid for the memory's
 * life, also after it grows (a shared buffer is never detached).
 */
export class KernelMemory {
  readonly memory: WebAssembly.Memory;
  private top = 16; // offset 0 is never handed out
  private readonly instances = new Map<KernelName, WebAssembly.Instance>();

  /**
   * `shared: false` for a memory that onnxruntime writes into (it refuses SharedArrayBuffer views);
   * only the kernels built unshared (build.mjs) run on it, and views of it are detached when it
   * grows, so allocate everything before taking views.
   */
  constructor(
    initialBytes = PAGE,
    readonly shared = true,
  ) {
    const initial = Math.max(1, Math.ceil(initialBytes / PAGE));
    this.memory = new WebAssembly.Memory(shared ? { initial, maximum: MAX_PAGES, shared: true } : { initial });
  }

  /** Reserves `bytes` (64-byte aligned, zeroed); returns the byte offset. */
  alloc(bytes: number): number {
    const off = this.top;
    const end = off + Math.ceil(bytes / 64) * 64;
    if (end > MAX_PAGES * PAGE) throw new EngineError(`kernel memory: ${end} bytes exceed the 4 GiB a WebAssembly memory can hold`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return off;
  }

  private scratchAt = { off: 0, bytes: 0 };

  /**
   * A region for one call's inputs, reused by every call on this memory: it grows to the largest
   * request (the old region is not reused; batches keep one size but for the last).
   */
  scratch(bytes: number): number {
    if (bytes > this.scratchAt.bytes) this.scratchAt = { off: this.alloc(bytes), bytes };
    return this.scratchAt.off;
  }

  get buffer(): ArrayBufferLike {
    return this.memory.buffer;
  }

  f32(off: number, n: number): Float32Array {
    return new Float32Array(this.buffer, off, n);
  }

  f64(off: number, n: number): Float64Array {
    return new Float64Array(this.buffer, off, n);
  }

  u32(off: number, n: number): Uint32Array {
    return new Uint32Array(this.buffer, off, n);
  }

  u8(off: number, n: number): Uint8Array {
    return new Uint8Array(this.buffer, off, n);
  }

  i32(off: number, n: number): Int32Array {
    return new Int32Array(this.buffer, off, n);
  }

  /** The kernel's exports, instantiated on this memory (once). */
  exports<T>(name: KernelName): T {
    let inst = this.instances.get(name);
    if (!inst) {
      inst = new WebAssembly.Instance(kernelModule(name), { env: { memory: this.memory } });
      this.instances.set(name, inst);
    }
    return inst.exports as unknown as T;
  }
}

/** columnStats of stats.wasm (see ./assembly/stats.ts). */
export type ColumnStats = (
  x: number, n: number, rows: number, j0: number, j1: number,
  bMean: number, b2: number, b3: number, b4: number, pos: number,
  mn: number, mx: number, lo: number, inv: number, counts: number, bins: number,
) => number;

/** rowMaxHist of stats.wasm (see ./assembly/stats.ts). */
export type RowMaxHist = (
  x: number, n: number, nKept: number, j0: number, j1: number, ks: number, keptIndex: number, R: number, rowMax: number, rowArg: number,
  mn: number, mx: number, lo: number, inv: number, counts: number, bins: number,
) => void;

/** familyAdd of families.wasm (see ./assembly/families.ts). */
export type FamilyAdd = (v: number, pre: number, n: number, nKept: number, sum: number, sumSq: number, targets: number, nRows: number, j0: number, j1: number) => void;

/** sddmm of sddmm.wasm (see ./assembly/sddmm.ts): rows [i0, i1). */
export type Sddmm = (x: number, y: number, t: number, rowptr: number, cols: number, i0: number, i1: number, out: number) => void;
