/**
 * Scale: the universality analysis of five random-weight GPT-2-small-size models (12 × 3072 =
 * 36,864 neurons each) within a memory budget, over a small token count. A measurement, not a
 * test: the point is peak memory and where the time goes, not the numbers (the models are random).
 *
 *   npm run bench:scale -- [--tokens 1024] [--memory-gb 8] [--threads 2] [--batch-rows R] [--layers 12] [--mode exact|fast] [--planted] [--passes K] [--stats-only | --write-only]
 *
 * `--planted`: models b…e are model a with each layer's MLP neurons permuted and perturbed by 1%
 * noise (tools/planted_family.ts), so every reference neuron has a known partner in each other
 * model; the report counts the partners recovered (issue 13: all of them, at full size, fast mode).
 *
 * `--layers L`: models of L layers at GPT-2-small width (d_mlp 3,072), for a reduced run whose
 * passes and arrays have the full-size shapes per layer (page faults, system time) in minutes.
 *
 * `--stats-only`: the last pass alone (every model forwarded, the statistics accumulators, no
 * cross moments, no result files), to see its peak without the hour the cross passes take on two
 * cores.
 *
 * Checkpoints are written once into tools/.cache (tools/random_gpt2.ts); the run folder is
 * tools/.cache/scale-run (scale-run-stats). Peak RSS is the kernel's VmHWM of this process; per
 * phase both its VmHWM (reset as the phase starts) and the highest VmRSS sampled at progress events
 * and every 250 ms (with the JS arrays at that moment).
 */
import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import { defaultPlan } from '../src/engine/analysis/plan';
import type { CrossMomentsResult } from '../src/engine/analysis/crossmoments';
import { runAnalysis, type AccumulatorSpec, type AnalysisPlan, type Progress } from '../src/engine/analysis/pipeline';
import { CancelledError } from '../src/engine/errors';
import { GPT2_SMALL, writeRandomGpt2 } from '../tools/random_gpt2';
import { writePlantedFamily, type PlantedModel } from '../tools/planted_family';

const ROOT = join(__dirname, '..');
const CACHE = join(ROOT, 'tools', '.cache');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** VmHWM back to the current RSS ("5": reset the peak RSS, proc(5)); a no-op where not allowed. */
function resetHwm(): void {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // Not Linux, or not permitted: phase peaks then fall back to the samples.
  }
}

const GB = 1e9; // decimal GB, as the goal (8 GB) and --memory-gb
const gb = (b: number): string => (b / GB).toFixed(2);

/** The cross moments' specs: the pairs' passes, and in blocked fast mode the blocks' screens. */
const crossSpec = (name: string): boolean => name.startsWith('cross:') || name.startsWith('screen:');

function statsPlan(): AnalysisPlan {
  const full = defaultPlan();
  return {
    accumulators: async (ctx) => (await full.accumulators(ctx)).filter((s) => !crossSpec(s.name)),
    statsBytes: full.statsBytes,
    finalize: async () => ({}),
  };
}

/**
 * `--write-only`: the statistics pass and the real finalize (weights, families, roles, the entropy
 * intervention, every file), with each pair's cross moments replaced by zeros — the write phase's
 * peak without the 28 cross passes before it. The numbers written are meaningless.
 */
function writePlan(): AnalysisPlan {
  const full = defaultPlan();
  return {
    ...full,
    accumulators: async (ctx) => {
      const N = ctx.models[0]!.nNeurons;
      const zeros = (): CrossMomentsResult => ({
        refStart: 0,
        n: 0,
        seed: ctx.settings.seed,
        mode: 'exact',
        maxCorr: new Float64Array(N),
        partner: new Int32Array(N).fill(-1),
        baseline: new Float64Array(N),
        baselinePartner: new Int32Array(N).fill(-1),
      });
      const fake = ctx.models.slice(1).map(
        (m): AccumulatorSpec => ({
          name: `cross:${m.label}`,
          reads: { models: [0], arrays: ['keptPost'] },
          create: () => ({ add: () => undefined, state: () => ({}), finish: zeros }),
          restore: () => ({ add: () => undefined, state: () => ({}), finish: zeros }),
        }),
      );
      return [...fake, ...(await full.accumulators(ctx)).filter((s) => !crossSpec(s.name))];
    },
  };
}

