// `table` on a table of the paper's pythia-160m shape (issue #15 item 4): 12 layers × 3,072
// neurons in the paper's universal.csv schema, with the pandas index column the paper's
// dataframes carry, rows in no particular order. The per-layer counts, percentages and medians
// must equal a direct computation on the planted values, at every threshold.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { PAPER_COLUMNS } from '../../src/engine/run/neurons';

const ROOT = resolve(__dirname, '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'un-table-pythia-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const L = 12;
const D = 3072; // pythia-160m: d_model 768, d_mlp 3,072

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

test("table on a pythia-160m-shaped table: per-layer universal counts and medians as computed directly", () => {
  // Deterministic planted values: excess spread over [-0.2, 0.9), more universal neurons early.
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const rows: { layer: number; neuron: number; excess: number; baseline: number; line: string[] }[] = [];
  for (let l = 0; l < L; l++) {
    for (let n = 0; n < D; n++) {
      const baseline = 0.1 + 0.3 * rnd();
      const excess = -0.2 + 1.1 * rnd() * rnd() * (1 - l / (2 * L));
      const vals: Record<string, number> = {};
      for (const c of PAPER_COLUMNS) vals[c] = Number((rnd() * 4 - 2).toFixed(6));
      vals.layer = l;
      vals.neuron = n;
      vals.mean_baseline = baseline;
      vals.excess_corr = excess;
      vals.max_corr = baseline + excess;
      rows.push({ layer: l, neuron: n, excess, baseline, line: PAPER_COLUMNS.map((c) => String(vals[c])) });
    }
  }
  const order = rows.map((_, i) => i).sort((a, b) => ((a * 7919) % rows.length) - ((b * 7919) % rows.length));
  const csv = [',' + PAPER_COLUMNS.join(','), ...order.map((j, i) => `${i},${rows[j].line.join(',')}`)].join('\n') + '\n';
  const file = join(tmp, 'pythia-160m.csv');
  writeFileSync(file, csv);

  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'table', file], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  for (let l = 0; l < L; l++) {
    const inLayer = rows.filter((x) => x.layer === l);
    const u = inLayer.filter((x) => x.excess > 0.5).length;
    const line = r.stdout.split('\n').find((x) => new RegExp(`^${l}\\s+${D}\\s`).test(x));
    assert.ok(line, `no line for layer ${l}:\n${r.stdout}`);
    const f = line!.trim().split(/\s+/);
    assert.equal(Number(f[2]), u, `layer ${l} universal count`);
    assert.equal(f[3], `${((100 * u) / D).toFixed(2)}%`, `layer ${l} %`);
    // Medians over all of the layer's neurons, to the three printed digits.
    assert.ok(Math.abs(Number(f[4]) - median(inLayer.map((x) => x.excess))) <= 5e-4 + 1e-12, `layer ${l} median excess ${f[4]}`);
    assert.ok(Math.abs(Number(f[5]) - median(inLayer.map((x) => x.baseline))) <= 5e-4 + 1e-12, `layer ${l} median baseline ${f[5]}`);
  }
  const all = rows.filter((x) => x.excess > 0.5).length;
  assert.match(r.stdout, new RegExp(`^all\\s+${L * D}\\s+${all}\\s`, 'm'));
  const at = (t: number) => rows.filter((x) => x.excess > t).length;
  assert.match(r.stdout, new RegExp(`> 0\\.3: ${at(0.3)}\\b.*> 0\\.4: ${at(0.4)}\\b.*> 0\\.5: ${at(0.5)}\\b`));
});
