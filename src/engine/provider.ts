/**
 * onnxruntime's execution provider for every session this process creates (the forwards, the
 * GEMMs, the weight statistics): 'cpu' (default) or 'cuda'. One process-wide choice, as the
 * kernels' thread count (kernels/pool.ts): a run uses one device throughout, and the sessions
 * are created in many places.
 *
 * onnxruntime-node ships the CUDA provider as a separate download (its install script,
 * ONNXRUNTIME_NODE_INSTALL=cuda12); without it a session asking for 'cuda' fails with a
 * loader error. `checkExecutionProvider` turns that into a message saying how to install it,
 * before any long work starts. Untested on GPUs here (README).
 */
import './ortTelemetry';
import { EngineError } from './errors';

export const EXECUTION_PROVIDERS = ['cpu', 'cuda'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

let current: ExecutionProvider = 'cpu';

export function setExecutionProvider(p: ExecutionProvider): void {
  current = p;
}

export function executionProvider(): ExecutionProvider {
  return current;
}

/** The session option: CUDA first, CPU for the operators CUDA does not implement. */
export function sessionProviders(p: ExecutionProvider = current): string[] {
  return p === 'cuda' ? ['cuda', 'cpu'] : ['cpu'];
}

export const CUDA_INSTALL_HINT =
  'onnxruntime-node was installed without its CUDA provider. Reinstall it with the CUDA 12 binaries: ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node` (or `npm install onnxruntime-node --onnxruntime-node-install=cuda12`); ' +
  'it needs Linux x64, CUDA 12 and cuDNN 9 (onnxruntime-node README, "CUDA EP Installation"). Or use --execution-provider cpu.';

/**
 * Creates a one-operator session on `p` alone (no CPU fallback), so that a missing provider fails
 * here, in a second, with `CUDA_INSTALL_HINT`, not after the corpus is read.
 */
export async function checkExecutionProvider(p: ExecutionProvider = current): Promise<void> {
  if (p === 'cpu') return;
  const ort = await import('onnxruntime-node');
  const { OnnxGraph } = await import('./onnx'); // lazily: the CLI's argument parser imports this module
  const g = new OnnxGraph('provider-probe', 13);
  const a = g.input('a', 'float', [1]);
  g.op('Identity', [a], {}, 'b');
  g.output('b', 'float', [1]);
  try {
    const s = await ort.InferenceSession.create(g.toBytes(), { executionProviders: [p] });
    await s.release();
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new EngineError(`execution provider ${p} is not available (onnxruntime: ${why}). ${CUDA_INSTALL_HINT}`);
  }
}
