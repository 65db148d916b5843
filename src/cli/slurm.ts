/**
 * `slurm`: the job scripts of a split run (parts.ts). The parts of a run are the passes of its
 * plan (`--block-size`), its token shards (`--shards N`), or both (every block of every shard),
 * so their number follows from the models' shapes, the block size and N alone: no model is
 * opened here (a shard count the corpus cannot honour is refused by the first part that runs).
 * Slurm runs them as a job array and the merge as a job that starts only when every task
 * succeeded (`afterok`); Kubernetes as an Indexed Job, then a merge Job.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { EngineError } from '../engine/errors';
import type { Print } from './activations';
import { parseCli, UsageError, type AnalyzeCommand } from './args';

/** Flags of `slurm` itself; the others are analyze's, passed to every part. */
const OWN = new Set(['--dir', '--partition', '--time', '--mem', '--cpus', '--cli', '--image', '--pvc', '--shards']);

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface SlurmFiles {
  dir: string;
  parts: number;
  /** Token shards (1: none); parts = blocks × shards. */
  shards: number;
  files: string[];
}

/** How many parts a split run of these models has: a part per block and other model, and the statistics. */
export async function countParts(models: readonly string[], blockSize: readonly [number, number], reference?: string): Promise<number> {
  const { peekCheckpoint } = await import('../engine/checkpoint');
  const { parseModelConfig } = await import('../engine/arch/index');
  const { blockBounds } = await import('../engine/analysis/blocking');
  const shapes = models.map((m) => {
    const ck = peekCheckpoint(m);
    const c = parseModelConfig(ck.configJson, ck.configPath);
    return { dir: ck.dir, n: c.nLayer * c.dMlp };
  });
  const ri = reference === undefined ? 0 : Math.max(0, models.findIndex((m) => m === reference || resolve(m) === resolve(reference) || resolve(m).endsWith(`/${reference}`)));
  return (models.length - 1) * blockBounds(shapes[ri]!.n, blockSize[0], blockSize[1]).length + 1;
}

