// `npm run fuzz`: the fuzz suite at scale. Runs --cases cases (default 10,000) of --seed (default:
// today's date as YYYYMMDD) in --jobs workers and writes FUZZ.md (--report) with the measured table.
//   npm run fuzz -- --cases 200 --seed 7 --no-report       a quick look, failures printed
//   npm run fuzz -- --case 1234 --seed 7                   one case, its mutation and outcome
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './base';
import { runFuzz } from './harness';
import { mutationFor } from './mutators/index';
import { fuzzReport } from './report';
import { Runner } from './runner';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

async function main(): Promise<void> {
  const today = new Date();
  const seed = Number(arg('seed') ?? today.getUTCFullYear() * 10000 + (today.getUTCMonth() + 1) * 100 + today.getUTCDate());
  const one = arg('case');
  if (one !== undefined) {
    const m = mutationFor(seed, Number(one));
    console.log(JSON.stringify({ ...m, changes: m.changes.map((c) => ({ path: c.path, bytes: typeof c.content === 'string' ? c.content : c.content.length })) }, null, 2));
    const runner = new Runner();
    try {
      await runner.init();
      console.log(JSON.stringify(await runner.run(m, Number(one)), null, 2));
    } finally {
      runner.close();
    }
    return;
  }
  const count = Number(arg('cases') ?? 10_000);
  const jobs = arg('jobs') ? Number(arg('jobs')) : undefined;
  const caseLimitMs = arg('limit') ? Number(arg('limit')) * 1000 : undefined;
  const date = today.toISOString();
  let last = 0;
  const s = await runFuzz({
    seed,
    count,
    jobs,
    caseLimitMs,
    onResult: (r, done) => {
      if (flag('verbose')) console.log(`#${r.index} ${r.outcome} ${(r.ms / 1000).toFixed(2)}s ${r.family}/${r.op}: ${r.detail.slice(0, 160)} || ${Object.values(r.paths).map((p) => (p?.message ?? '').split('\n')[0]!.slice(0, 240)).join(' || ')}`);
      else if (!['refused', 'harmless', 'different-model'].includes(r.outcome)) {
        console.log(`#${r.index} ${r.outcome.toUpperCase()} ${r.family}/${r.op}: ${r.detail}`);
        for (const [k, p] of Object.entries(r.paths)) if (p?.message) console.log(`    ${k}: ${p.message.split('\n').join('\n    ')}`);
      }
      if (done - last >= Math.max(50, count / 50) || done === count) {
        last = done;
        process.stderr.write(`${done}/${count} cases\n`);
      }
    },
  });
  const report = fuzzReport(s, date);
  if (!flag('no-report')) {
    const out = arg('report') ?? join(ROOT, 'FUZZ.md');
    writeFileSync(out, report);
    console.log(`wrote ${out}`);
  }
  console.log(report.split('\n## ').slice(0, 2).join('\n## '));
  if (s.failures.length > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 2;
});
