/** `analyze`, `summary RUN`, `table FILE.csv`: the universality analysis from the command line. */
import { EngineError, type CancellationSignal, CancelledError } from '../engine/errors';
import { DEFAULT_THRESHOLD } from '../engine/run/defaults';
import type { Print } from './activations';
import type { AnalyzeCommand, SummaryCommand, TableCommand } from './args';
import { formatDuration, progressReporter } from './progress';
import { summarizeTable, type SummaryOptions } from './summary';
import { statMedians } from '../view/properties';

// Loaded on first use: --help and usage errors never load onnxruntime or apache-arrow.
const loadPipeline = () => import('../engine/analysis/pipeline');
const loadStore = () => import('../engine/store');
const loadManifest = () => import('../engine/run/manifest');
const loadNeurons = () => import('../engine/run/neurons');

const int = (x: number) => x.toLocaleString('en-US');

export async function runSummaryOf(runDir: string, print: Print, top: number): Promise<void> {
  const { readManifest, manifestThreshold } = await loadManifest();
  const { readNeuronArrow, partnerColumns } = await loadNeurons();
  const { runFile } = await import('../engine/run/files');
  const m = readManifest(runDir);
  if (m.status !== 'complete') {
    // Running, interrupted (its process is gone: killed), cancelled or failed; liveness.ts says which.
    const { statusText } = await import('../engine/run/liveness');
    throw new EngineError(`run ${runDir} has no results yet: it ${statusText(m, `universal-neurons analyze --resume ${runDir}`)}`, runDir);
  }
  const t = await readNeuronArrow(runFile(runDir, 'neurons'));
  const ref = m.models[0]!;
  const others = m.models.slice(1);
  const tk = m.corpus?.tokens;
  const threshold = manifestThreshold(m);
  // Older runs may lack a field: the header says '?' rather than failing.
  const n = (x: number | undefined) => (x === undefined ? '?' : int(x));
  const header = [
    `run ${m.id} (${runDir})`,
    `reference ${ref.label} (${ref.nLayers} layers x ${ref.dMlp} neurons) vs ${others.map((o) => o.label).join(', ')}`,
    `corpus: ${n(tk?.used)} tokens in ${n(m.corpus?.rows)} rows of ${m.corpus?.row_length ?? '?'} (${n(tk?.kept)} kept for statistics); ` +
      `threshold excess > ${threshold}; baseline seed ${m.settings?.seed ?? '?'}; ${m.timings?.total_s === undefined ? '?' : formatDuration(m.timings.total_s)} total`,
    '',
  ];
  const partners = others
    .map((o) => ({ label: o.label, ...partnerColumns(o.label) }))
    .filter((p) => t.columns.has(p.layer) && t.columns.has(p.neuron) && t.columns.has(p.corr));
  const { readBasis } = await import('../engine/run/basis');
  const basis = readBasis(runDir, ref.nLayers);
  if (basis?.note) header.push(`note: ${basis.note}`, '');
  for (const line of summarizeTable(t, { threshold, top, header, partners, pcaTop5: basis?.topShare ?? null })) print(line);
}

export async function runSummary(cmd: SummaryCommand, print: Print): Promise<void> {
  const store = await loadStore();
  await runSummaryOf(store.resolveRunDir(cmd.run), print, cmd.top);
}

export async function runTable(cmd: TableCommand, print: Print): Promise<void> {
  const { readNeuronCsv } = await loadNeurons();
  const t = readNeuronCsv(cmd.file);
  const threshold = cmd.threshold ?? DEFAULT_THRESHOLD;
  const header = [`${cmd.file}: ${int(t.nRows)} rows, threshold excess > ${threshold}`, ''];
  const compare = cmd.run === undefined ? undefined : await runMedians(cmd.run);
  for (const line of summarizeTable(t, { threshold, top: cmd.top, dMlp: cmd.dMlp, header, ...(compare ? { compare } : {}) })) print(line);
}

/** A finished run's median statistics over its universal neurons (`table --run`), labelled by its id. */
async function runMedians(run: string): Promise<NonNullable<SummaryOptions['compare']>> {
  const { resolveRunDir } = await loadStore();
  const { readManifest } = await loadManifest();
  const { readNeuronArrow } = await loadNeurons();
  const { runFile } = await import('../engine/run/files');
  const dir = resolveRunDir(run);
  const m = readManifest(dir);
  if (m.status !== 'complete') throw new EngineError(`run ${dir} has no results yet (status ${m.status}); --run needs a finished run`, dir);
  const t = await readNeuronArrow(runFile(dir, 'neurons'));
  const u = t.columns.get('universal');
  if (!u) throw new EngineError(`${t.source} has no "universal" column`, t.source);
  const rows: number[] = [];
  for (let i = 0; i < t.nRows; i++) if (u[i]) rows.push(i);
  const { medians, missing } = statMedians(t.columns, rows);
  return { label: `run ${m.id} (${rows.length} universal)`, medians, missing };
}

