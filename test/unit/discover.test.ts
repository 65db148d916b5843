// The model pickers' discovery (engine/discover.ts) on a temp workspace and a temp Hugging Face
// hub cache laid out as huggingface_hub lays it out (refs/REV → snapshots/COMMIT/, files linked
// to blobs/).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { defaultHubCache, discoverModels } from '../../src/engine/discover';
import { resolveModelDir } from '../../src/engine/checkpoint';

const tmp = fs.mkdtempSync(join(tmpdir(), 'un-discover-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function modelFolder(dir: string, modelType: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: modelType }));
  fs.writeFileSync(join(dir, 'model.safetensors'), '');
}

function hubEntry(cache: string, repo: string, refs: Record<string, string>, modelType: string, orphans: string[] = []): string {
  const entry = join(cache, `models--${repo.replace('/', '--')}`);
  const blobs = join(entry, 'blobs');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(join(blobs, 'cfg'), JSON.stringify({ model_type: modelType }));
  fs.writeFileSync(join(blobs, 'w'), '');
  for (const commit of new Set([...Object.values(refs), ...orphans])) {
    if (commit.startsWith('missing')) continue;
    const snap = join(entry, 'snapshots', commit);
    fs.mkdirSync(snap, { recursive: true });
    fs.symlinkSync('../../blobs/cfg', join(snap, 'config.json'));
    fs.symlinkSync('../../blobs/w', join(snap, 'model.safetensors'));
  }
  fs.mkdirSync(join(entry, 'refs'), { recursive: true });
  for (const [ref, commit] of Object.entries(refs)) fs.writeFileSync(join(entry, 'refs', ref), commit);
  return entry;
}

test('workspace folders, every cached revision and the shipped family, each once, in that order', () => {
  const ws = join(tmp, 'ws');
  modelFolder(join(ws, 'ckpts', 'gpt2-seed1'), 'gpt2');
  modelFolder(join(ws, 'ckpts', 'pythia-local'), 'gpt_neox');
  modelFolder(join(ws, 'llama'), 'llama'); // unsupported: not offered
  modelFolder(join(ws, 'node_modules', 'pkg', 'model'), 'gpt2'); // dependencies are not searched
  fs.mkdirSync(join(ws, 'notes'));
  fs.writeFileSync(join(ws, 'notes', 'config.json'), '{"model_type":"gpt2"}'); // no weights: not a checkpoint
  const shipped = join(tmp, 'ext', 'models', 'tiny-gpt2-a');
  modelFolder(shipped, 'gpt2');
  const cache = join(tmp, 'hub');
  const c = (ch: string) => ch.repeat(40);
  const pythia = hubEntry(cache, 'EleutherAI/pythia-14m', { main: c('a'), step143000: c('a'), step1000: c('b'), step8: 'missing' }, 'gpt_neox', [c('e')]);
  hubEntry(cache, 'meta/llama', { main: c('d') }, 'llama');

  const found = discoverModels({ workspaces: [ws], hubCache: cache, shipped: [shipped, join(tmp, 'ext', 'models', 'tiny-gpt2-b')] });
  assert.deepEqual(
    found.map((m) => [m.source, m.label, m.modelType, m.step ?? null]),
    [
      ['shipped', 'tiny-gpt2-a', 'gpt2', null],
      ['workspace', join('ckpts', 'gpt2-seed1'), 'gpt2', null],
      ['workspace', join('ckpts', 'pythia-local'), 'gpt_neox', null],
      ['hub', 'EleutherAI/pythia-14m@step1000', 'gpt_neox', 1000],
      ['hub', 'EleutherAI/pythia-14m@step143000', 'gpt_neox', 143000],
      ['hub', 'EleutherAI/pythia-14m@main', 'gpt_neox', null],
      ['hub', `EleutherAI/pythia-14m@${c('e').slice(0, 10)}`, 'gpt_neox', null],
    ],
  );
  // Each path is what the engine opens: the revision it names.
  const byLabel = new Map(found.map((m) => [m.label, m]));
  assert.equal(byLabel.get('EleutherAI/pythia-14m@main')!.path, pythia);
  assert.equal(byLabel.get('EleutherAI/pythia-14m@step1000')!.path, `${pythia}@step1000`);
  for (const m of found.filter((x) => x.source === 'hub')) assert.equal(resolveModelDir(m.path), m.dir);
  assert.equal(resolveModelDir(byLabel.get('EleutherAI/pythia-14m@step143000')!.path), join(pythia, 'snapshots', c('a')));

  // A workspace holding the cache lists each revision once, under the workspace.
  const again = discoverModels({ workspaces: [cache], hubCache: cache });
  assert.equal(again.length, 4);
  assert.ok(again.every((m) => m.source === 'workspace'));
});

test('the hub cache folder follows HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME as huggingface_hub does', () => {
  assert.equal(defaultHubCache({ HF_HUB_CACHE: '/x/hub', HF_HOME: '/y' }), '/x/hub');
  assert.equal(defaultHubCache({ HF_HOME: '/y' }), join('/y', 'hub'));
  assert.equal(defaultHubCache({ XDG_CACHE_HOME: '/z' }), join('/z', 'huggingface', 'hub'));
  assert.match(defaultHubCache({}), /\.cache\/huggingface\/hub$/);
});
