// Validation of a checkpoint before any work: the one place that turns a loaded Checkpoint into
// weights the forward may use. Kept free of onnxruntime so weight statistics can share it.
import { checkWeightsFinite, type ResolvedWeights, type WeightSource } from './arch/common';
import { type ArchWeights, parseModelConfig, resolveWeights } from './arch/index';
import type { Checkpoint } from './checkpoint';
import { EngineError } from './errors';
import type { SafetensorsFile } from './safetensors';

export function safetensorsSource(file: SafetensorsFile): WeightSource {
  return {
    shape: (n) => file.tensors.get(n)?.shape,
    read: (n) => file.readF32(n),
    names: () => file.tensors.keys(),
    dtype: (n) => file.tensors.get(n)?.dtype,
    firstNonFinite: (n) => file.firstNonFinite(n),
  };
}

/**
 * Everything about a checkpoint is checked here, before any session is built or any token run:
 * config values, tokenizer ids against vocab_size, every tensor's presence, shape and dtype both
 * ways (the architecture's resolve, chosen by model_type in arch/index.ts), and every weight finite.
 */
export function checkpointWeights(ck: Checkpoint): ArchWeights {
  const cfg = parseModelConfig(ck.configJson, ck.configPath);
  if (ck.tokenizer.vocabSize > cfg.vocabSize) {
    const top = ck.tokenizer.vocabSize - 1;
    throw new EngineError(
      `${ck.tokenizerFiles.join(' + ')}: the tokenizer has token id ${top} (${JSON.stringify(ck.tokenizer.tokenRaw(top))}), ` +
        `but ${ck.configPath} says vocab_size is ${cfg.vocabSize}, so ids ${cfg.vocabSize}..${top} have no embedding; ` +
        `the tokenizer does not belong to this model: use the tokenizer it was trained with`,
      ck.tokenizerFiles[0],
    );
  }
  checkSpecialIds(ck, cfg.vocabSize);
  const w = resolveWeights(cfg, safetensorsSource(ck.weights), ck.weights.path, ck.configPath);
  checkHalfFormats(w, ck.weights.path);
  checkWeightsFinite(w, ck.weights.path);
  return w;
}

/**
 * config.json's bos_token_id / eos_token_id, when given as ids of the vocabulary, must be the
 * tokenizer's <|endoftext|>: the engine puts that id before every row and between documents, so
 * a tokenizer whose <|endoftext|> moved (its id exchanged with another token's, which no check of
 * the tokenizer alone can see) would feed the model another token in every row. An id outside the
 * vocabulary is a placeholder (GPT2Config's default 50256 in a config of a smaller vocabulary).
 */
function checkSpecialIds(ck: Checkpoint, vocabSize: number): void {
  for (const key of ['bos_token_id', 'eos_token_id'] as const) {
    const v = ck.configJson[key];
    if (v === undefined || v === null) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      throw new EngineError(`${ck.configPath}: "${key}" must be a token id (a non-negative integer) or null, got ${JSON.stringify(v)}`, ck.configPath, key);
    }
    const eot = ck.tokenizer.eosId;
    if ((v as number) < vocabSize && v !== eot) {
      throw new EngineError(
        `${ck.configPath}: "${key}" is ${v} (${JSON.stringify(ck.tokenizer.tokenRaw(v as number) ?? '?')}), but in ${ck.tokenizerFiles.join(' + ')} ` +
          `<|endoftext|> is id ${eot}; the tokenizer does not belong to this model, or one of the two files is corrupt. ` +
          `Use the tokenizer the model was trained with, or set ${key} to ${eot} if that is the model's`,
        ck.configPath,
        key,
      );
    }
  }
}

/**
 * One checkpoint in both half formats is refused: no tool saves a model that way (a model is cast
 * to one dtype; only F32 is kept beside it, e.g. for LayerNorms), and F16 bits read as BF16 or the
 * other way round give finite, plausible and wrong weights, so a one-word edit of a header's dtype
 * would otherwise go unnoticed.
 */
function checkHalfFormats(w: ResolvedWeights, file: string): void {
  const by = new Map<string, string[]>();
  for (const stored of new Set(w.stored.values())) {
    const d = w.source.dtype?.(stored);
    if (d === 'F16' || d === 'BF16') (by.get(d) ?? by.set(d, []).get(d)!).push(stored);
  }
  const f16 = by.get('F16') ?? [];
  const bf16 = by.get('BF16') ?? [];
  if (f16.length === 0 || bf16.length === 0) return;
  const [odd, oddType, rest, restType] = f16.length <= bf16.length ? [f16, 'F16', bf16, 'BF16'] : [bf16, 'BF16', f16, 'F16'];
  throw new EngineError(
    `${file}: tensor ${odd[0]} is stored as ${oddType}${odd.length > 1 ? ` (and ${odd.length - 1} more)` : ''}, but ${rest.length} other weights are ${restType}; ` +
      'no tool saves one model in both half formats, and reading one as the other gives wrong weights, so the header\'s dtype is corrupt. Re-download or re-save the checkpoint',
    file,
    odd[0],
  );
}