async function main(): Promise<void> {
  const tokens = Number(arg('tokens', '1024'));
  const statsOnly = process.argv.includes('--stats-only');
  const writeOnly = process.argv.includes('--write-only');
  const memoryGb = Number(arg('memory-gb', '8'));
  const threads = Number(arg('threads', '2'));
  const batchRows = process.argv.includes('--batch-rows') ? Number(arg('batch-rows', '1')) : undefined;

  const t0 = Date.now();
  const layers = Number(arg('layers', String(GPT2_SMALL.layers)));
  const shape = { ...GPT2_SMALL, layers };
  const mode = arg('mode', 'exact') as 'exact' | 'fast';
  if (mode !== 'exact' && mode !== 'fast') throw new Error(`--mode ${String(mode)}: exact or fast`);
  const planted = process.argv.includes('--planted');
  const random = (l: string): string => writeRandomGpt2(join(CACHE, `random-gpt2-${layers}x768-${l}`), l, shape);
  let family: PlantedModel[] = [];
  if (planted) {
    const dir = join(CACHE, `planted-gpt2-${layers}x768`);
    const a = random('a');
    const labels = ['b', 'c', 'd', 'e'];
    const meta = labels.map((l) => join(dir, `planted-${l}`, 'planted.json'));
    // Written once (1.5 GB of checkpoints); planted.json last, so its presence means complete.
    family = meta.every((f) => fs.existsSync(f))
      ? labels.map((l, i) => ({ label: l, dir: join(dir, `planted-${l}`), perm: (JSON.parse(fs.readFileSync(meta[i]!, 'utf8')) as { perm: number[][] }).perm.map((q) => Int32Array.from(q)) }))
      : writePlantedFamily(a, dir, labels, { seed: 7, noise: 0.01 });
  }
  const models = planted ? [random('a'), ...family.map((m) => m.dir)] : ['a', 'b', 'c', 'd', 'e'].map(random);
  const tModels = Date.now();
  const out = join(CACHE, statsOnly ? 'scale-run-stats' : writeOnly ? 'scale-run-write' : 'scale-run');
  fs.rmSync(out, { recursive: true, force: true });

  // Phases: open, corpus, then per pass stream and finish, then write.
  interface Phase {
    name: string;
    start: number;
    end: number;
    peakRss: number;
    /** At the peak: JS ArrayBuffers (typed arrays) and the V8 heap; the rest of RSS is native (ORT, malloc, code). */
    peakArrays: number;
    peakHeap: number;
    /**
     * The kernel's high-water mark over the phase: VmHWM read as it ends, reset as it starts
     * (/proc/self/clear_refs). The samples above cannot see inside an onnxruntime run, which
     * blocks this thread: a forward's transient went unseen that way (BENCHMARKS.md, ninth session).
     */
    hwm: number;
  }
  const phases: Phase[] = [];
  let cur: Phase | undefined;
  const enter = (name: string): void => {
    if (cur?.name === name) return;
    const now = Date.now();
    if (cur) {
      cur.end = now;
      cur.hwm = status('VmHWM');
      // Each phase as it ends, so that an interrupted run still tells where time and memory went.
      process.stderr.write(
        `  ${cur.name}: ${((cur.end - cur.start) / 1000).toFixed(1)} s, peak RSS ${gb(cur.peakRss)} GB sampled, ${gb(cur.hwm)} GB VmHWM (JS arrays ${gb(cur.peakArrays)}, heap ${gb(cur.peakHeap)})\n`,
      );
    }
    resetHwm();
    cur = { name, start: now, end: now, peakRss: 0, peakArrays: 0, peakHeap: 0, hwm: 0 };
    sample();
    phases.push(cur);
  };
  let runPeak = 0;
  let lastMessage = '';
  const sample = (): void => {
    if (!cur) return;
    const rss = status('VmRSS');
    // Each new high of the whole run (in 0.1 GB steps) with where it happened, to find what sets it.
    if (rss > runPeak + 0.1 * GB) {
      runPeak = rss;
      const u = process.memoryUsage();
      process.stderr.write(`  new peak ${gb(rss)} GB in ${cur.name} (${lastMessage}; JS arrays ${gb(u.arrayBuffers)})\n`);
    }
    if (rss <= cur.peakRss) return;
    const u = process.memoryUsage();
    Object.assign(cur, { peakRss: rss, peakArrays: u.arrayBuffers, peakHeap: u.heapUsed });
  };
  const timer = setInterval(sample, 250);
  let pass = 1;
  let passes = 1;
  let lastLog = 0;
  const onProgress = (p: Progress): void => {
    lastMessage = `${p.phase}: ${p.message ?? ''}`;
    sample();
    const m = p.message?.match(/^pass (\d+)\/(\d+)/);
    if (m) [pass, passes] = [Number(m[1]), Number(m[2])];
    if (p.phase === 'stream' || p.phase === 'checkpoint') enter(`pass ${pass} stream`);
    else if (p.phase === 'finish') enter(`pass ${pass} finish`);
    else if (p.phase === 'open' || p.phase === 'corpus') enter(p.phase);
    // The write's steps apart (weights, families, roles, intervention, files): which one peaks.
    else if (p.phase === 'write') enter(`write: ${p.message ?? ''}`);
    if (Date.now() - lastLog > 30_000 || p.phase === 'finish' || p.phase === 'write') {
      lastLog = Date.now();
      process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${p.phase} ${p.message ?? ''} batch ${p.batch ?? ''}/${p.batches ?? ''} rss ${gb(status('VmRSS'))} GB\n`);
    }
  };
  // `--passes K`: stop (cancel) when pass K + 1 starts, and report the phases so far (a
  // GPT-2-size run takes hours here; its first passes tell what each kind of pass costs).
  const stopAfter = Number(arg('passes', '0'));
  const signal = {
    get cancelled() {
      return stopAfter > 0 && pass > stopAfter;
    },
  };
  const tRun = Date.now();
  const run = runAnalysis(
    {
      models,
      corpus: [join(ROOT, 'models', 'corpus', 'heldout.tokens.bin')],
      tokens,
      out,
      memoryGb,
      threads,
      mode,
      ...(batchRows ? { batchRows } : {}),
      ...(statsOnly ? { plan: statsPlan() } : writeOnly ? { plan: writePlan() } : {}),
    },
    onProgress,
    signal,
  );
  const r = await run.catch((e: unknown) => {
    if (!(e instanceof CancelledError) || stopAfter === 0) throw e;
    if (cur) cur.end = Date.now();
    const done = phases.filter((p) => !p.name.startsWith(`pass ${stopAfter + 1} `));
    console.log(JSON.stringify({ stopped_after_passes: stopAfter, of: passes, peak_rss_gb: Number(gb(status('VmHWM'))), phases: done.map((p) => ({ name: p.name, s: (p.end - p.start) / 1000, peak_rss_gb: Number(gb(p.peakRss)) })) }, null, 2));
    return undefined;
  });
  clearInterval(timer);
  if (!r) return;
  if (cur) {
    cur.end = Date.now();
    cur.hwm = status('VmHWM');
  }
  const tEnd = Date.now();
  // The run's peak: the highest phase high-water mark (VmHWM itself was reset phase by phase).
  const hwm = Math.max(status('VmHWM'), ...phases.map((p) => p.hwm));

  const s = r.manifest.settings;
  const N = layers * 3072;
  // Planted: every reference neuron's partner in each model is its permuted self, same layer.
  const recovered = family.map((m) => {
    const c = r.results.get(`cross:${basename(m.dir)}`) as CrossMomentsResult | undefined;
    let ok = 0;
    let lo = Infinity;
    for (let i = 0; c && i < N; i++) {
      const l = Math.floor(i / 3072);
      if (c.partner[i] === l * 3072 + m.perm[l]![i % 3072]!) ok++;
      lo = Math.min(lo, c.maxCorr[i]!);
    }
    return { model: m.label, recovered: ok, of: N, min_max_corr: lo };
  });
  const sum = (re: RegExp): number => phases.filter((p) => re.test(p.name)).reduce((a, p) => a + (p.end - p.start) / 1000, 0);
  const peak = (re: RegExp): number => Math.max(0, ...phases.filter((p) => re.test(p.name)).map((p) => Math.max(p.peakRss, p.hwm)));
  const statsPass = `pass ${passes} `;
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tokens: r.manifest.corpus.tokens.used,
    kept_tokens: r.manifest.results?.kept_tokens,
    memory_gb: s.memoryGb,
    ref_block: s.refBlock,
    blocks_per_pair: s.refBlock ? Math.ceil(N / s.refBlock) : 1,
    passes,
    mode: s.mode,
    candidate_pairs_per_pass: s.candidatePairs,
    ...(planted ? { planted: recovered } : {}),
    batch_rows: s.batchRows,
    threads,
    peak_rss_gb: Number(gb(hwm)),
    wall_s: (tEnd - tRun) / 1000,
    models_write_s: (tModels - t0) / 1000,
    open_s: sum(/^open$/) + sum(/^corpus$/),
    cross_stream_s: sum(/stream$/) - sum(new RegExp(`^${statsPass}stream$`)),
    cross_finish_s: sum(/finish$/) - sum(new RegExp(`^${statsPass}finish$`)),
    stats_stream_s: sum(new RegExp(`^${statsPass}stream$`)),
    stats_finish_s: sum(new RegExp(`^${statsPass}finish$`)),
    write_s: sum(/^write/),
    planned_peak_gb: Number(/planned peak ([\d.]+) GB/.exec(String(r.manifest.choices?.memory ?? ''))?.[1] ?? NaN),
    peak_rss_cross_passes_gb: Number(gb(Math.max(0, ...phases.filter((p) => /^pass/.test(p.name) && !p.name.startsWith(statsPass)).map((p) => Math.max(p.peakRss, p.hwm))))),
    peak_rss_stats_pass_gb: Number(gb(peak(new RegExp(`^${statsPass}`)))),
    peak_rss_write_gb: Number(gb(peak(/^write/))),
    universal: r.manifest.results?.universal,
    phases: phases.map((p) => ({
      name: p.name,
      s: (p.end - p.start) / 1000,
      peak_rss_gb: Number(gb(p.peakRss)),
      hwm_gb: Number(gb(p.hwm)),
      js_arrays_gb: Number(gb(p.peakArrays)),
      heap_gb: Number(gb(p.peakHeap)),
    })),
  };
  fs.writeFileSync(join(CACHE, statsOnly ? 'scale-result-stats.json' : writeOnly ? 'scale-result-write.json' : 'scale-result.json'), JSON.stringify(report, null, 2));
  const { phases: _omit, ...head } = report;
  console.log(JSON.stringify(head, null, 2));
  console.log(`paper layout, one pair: float64 S_xy ${N}² = ${gb(8 * N * N)} GB`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