export async function writeSlurm(argv: readonly string[]): Promise<SlurmFiles> {
  const own: Record<string, string> = {};
  const analyzeArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (OWN.has(flag)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      own[flag.slice(2)] = v;
    } else analyzeArgs.push(a);
  }
  if (!own.dir) throw new UsageError('slurm needs --dir DIR (where the scripts, parts and run go)');
  if (['--block', '--shard', '--out', '--resume'].some((f) => analyzeArgs.includes(f))) {
    throw new UsageError('slurm sets --block, --shard, --out and --resume of each part itself; drop them');
  }
  const shards = own.shards === undefined ? 1 : Number(own.shards);
  if (own.shards !== undefined && !(/^\d+$/.test(own.shards) && shards >= 1)) throw new UsageError(`--shards needs a positive number of token shards, got ${JSON.stringify(own.shards)}`);
  // analyze's own parser checks the options every part will get.
  const probe = analyzeArgs.includes('--block-size') ? ['--block', '0'] : [];
  const cmd = parseCli(['analyze', ...analyzeArgs, ...probe, ...(own.shards !== undefined ? ['--shard', `0/${shards}`] : [])]) as AnalyzeCommand;
  if (!cmd.blockSize && own.shards === undefined) throw new UsageError('slurm needs --block-size A[,B] (parts by blocks of reference neurons), --shards N (token shards), or both');
  const cpus = own.cpus ?? '2';
  if (!/^\d+$/.test(cpus) || Number(cpus) < 1) throw new UsageError(`--cpus needs a positive integer, got ${JSON.stringify(cpus)}`);
  // Slurm's --mem: a whole number, in MB without a unit; a typo would fail only once queued.
  if (own.mem !== undefined && !/^\d+[KMGT]?$/i.test(own.mem)) throw new UsageError(`--mem needs a whole number with K, M, G or T (e.g. 16G), got ${JSON.stringify(own.mem)}`);
  // Blocks × shards tasks; task J is block ⌊J/N⌋ of shard J mod N (blocks alone: J; shards alone: J/N).
  const blocks = cmd.blockSize ? await countParts(cmd.models, cmd.blockSize, cmd.reference) : 1;
  const P = blocks * shards;
  const dir = resolve(own.dir);
  fs.mkdirSync(join(dir, 'parts'), { recursive: true });
  fs.mkdirSync(join(dir, 'logs'), { recursive: true });
  const cli = own.cli ?? `${q(process.execPath)} ${q(resolve(process.argv[1] ?? 'universal-neurons'))}`;

  // The part's command, absolute paths: a task may start in any folder on any node.
  const rest: string[] = [];
  for (let i = 0; i < analyzeArgs.length; i++) {
    if (analyzeArgs[i] === '--models' || analyzeArgs[i] === '--corpus') {
      while (i + 1 < analyzeArgs.length && !analyzeArgs[i + 1]!.startsWith('--')) i++;
    } else rest.push(analyzeArgs[i]!);
  }
  const analyze = [
    'analyze',
    '--models',
    ...cmd.models.map((m) => q(resolve(m))),
    '--corpus',
    ...cmd.corpus.map((c) => q(resolve(c))),
    ...rest.map(q),
  ].join(' ');
  const logs = join(dir, 'logs');
  // Task J: block ⌊J/N⌋ of token shard J mod N (cli/parts.ts taskIndex); blocks alone: J; shards alone: J/N.
  const partFlags = [...(cmd.blockSize ? [shards > 1 ? `--block "$((J / ${shards}))"` : '--block "$J"'] : []), ...(own.shards !== undefined ? [blocks > 1 ? `--shard "$((J % ${shards}))/${shards}"` : `--shard "$J/${shards}"`] : [])].join(' ');
  const partBody = (index: string, threads: string): string => `set -euo pipefail
J=${index}
PART=${q(join(dir, 'parts'))}/part-$(printf %04d "$J")
# How this task ended, for \`status\` (parts.ts partEnd): a file beside the logs, so that it works
# without Slurm's accounting database, and on Kubernetes. Written on any exit of this shell but
# its own SIGKILL; removed when a retry starts.
END=${q(logs)}/part-$J.exit
mkdir -p ${q(logs)}
rm -f "$END"
trap 'rc=$?; printf "exit %s on %s%s, %s\\n" "$rc" "$HOSTNAME" "\${SLURM_JOB_ID:+, Slurm job $SLURM_JOB_ID}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$END.tmp"; mv -f "$END.tmp" "$END"' EXIT
# The part runs as a child, not exec'd, so that the trap sees how it ended; TERM and INT (scancel,
# a time limit, a pod's deletion: bash may be PID 1 there) are passed on to it.
run() {
  "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
  rc=0
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
  return "$rc"
}
# A part that ran before: done, or resumed from its last checkpoint.
if [ -f "$PART/manifest.json" ]; then
  if grep -q '"status": "complete"' "$PART/manifest.json"; then echo "part $J is done"; exit 0; fi
  run ${cli} analyze --resume "$PART" --threads ${threads}
else
  run ${cli} ${analyze} ${partFlags} --out "$PART" --threads ${threads}
fi
`;
  const mergeCmd = `${cli} merge ${q(join(dir, 'parts'))} --out ${q(join(dir, 'run'))}`;
  const sb = (name: string, extra: string[]): string =>
    [
      '#!/bin/bash',
      `#SBATCH --job-name=${name}`,
      `#SBATCH --cpus-per-task=${cpus}`,
      ...(own.partition ? [`#SBATCH --partition=${own.partition}`] : []),
      ...(own.time ? [`#SBATCH --time=${own.time}`] : []),
      ...(own.mem ? [`#SBATCH --mem=${own.mem}`] : []),
      ...extra,
    ].join('\n');
  const files: Record<string, string> = {
    'analyze.sbatch': `${sb('un-parts', [`#SBATCH --array=0-${P - 1}`, `#SBATCH --output=${join(dir, 'logs', 'part-%a.out')}`])}
# Part $SLURM_ARRAY_TASK_ID of ${P} of a split universal-neurons run (README "Runs on a cluster").
${partBody('"$SLURM_ARRAY_TASK_ID"', '"${SLURM_CPUS_PER_TASK:-0}"')}`,
    'merge.sbatch': `${sb('un-merge', [`#SBATCH --output=${join(dir, 'logs', 'merge.out')}`])}
# Runs once every part succeeded (submit.sh: --dependency=afterok).
set -euo pipefail
exec ${mergeCmd} --threads "\${SLURM_CPUS_PER_TASK:-0}"
`,
    'submit.sh': `#!/bin/bash
# Submits the ${P} parts as a job array, and the merge to run when all of them succeeded.
set -euo pipefail
cd ${q(dir)}
parts=$(sbatch --parsable analyze.sbatch)
merge=$(sbatch --parsable --dependency=afterok:\${parts%%;*} merge.sbatch)
echo "parts: job \${parts%%;*} (array 0-${P - 1}); merge: job \${merge%%;*} (after all parts succeed)"
echo "progress: ${cli.replace(/'/g, '')} status ${join(dir, 'parts')}"
`,
    'k8s-parts.yaml': k8sJob({ name: 'universal-neurons-parts', indexed: P, image: own.image, pvc: own.pvc, cpus, mem: k8sMemory(own.mem), script: partBody('"$JOB_COMPLETION_INDEX"', cpus) }),
    'k8s-merge.yaml': k8sJob({ name: 'universal-neurons-merge', image: own.image, pvc: own.pvc, cpus, mem: k8sMemory(own.mem), script: `set -euo pipefail\nexec ${mergeCmd} --threads ${cpus}\n` }),
  };
  for (const [name, text] of Object.entries(files)) {
    const p = join(dir, name);
    fs.writeFileSync(p, text, { mode: name.endsWith('.yaml') ? 0o644 : 0o755 });
  }
  return { dir, parts: P, shards, files: Object.keys(files).map((f) => join(dir, f)) };
}

/**
 * Slurm's --mem in Kubernetes units. Slurm reads a bare number as MB and K/M/G/T as binary
 * multiples (16G = 16,384 MB); Kubernetes reads `16G` as 16·10⁹ bytes, so the same figure needs
 * the `Gi` suffix there for both schedulers to grant the same memory.
 */
export function k8sMemory(mem: string | undefined): string | undefined {
  if (mem === undefined) return undefined;
  const m = /^(\d+)([KMGT]?)$/i.exec(mem);
  if (!m) return mem; // refused earlier by the --mem check
  return `${m[1]}${(m[2] || 'M').toUpperCase()}i`;
}

/** A Kubernetes Job; `indexed`: an Indexed Job of that many completions (JOB_COMPLETION_INDEX is the part). */
function k8sJob(o: { name: string; indexed?: number; image?: string; pvc?: string; cpus: string; mem?: string; script: string }): string {
  const pvc = o.pvc ?? 'universal-neurons-data';
  const script = o.script
    .split('\n')
    .map((l) => `              ${l}`)
    .join('\n');
  return `# ${o.indexed ? `The ${o.indexed} parts as an Indexed Job` : 'The merge: apply it once the parts job is complete'} (README "Runs on a cluster").
# The image must hold node and universal-neurons; the volume must hold the models, the corpus and
# the run folders at the paths below.
apiVersion: batch/v1
kind: Job
metadata:
  name: ${o.name}
spec:
${o.indexed ? `  completionMode: Indexed\n  completions: ${o.indexed}\n  parallelism: ${o.indexed}\n` : ''}  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: ${o.indexed ? 'part' : 'merge'}
          image: ${o.image ?? 'universal-neurons:latest'}
          command:
            - bash
            - -c
            - |
${script}
          resources:
            requests:
              cpu: "${o.cpus}"${o.mem ? `\n              memory: "${o.mem}"` : ''}
          volumeMounts:
            - name: data
              mountPath: /data
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: ${pvc}
`;
}

export async function runSlurm(argv: string[], print: Print): Promise<void> {
  const r = await writeSlurm(argv).catch((e: unknown) => {
    throw e instanceof UsageError || e instanceof EngineError ? e : new EngineError(String(e));
  });
  print(`${r.parts} parts${r.shards > 1 ? ` (${r.parts / r.shards} per token shard × ${r.shards} shards)` : ''}; wrote ${r.files.join(', ')}`);
  print('');
  print('Slurm:');
  print(`  bash ${join(r.dir, 'submit.sh')}        # the job array, then the merge (afterok)`);
  print(`  universal-neurons status ${join(r.dir, 'parts')}   # which parts are done, running, failed or missing`);
  print(`  the run: ${join(r.dir, 'run')}`);
  print('Kubernetes:');
  print(`  kubectl apply -f ${join(r.dir, 'k8s-parts.yaml')} && kubectl wait --for=condition=complete --timeout=-1s job/universal-neurons-parts \\`);
  print(`    && kubectl apply -f ${join(r.dir, 'k8s-merge.yaml')}`);
}