export async function runAnalyze(
  cmd: Omit<AnalyzeCommand, 'kind' | 'top'> & { topSummary?: number; after?: (runDir: string) => Promise<void> },
  print: Print,
  note: Print,
  signal: CancellationSignal,
  stderr: { isTTY?: boolean; write(s: string): unknown } = process.stderr,
  inThread = false,
): Promise<string> {
  const progress = progressReporter(stderr);
  const warned = new Set<string>();
  let runDir: string | undefined;
  const planOptions = {
    families: { enabled: cmd.families !== false, ...(cmd.familyThresholds ? { thresholds: cmd.familyThresholds } : {}), ...(cmd.roles ? { roleSettings: cmd.roles } : {}) },
  };
  // The analysis runs in a worker thread (analysis/worker.ts): this thread stays free, so Ctrl-C
  // is seen at once (a signal handler waits for the event loop, which a synchronous finishing
  // loop or an onnxruntime run would hold for seconds), and the worker polls the shared flag in
  // every phase. `inThread` (tests) runs it here instead.
  const run = async (
    opts: import('../engine/analysis/workerClient').WorkerAnalysisOptions,
    onProgress: (p: import('../engine/analysis/pipeline').Progress) => void,
  ): Promise<{ runDir: string; manifest: import('../engine/analysis/pipeline').Manifest }> => {
    if (inThread) {
      const { runAnalysis } = await loadPipeline();
      const { defaultPlan } = await import('../engine/analysis/plan');
      const { plan, ...rest } = opts;
      return runAnalysis({ ...rest, plan: defaultPlan(plan ?? {}) }, onProgress, signal);
    }
    const { runAnalysisInWorker } = await import('../engine/analysis/workerClient');
    return runAnalysisInWorker(opts, onProgress, signal);
  };
  try {
    const r = await run(
      {
        models: cmd.models,
        corpus: cmd.corpus,
        tokens: cmd.tokens,
        out: cmd.out,
        reference: cmd.reference,
        threshold: cmd.threshold,
        seed: cmd.seed,
        batchRows: cmd.batchRows,
        checkpointEvery: cmd.checkpointEvery,
        memoryGb: cmd.memoryGb,
        mode: cmd.mode,
        threads: cmd.threads,
        ...(cmd.executionProvider ? { executionProvider: cmd.executionProvider } : {}),
        resume: cmd.resume,
        plan: planOptions,
        ...(cmd.blockSize ? { refBlocks: cmd.blockSize } : {}),
        ...(cmd.block !== undefined || cmd.shard ? { part: { ...(cmd.block !== undefined ? { block: cmd.block } : {}), ...(cmd.shard ? { shard: cmd.shard } : {}), plan: planOptions } } : {}),
      },
      (p) => {
        if (p.runDir) runDir = p.runDir;
        if (p.message?.startsWith('warning: ')) warned.add(p.message.slice('warning: '.length));
        progress.update(p);
      },
    );
    progress.end();
    runDir = r.runDir;
    // Warnings said at the start (the budget) are not repeated.
    for (const w of r.manifest.warnings) if (!warned.has(w)) note(`warning: ${w}`);
    print(`wrote ${r.runDir} in ${formatDuration(r.manifest.timings.total_s)}`);
    const part = r.manifest.part;
    if (part) {
      // A part has no results of its own: the merge of all its siblings does.
      const which = [
        ...(part.block !== undefined ? [`part ${part.block} of ${part.blocks} (blocks 0 to ${part.blocks - 1})`] : []),
        ...(part.shard ? [`token shard ${part.shard.index} of ${part.shard.count}: corpus rows ${part.shard.rows[0]} to ${part.shard.rows[1] - 1}`] : []),
      ].join(', ');
      print(`${which}; when every part is done: universal-neurons merge PART... --out RUN`);
      return r.runDir;
    }
    print('');
    // What the run is for: the universality summary, or the caller's (development's) report.
    await (cmd.after ? cmd.after(r.runDir) : runSummaryOf(r.runDir, print, cmd.topSummary ?? 15));
    return r.runDir;
  } catch (e) {
    progress.end();
    if (e instanceof CancelledError && runDir) {
      note(`the run was cancelled; it continues from its last checkpoint with: universal-neurons analyze --resume ${runDir}`);
    }
    throw e;
  }
}
