// Validation of a checkpoint before any work: the one place that turns a loaded Checkpoint into
// weights the forward may use. Kept free of onnxruntime so weight statistics can share it.
import { checkGpt2WeightsFinite, type Gpt2Weights, parseGpt2Config, resolveGpt2Weights, type WeightSource } from './arch/gpt2';
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
 * ways (resolveGpt2Weights), and every weight finite.
 */
export function checkpointWeights(ck: Checkpoint): Gpt2Weights {
  const cfg = parseGpt2Config(ck.configJson, ck.configPath);
  if (ck.tokenizer.vocabSize > cfg.vocabSize) {
    const top = ck.tokenizer.vocabSize - 1;
    throw new EngineError(
      `${ck.tokenizerFiles.join(' + ')}: the tokenizer has token id ${top} (${JSON.stringify(ck.tokenizer.tokenRaw(top))}), ` +
        `but ${ck.configPath} says vocab_size is ${cfg.vocabSize}, so ids ${cfg.vocabSize}..${top} have no embedding; ` +
        `the tokenizer does not belong to this model: use the tokenizer it was trained with`,
      ck.tokenizerFiles[0],
    );
  }
  const w = resolveGpt2Weights(cfg, safetensorsSource(ck.weights), ck.weights.path, ck.configPath);
  checkGpt2WeightsFinite(w, ck.weights.path);
  return w;
}

