// The WebAssembly JavaScript API as the engine's kernels use it (src/engine/kernels/index.ts).
// TypeScript declares it only in lib.dom; the engine compiles without the DOM
// (src/engine/tsconfig.json), so the per-layer configs without the DOM include this file. The
// root tsconfig.json, which has the DOM, does not.
declare namespace WebAssembly {
  type ImportValue = Memory | ((...args: never[]) => unknown) | number;
  type Imports = Record<string, Record<string, ImportValue>>;
  type Exports = Record<string, unknown>;
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Module {
    constructor(bytes: ArrayBufferView | ArrayBuffer);
  }
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Exports;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
}
