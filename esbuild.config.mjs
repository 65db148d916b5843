// Two builds: the extension host, CLI and analysis worker (node/cjs), and the webviews
// (browser/iife); first the WebAssembly kernels (src/engine/kernels/assembly, AssemblyScript)
// into dist/kernels/*.wasm.
// `vscode` is provided by the host; onnxruntime-node is a native addon shipped in node_modules.
import * as esbuild from 'esbuild';
import { buildKernels } from './src/engine/kernels/build.mjs';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning' };

const builds = [
  {
    ...common,
    // analysisWorker: the analysis in a worker thread (src/engine/analysis/workerMain.ts), started by
    // the extension (and any caller of workerClient.ts) from the file next to its own bundle.
    entryPoints: { extension: 'src/extension/extension.ts', cli: 'src/cli/main.ts', analysisWorker: 'src/engine/analysis/workerMain.ts' },
    outdir: 'dist',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode', 'onnxruntime-node'],
  },
  {
    ...common,
    entryPoints: { webview: 'webview/main.ts' },
    outdir: 'dist',
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  },
];

await buildKernels();
if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
