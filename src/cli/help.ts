/**
 * The CLI's help text, its command table and the flags each command takes (args.ts parses with
 * them; `universal-neurons CMD --help` is built from HELP by commandHelp).
 */

export const HELP = `universal-neurons: universal neurons across GPT-2 seeds (Gurnee et al. 2024), onnxruntime on CPU

Usage:
  universal-neurons analyze --models DIR... --corpus PATH... --tokens N [--out DIR] [options]
  universal-neurons analyze --resume RUN [--top K]
  universal-neurons summary RUN [--top K]
  universal-neurons table FILE.csv [--threshold T] [--top K] [--d-mlp N] [--run RUN]
  universal-neurons activations --model DIR (--text T | --file F) [--top K] [--json OUT] [--threads N]
  universal-neurons demo [--tokens N] [--top K] [--out DIR] [--threads N]
  universal-neurons intervene --model DIR (--text T | --file F) --neuron L3.N120[,...]
                    --mode zero|mean|fix=V|scale=K [--hook pre|post] [--tokens A:B] [--top K]
                    [--run RUN] [--json OUT] [--threads N]
  universal-neurons development --final DIR[@REV] --checkpoints DIR@REV,... --corpus PATH... --tokens N
                    [--out DIR] [--threads N]
  universal-neurons development RUN [--neuron L1.N5]
  universal-neurons merge PART... --out RUN [--partial] [--threads N]
  universal-neurons status PARTS-DIR
  universal-neurons slurm --models DIR... --corpus PATH... --tokens N (--block-size A[,B] | --shards N) --dir DIR
                    [--partition P] [--time T] [--mem M] [--cpus C] [--cli CMD] [--image I]
                    [--pvc NAME] [analyze options]
  universal-neurons COMMAND --help
  universal-neurons --help | --version

Commands:
  analyze       Correlate every neuron of the reference model with every neuron of the other
                models over the corpus, against a random-rotation baseline; write the run folder
                (manifest.json, neurons.arrow, universal.csv, partners.arrow, examples) and print
                its summary. Progress (tokens/s, ETA) goes to stderr. Checkpoints let an
                interrupted run continue with --resume; the results are identical.
  summary       Per-layer table of a finished run (neurons, universal count and %, median
                excess correlation, median rotated baseline), counts at thresholds 0.3/0.4/0.5,
                and the top universal neurons.
  table         The same summary for any CSV in the paper's universal.csv schema (the paper's
                own files included: all neurons, or only the universal ones).
  activations   Run one checkpoint on a text. Prints one line per token (BOS first): its text
                (JSON-escaped), id, character range start-end, and the top K neurons by
                post-activation as L{layer}.N{neuron}=value.
  intervene     Run one checkpoint on a text twice, clean and with the neurons edited at their
                hook_post (or hook_pre), and print per token the loss of the actual next token,
                the entropy, their change, and the most probable next token before and after.
  development   Training checkpoints of one seed: for each neuron of the final checkpoint, its
                best partner and correlation in each earlier checkpoint (hub cache revisions
                stepN, as Pythia's), i.e. when the neuron formed. With --final it runs the
                analysis (final as reference, no families) and prints per step the mean and
                median best correlation and the share above 0.5 and 0.9; with RUN it prints
                that of a finished run, and with --neuron one neuron's partner per step.
  merge         Check that the parts of a split run (analyze --block, --shard) belong to one run
                (models, corpus, settings, version) and that every block and shard is there once, and
                finish the run: the same files as a single-machine run. A folder holding the
                parts as subfolders may stand for them. --partial joins some parts into one part,
                merged later with the rest (a tree reduction). README "Runs on a cluster".
  status        Each part of a split run: done, running, interrupted, failed (with its error,
                its job's exit line DIR/logs/part-J.exit, and the command that resumes it) or
                missing, with its tokens; for a slurm folder, the sbatch line that reruns the
                failed parts and the merge.
  slurm         Write DIR/analyze.sbatch (a Slurm job array, one task per part), DIR/merge.sbatch
                (runs once every task succeeded: afterok), DIR/submit.sh and Kubernetes Indexed
                Jobs (DIR/k8s-parts.yaml, DIR/k8s-merge.yaml), and print how to submit them.
                Parts go to DIR/parts, the run to DIR/run.
  demo          Analyse the shipped family models/tiny-gpt2-{a..e} on the shipped held-out
                corpus (a small token budget) and print the summary.

Options of analyze:
  --models DIR...      Two or more model folders (GPT-2 or GPT-NeoX) of one architecture and
                       tokenizer; ENTRY@REV names a revision of a hub cache entry (refs/REV or a
                       snapshot's commit), recorded in the manifest.
  --corpus PATH...     .txt/.md/.jsonl ("text" per line) files, .tokens.bin (uint16 ids), or folders.
  --tokens N           Token budget: the first N tokens as whole rows of the context length
                       (at least one row; 1e6, 1_000_000, 1M and 64k are accepted).
  --out DIR            Run folder (default ./.universal-neurons/runs/<id>).
  --reference NAME     Reference model (folder name or path; default the first).
  --threshold T        Universal if excess correlation > T (default 0.5).
  --seed S             Seed of the baseline's random rotations: an integer in [0, 2^32) (default 0).
  --batch-rows B       Corpus rows per batch (default 8).
  --checkpoint-every K Checkpoint every K batches (default: every 25 batches that are also a minute
                       of stream after the last checkpoint).
  --memory-gb G        Peak memory to plan for, GB (10^9 bytes; default 8). Models whose cross moments do not fit
                       run in blocks of reference columns, one pass over the corpus per block and
                       other model (slower; same results); the batch rows shrink if needed.
  --mode exact|fast    exact (default): every pair's moments, fp32 GEMMs accumulated in float64.
                       fast: screen partners on a sample spread over the budget (every k-th batch,
                       ~65k tokens, read first), then exact sums over all tokens for each neuron's
                       candidates only. Matched exact mode on the shipped models (BENCHMARKS.md)
                       from 40,960 tokens; below that it runs exact (the manifest says so).
  --no-families        Skip neuron families and roles (on by default: VR of token labels, roles
                       from the weights, an entropy intervention).
  --family-vr K=V,...  Family thresholds: unigram=0.5 alphabet=0.35 feature=0.5 syntax=0.5
                       semantic=0.5 position-mi=0.05 position-kurtosis=2 (method.md defaults;
                       feature, syntax and semantic are ours). The five VR thresholds are
                       variance reductions in [0, 1]; position-mi (nats) and position-kurtosis
                       are >= 0.
  --roles K=V,...      Role settings: entropy-layers=0.2 entropy-l2=3 entropy-vocab-kurt=10
                       entropy-kurt=10 (the paper's entropy-neuron query, layers scaled to depth:
                       the last max(1, round(0.2 x layers))); entropy-neurons=1 intervention-rows=256
                       (the entropy intervention: top candidates measured, corpus rows scored);
                       attention-z=5 (attention-deactivation role cut-off) attention-pairs=20
                       (pairs listed by |h|).
  --resume RUN         Continue an interrupted run (folder or id); settings come from its manifest.
  --block J            Compute part J of a split run only (a block of reference neurons against one
                       other model, or the statistics), for another machine to merge (merge PART...
                       --out RUN; README "Runs on a cluster"). Needs --block-size; exact mode only.
  --block-size A[,B]   Reference neurons per block (the first block A, the rest B; default B = A),
                       fixed so that every machine cuts the run the same way.
  --shard I/N          Compute token shard I (0 to N-1) of N only: its corpus rows, every pass (or
                       with --block J, pass J), for merge to sum. Boundaries follow from the corpus
                       and settings alone (where the cross moments add their fp32 sums into float64).

Options of intervene:
  --neuron L3.N120[,...]  Neurons to edit, L{layer}.N{neuron}, comma-separated.
  --mode MODE     zero: set them to 0; mean: to their mean over this prompt's tokens but BOS
                  (with --run: the run's corpus mean, which exists for hook_pre only); fix=V: to
                  V; scale=K: multiply them by K (V and K finite numbers).
  --run RUN       With --mode mean: take the means from this run's statistics (folder or id).
  --hook pre|post Which activation to edit (default post; an edited hook_pre feeds the GELU).
  --tokens A:B    Edit only tokens A..B-1 (BOS = 0; 5: and :8 leave a side open; default all).
  --top K         Next tokens listed per side in --json (default 5; the table shows the first).
  --json OUT      Also write {"model", "neurons", "mode", "hook", "range", "tokens": [{id,text,
                  start,end}], "clean": {"loss", "entropy", "ln_scale", "top"}, "intervened":
                  {...}, "delta": {...}, "top_change"}. BOS is token 0; loss[i] = -log p(token
                  i+1 | tokens 0..i) for i < n-1 (nats); entropy[i] is that next-token
                  distribution's entropy (n entries: the last token's too). Prompts longer than
                  the context run in windows, as for activations.

Options of development:
  --final DIR[@REV]    The final checkpoint: a hub cache entry models--org--name (its main) or a
                       revision of it, ENTRY@step143000.
  --checkpoints LIST   Earlier revisions of the same entry, comma-separated or repeated:
                       ENTRY@step1000,ENTRY@step8000 (each named stepN).
  --corpus, --tokens, --out, --threads   As for analyze.
  --neuron L1.N5       With RUN: that neuron's best partner and correlation at each step.

Options of merge:
  --out RUN            The merged run's folder (with --partial: the joined part's).
  --partial            Join some parts into one part instead of finishing the run.

Options of slurm:
  --dir DIR            Where the scripts, logs, parts and run go.
  --partition P        Slurm partition (#SBATCH --partition).
  --time T             Time limit per task, as Slurm writes it (e.g. 2:00:00).
  --mem M              Memory per task, as Slurm writes it: a whole number with K, M, G or T (e.g. 16G).
  --cpus C             CPUs per task (default 2), also each part's --threads.
  --shards N           Token shards: N tasks (with --block-size, N per block), each --shard I/N.
  --cli CMD            How the jobs call this tool (default: this installation's path).
  --image I, --pvc NAME  The Kubernetes Jobs' container image and the volume claim holding DIR.
  Every other option is analyze's (checked here), passed to each part.

Options of table:
  --threshold T        Universal if excess correlation > T (default 0.5).
  --d-mlp N            Neurons per layer, for percentages of a table that holds only some neurons.
  --run RUN            A finished run (folder or id) whose medians of the neuron statistics are
                       shown beside the table's (properties of universal neurons).

Options of demo:
  --tokens N           Token budget (default the demo's, 40,960; counts as for analyze).
  --out DIR            Run folder (default as for analyze).

Common options:
  --model DIR   Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json) or a
                hub cache folder models--org--name.
  --text T      The text to analyse.
  --file F      Read the text from a UTF-8 file.
  --top K       Neurons listed (default 5 for activations, 15 for summaries).
  --json OUT    Also write {"model", "tokens": [{id,text,start,end}], "hook_pre", "hook_post"}
                to OUT, activations indexed [layer][token][neuron], BOS as token 0.
  --threads N   onnxruntime intra-op threads (default 0: every core this process may use).
  --execution-provider cpu|cuda
                onnxruntime's execution provider (default cpu). cuda needs onnxruntime-node's
                CUDA binaries (ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node),
                CUDA 12 and cuDNN 9; without them the command stops at once and says so.
                Untested on GPUs here. Recorded in the run's manifest.
  -h, --help    Show this help (after a command: that command's help).
  --version     Print the version.

Exit codes: 0 ok, 1 error (bad model, unreadable file, ...), 2 usage error, 130 interrupted.
`;

