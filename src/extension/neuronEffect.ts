/**
 * The neuron page's "What it does" on the host: reads the neuron's stored top contexts
 * (examples.bin), has the engine ablate it on them (src/engine/neuronEffect.ts: zero at hook_post,
 * and the run's corpus mean at hook_pre when the run has `mean_exact`), and builds the payload in
 * src/view/effectPayload.ts. No maths here. Results are cached per run folder (and its files'
 * stamp), model and neuron; a failed or cancelled run is not. No `vscode` import.
 */
import type { CancellationSignal } from '../engine/errors';
import { EngineError } from '../engine/errors';
import type { Intervener } from '../engine/intervene';
import type { Ablation } from '../engine/neuronEffect';
import type { RunData } from '../engine/run/data';
import { readNeuronExamples } from '../engine/run/examples';
import type { Model } from '../engine/runtime';
import type { NeuronEffectData, NeuronRef } from '../protocol';
import { effectPayload } from '../view/effectPayload';
import type { EngineHost } from './engineHost';

const CACHE_SIZE = 64;

export class EffectRunner {
  private readonly cache = new Map<string, NeuronEffectData>();
  private intervener?: { model: Model; iv: Promise<Intervener> };

  constructor(
    private readonly host: Pick<EngineHost, 'use'>,
    private readonly threads: () => number,
  ) {}

  private key(run: RunData, ref: NeuronRef): string {
    return [run.dir, run.info.id, run.info.created, run.modelDir ?? '', ref.layer, ref.neuron].join('\0');
  }

  cached(run: RunData, ref: NeuronRef): NeuronEffectData | undefined {
    return this.cache.get(this.key(run, ref));
  }

  /** Ablates `ref` on its top contexts of `run`; throws EngineError when the run cannot say. */
  async measure(run: RunData, ref: NeuronRef, signal: CancellationSignal, progress: (done: number, total: number) => void): Promise<NeuronEffectData> {
    const key = this.key(run, ref);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const j = ref.layer * run.dMlp + ref.neuron;
    if (ref.layer >= run.nLayers || ref.neuron >= run.dMlp || run.rowOf[j]! < 0) throw new EngineError(`L${ref.layer}.N${ref.neuron} is not a neuron of this run`);
    if (!run.examples) throw new EngineError('this run has no stored top contexts (examples.json / examples.bin) to ablate on', run.dir);
    if (!run.modelDir) throw new EngineError("the run's reference model folder is not known", run.dir);
    const ex = readNeuronExamples(run.dir, run.examples, j);
    const notes: string[] = [];
    const ablations: Ablation[] = [{ kind: 'zero', hook: 'post' }];
    // mean_exact is the hook_pre mean over the run's kept tokens (interventionSpec.ts meansFromRun).
    const mean = run.columns.get('mean_exact')?.[run.rowOf[j]!];
    if (mean !== undefined && Number.isFinite(mean)) ablations.push({ kind: 'mean', hook: 'pre', mean });
    else notes.push('No mean ablation: the run has no corpus mean (mean_exact) for this neuron.');
    const modelDir = run.modelDir;
    const { contextPrompts, neuronEffect } = await import('../engine/neuronEffect');
    const threads = this.threads();
    const r = await this.host.use(modelDir, threads, async (_rt, model) => {
      if (model.config.nLayer !== run.nLayers || model.config.dMlp !== run.dMlp) {
        throw new EngineError(`the model in ${modelDir} (${model.config.nLayer} layers × ${model.config.dMlp}) is not the run's reference shape (${run.nLayers} × ${run.dMlp})`, modelDir);
      }
      const contexts = contextPrompts(ex, model.tokenizer.bosId);
      return neuronEffect(await this.intervenerFor(model, threads), ref, contexts, ablations, { signal, progress });
    });
    const data = effectPayload(r, run.info.models[0] ?? '', run.tokenizer ? (id) => run.tokenizer!.tokenLabel(id) : null, notes);
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, data);
    return data;
  }

  /** One intervention session per open model; a new model closes the previous one's. */
  private async intervenerFor(model: Model, threads: number): Promise<Intervener> {
    if (this.intervener?.model !== model) {
      const { openIntervener } = await import('../engine/intervene');
      const old = this.intervener;
      this.intervener = { model, iv: openIntervener(model, threads ? { threads } : {}) };
      const mine = this.intervener;
      mine.iv.catch(() => {
        if (this.intervener === mine) this.intervener = undefined;
      });
      if (old) void old.iv.then((iv) => iv.close()).catch(() => undefined);
    }
    return this.intervener.iv;
  }

  dispose(): void {
    void this.intervener?.iv.then((iv) => iv.close()).catch(() => undefined);
    this.intervener = undefined;
  }
}
