// The generated cluster scripts (issue #17), without Slurm: the memory a user asks for is the same
// on Slurm (binary K/M/G/T, a bare number in MB) and on Kubernetes (which reads `16G` as 10⁹ bytes).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { k8sMemory, writeSlurm } from '../../src/cli/slurm';

test('Slurm --mem in Kubernetes binary units', () => {
  assert.equal(k8sMemory(undefined), undefined);
  assert.equal(k8sMemory('16G'), '16Gi');
  assert.equal(k8sMemory('512m'), '512Mi');
  assert.equal(k8sMemory('4000'), '4000Mi');
  assert.equal(k8sMemory('2T'), '2Ti');
});

test('the job array asks Slurm and Kubernetes for the same memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'un-slurm-script-'));
  try {
    const models = ['a', 'b'].map((s) => join('models', `tiny-gpt2-${s}`));
    const w = await writeSlurm(['--models', ...models, '--corpus', 'models/corpus/heldout.jsonl', '--tokens', '1024', '--block-size', '2048', '--dir', dir, '--mem', '16G']);
    assert.equal(w.parts, 2);
    assert.match(readFileSync(join(dir, 'analyze.sbatch'), 'utf8'), /#SBATCH --mem=16G\n/);
    for (const f of ['k8s-parts.yaml', 'k8s-merge.yaml']) {
      const y = readFileSync(join(dir, f), 'utf8');
      assert.match(y, /memory: "16Gi"/, f);
      assert.doesNotMatch(y, /memory: "16G"/, f);
    }
    await assert.rejects(writeSlurm(['--models', ...models, '--corpus', 'models/corpus/heldout.jsonl', '--tokens', '1024', '--block-size', '2048', '--dir', dir, '--mem', '16GB']), /--mem needs a whole number/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