export const COMMANDS = ['analyze', 'summary', 'table', 'activations', 'intervene', 'demo', 'development', 'merge', 'status', 'slurm'] as const;

/**
 * One command's help (`universal-neurons CMD --help`): its usage lines and description from HELP,
 * then the options it takes (analyze's own block, and the common options it accepts).
 */
export function commandHelp(cmd: string): string {
  const lines = HELP.split('\n');
  // A usage line and its continuation lines (indented further, as intervene's).
  const usage: string[] = [];
  for (const [i, l] of lines.entries()) {
    if (l.startsWith(`  universal-neurons ${cmd} `) || l === `  universal-neurons ${cmd}`) {
      usage.push(l);
      for (let j = i + 1; j < lines.length && /^ {5,}\S/.test(lines[j]!) && !lines[j]!.trimStart().startsWith('universal-neurons'); j++) usage.push(lines[j]!);
    }
  }
  const start = lines.findIndex((l) => new RegExp(`^  ${cmd}\\s{2,}`).test(l));
  const desc: string[] = [];
  for (let i = start; i >= 0 && i < lines.length; i++) {
    if (i > start && (/^  \S/.test(lines[i]!) || lines[i] === '')) break;
    desc.push(lines[i]!);
  }
  const block = (title: string): string[] => {
    const b = lines.findIndex((l) => l === title);
    if (b < 0) return [];
    const out: string[] = [];
    for (let i = b + 1; i < lines.length && lines[i] !== ''; i++) out.push(lines[i]!);
    return out;
  };
  // Common options this command takes: an option's entry is its first line and the indented lines under it.
  const own = ALLOWED[cmd] ?? [];
  const common: string[] = [];
  let keep = false;
  for (const l of block('Common options:')) {
    const m = /^  (?:-\w, )?--([\w-]+)/.exec(l);
    if (m) keep = own.includes(m[1]!) || m[1] === 'help';
    if (keep) common.push(l);
  }
  const options = block(`Options of ${cmd}:`);
  return [
    'Usage:',
    ...usage,
    '',
    ...desc,
    ...(options.length ? ['', 'Options:', ...options] : []),
    ...(common.length ? ['', options.length ? 'Also:' : 'Options:', ...common] : []),
    '',
    'Exit codes: 0 ok, 1 error, 2 usage error, 130 interrupted.',
    '',
  ].join('\n');
}

/** The flags each command takes. */
export const ALLOWED: Record<string, readonly string[]> = {
  activations: ['model', 'text', 'file', 'top', 'json', 'threads', 'execution-provider'],
  demo: ['tokens', 'threads', 'top', 'out', 'execution-provider'],
  analyze: ['models', 'corpus', 'tokens', 'out', 'reference', 'threshold', 'seed', 'batch-rows', 'checkpoint-every', 'memory-gb', 'mode', 'no-families', 'family-vr', 'roles', 'resume', 'threads', 'top', 'block', 'block-size', 'shard', 'execution-provider'],
  summary: ['top'],
  development: ['final', 'checkpoints', 'corpus', 'tokens', 'out', 'threads', 'neuron', 'execution-provider'],
  table: ['top', 'threshold', 'd-mlp', 'run'],
  // Split runs: merge and status are parsed by parseCli; slurm has its own parser (slurm.ts),
  // which passes analyze's options through to every part, so its list is empty.
  merge: ['out', 'threads', 'partial'],
  status: [],
  slurm: [],
  intervene: ['model', 'text', 'file', 'neuron', 'mode', 'hook', 'tokens', 'top', 'run', 'json', 'threads', 'execution-provider'],
};
