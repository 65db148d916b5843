// The CUDA execution provider: onnxruntime-node here was installed without its CUDA binaries
// (ONNXRUNTIME_NODE_INSTALL=skip), so asking for it must fail at once, with how to install them.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { parseCli, UsageError } from '../../src/cli/args';
import { checkExecutionProvider, sessionProviders } from '../../src/engine/provider';

// Where a machine has the CUDA provider installed, the failure this tests cannot happen.
const ortDir = dirname(createRequire(__filename).resolve('onnxruntime-node/package.json'));
const cudaInstalled = existsSync(join(ortDir, 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'));

test('cuda without its binaries: a real session creation fails with the install command', { skip: cudaInstalled && 'the CUDA provider is installed here' }, async () => {
  await assert.rejects(checkExecutionProvider('cuda'), (e: Error) => {
    assert.match(e.message, /execution provider cuda is not available/);
    assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node/);
    assert.match(e.message, /--execution-provider cpu/);
    // onnxruntime's own reason is kept.
    assert.match(e.message, /onnxruntime: .*(Cuda|CUDA|shared librar)/);
    return true;
  });
});

test('cpu needs no check; cuda sessions fall back to cpu for operators CUDA lacks', async () => {
  await checkExecutionProvider('cpu');
  assert.deepEqual(sessionProviders('cpu'), ['cpu']);
  assert.deepEqual(sessionProviders('cuda'), ['cuda', 'cpu']);
});

test('--execution-provider is parsed for the commands that open sessions, and checked', () => {
  const a = parseCli(['analyze', '--models', 'a', 'b', '--corpus', 'c', '--tokens', '2k', '--execution-provider', 'cuda']);
  assert.equal(a.kind === 'analyze' && a.executionProvider, 'cuda');
  const r = parseCli(['analyze', '--resume', 'RUN', '--execution-provider', 'cpu']);
  assert.equal(r.kind === 'analyze' && r.executionProvider, 'cpu');
  const act = parseCli(['activations', '--model', 'm', '--text', 't', '--execution-provider', 'cuda']);
  assert.equal(act.kind === 'activations' && act.executionProvider, 'cuda');
  const iv = parseCli(['intervene', '--model', 'm', '--text', 't', '--neuron', 'L0.N1', '--mode', 'zero', '--execution-provider', 'cuda']);
  assert.equal(iv.kind === 'intervene' && iv.executionProvider, 'cuda');
  const plain = parseCli(['activations', '--model', 'm', '--text', 't']);
  assert.equal(plain.kind === 'activations' && plain.executionProvider, undefined);
  assert.throws(() => parseCli(['activations', '--model', 'm', '--text', 't', '--execution-provider', 'gpu']), (e: Error) => e instanceof UsageError && /must be cpu or cuda, got "gpu"/.test(e.message));
  assert.throws(() => parseCli(['summary', 'RUN', '--execution-provider', 'cuda']), /summary does not take --execution-provider/);
});
