/**
 * Dev check of the built webviews outside VS Code: writes synthetic runs (test/helpers), loads them
 * through runData.ts exactly as the panel hosts do, serves the HTML from panels/html.ts (same
 * nonce CSP; cspSource = this local server) and drives headless Chromium with playwright-core:
 * CSP violations, canvases with drawn pixels, theme switch redraw, table filtering speed at
 * GPT2-small size, row click → openNeuron, prompt tooltip. Screenshots go to the out folder.
 *
 *   npm run build && node --import tsx webview/dev/preview.cjs [out-dir]
 *   UN_PREVIEW_RUN=<run folder> …   also shows a real run's overview and its entropy neuron's page
 *
 * (JavaScript, so the typecheck does not need playwright's types; tsx resolves the .ts imports.)
 *
 * Needs `.e2e-tools/pw` (test/e2e/setup.sh) and /usr/bin/chromium. Not part of `npm test`.
 */
const { createServer } = require('node:http');
const { mkdirSync, readFileSync, rmSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join, resolve } = require('node:path');
const { SYNTHETIC_ATTENTION_NEURON, SYNTHETIC_ENTROPY_NEURON, writeSyntheticRun } = require('../../test/helpers/synthetic-run');
const { getRun } = require('../../src/engine/run/data');
const { neuronData, overviewData, tableData } = require('../../src/extension/runData');
const { makeNonce, webviewHtml } = require('../../src/extension/panels/html');
const { PROTOCOL_VERSION } = require('../../src/protocol');

const root = resolve(__dirname, '..', '..');
const out = resolve(process.argv[2] ?? '/tmp/un-preview');
const work = join(out, 'runs');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const DARK = {
  '--vscode-foreground': '#cccccc',
  '--vscode-descriptionForeground': '#9d9d9d',
  '--vscode-editor-background': '#1f1f1f',
  '--vscode-editorWidget-border': '#454545',
  '--vscode-charts-blue': '#3794ff',
  '--vscode-charts-orange': '#d18616',
  '--vscode-charts-red': '#f14c4c',
  '--vscode-charts-green': '#89d185',
  '--vscode-charts-purple': '#b180d7',
  '--vscode-charts-yellow': '#cca700',
  '--vscode-terminal-ansiCyan': '#11a8cd',
  '--vscode-focusBorder': '#0078d4',
  '--vscode-font-family': 'sans-serif',
  '--vscode-font-size': '13px',
  '--vscode-editor-font-family': 'monospace',
  '--vscode-textLink-foreground': '#4daafc',
};
const LIGHT = {
  ...DARK,
  '--vscode-foreground': '#3b3b3b',
  '--vscode-descriptionForeground': '#717171',
  '--vscode-editor-background': '#ffffff',
  '--vscode-editorWidget-border': '#c8c8c8',
  '--vscode-charts-blue': '#1a85ff',
  '--vscode-charts-orange': '#c27d1a',
  '--vscode-charts-red': '#e51400',
  '--vscode-charts-green': '#388a34',
  '--vscode-charts-purple': '#652d90',
  '--vscode-charts-yellow': '#bf8803',
  '--vscode-terminal-ansiCyan': '#0598bc',
};

async function main() {
  const small = join(work, 'small');
  const big = join(work, 'gpt2-small-size');
  const modelDir = join(root, 'models', 'gpt2-tokenizer');
  let t = Date.now();
  await writeSyntheticRun({ dir: small, nLayers: 4, dMlp: 128, modelDir, families: true, vocab: true, k: 6 });
  await writeSyntheticRun({ dir: big, nLayers: 12, dMlp: 3072, modelDir, k: 3, seed: 7, families: true });
  // Only neurons.arrow (the pipeline's layout), like the CLI-made run of the editor e2e.
  const bare = join(work, 'bare');
  await writeSyntheticRun({ dir: bare, nLayers: 4, dMlp: 64, k: 0, partners: false, wide: true, seed: 3 });
  console.log(`synthetic runs written in ${Date.now() - t} ms`);

  t = Date.now();
  const runBig = await getRun(big);
  const tLoadBig = Date.now() - t;
  const runSmall = await getRun(small);
  const payloads = {
    overview: { view: 'overview', data: overviewData(runSmall) },
    'overview-big': { view: 'overview', data: overviewData(runBig) },
    table: { view: 'table', data: tableData(runBig) },
    'table-small': { view: 'table', data: tableData(runSmall) },
    neuron: { view: 'neuron', data: neuronData(runSmall, { layer: 3, neuron: 7 }) },
    'neuron-big': { view: 'neuron', data: neuronData(runBig, { layer: 11, neuron: 100 }) },
    'neuron-bare': { view: 'neuron', data: neuronData(await getRun(bare), { layer: 0, neuron: 0 }) },
    'neuron-entropy': { view: 'neuron', data: neuronData(runSmall, SYNTHETIC_ENTROPY_NEURON(4)) },
    'neuron-attention': { view: 'neuron', data: neuronData(runSmall, SYNTHETIC_ATTENTION_NEURON) },
    prompt: {
      view: 'prompt',
      data: {
        document: 'file:///work/prompt.txt',
        title: 'prompt.txt',
        neuronLabel: 'L3.N7',
        tokens: 'The cat sat on the mat.\nIt was a good day for a nap, said the cat.'.split(/(?=[ .,\n])/).reduce(
          (acc, text, i) => {
            const start = acc.at(-1)?.end ?? 0;
            acc.push({ text, start, end: start + text.length, id: 1000 + i, value: Math.sin(i) * 2 });
            return acc;
          },
          [],
        ),
      },
    },
  };
  const real = process.env.UN_PREVIEW_RUN;
  if (real) {
    const run = await getRun(resolve(real));
    payloads['overview-real'] = { view: 'overview', data: overviewData(run) };
    const j = run.rolesFile?.entropy.keys().next().value;
    const ref = j !== undefined ? { layer: Math.floor(j / run.dMlp), neuron: j % run.dMlp } : { layer: run.layer[0], neuron: run.neuron[0] };
    payloads['neuron-real'] = { view: 'neuron', data: neuronData(run, ref) };
  }
  console.log(`GPT2-small-size run (36,864 neurons) loaded in ${tLoadBig} ms; table payload ${(JSON.stringify(payloads.table).length / 1e6).toFixed(1)} MB`);

  let origin = '';
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/ext/')) {
      const p = resolve(root, '.' + url.pathname.slice(4));
      if (!p.startsWith(join(root, 'dist')) && !p.startsWith(join(root, 'media'))) return res.writeHead(403).end();
      try {
        const body = readFileSync(p);
        res.writeHead(200, { 'content-type': p.endsWith('.js') ? 'text/javascript' : p.endsWith('.css') ? 'text/css' : 'application/octet-stream' });
        return res.end(body);
      } catch {
        return res.writeHead(404).end();
      }
    }
    const name = url.pathname.slice(1);
    const p = payloads[name];
    if (!p) return res.writeHead(name === 'favicon.ico' ? 204 : 404).end();
    const html = webviewHtml({ view: p.view, title: name, nonce: makeNonce(), cspSource: origin, resource: (...s) => `${origin}/ext/${s.join('/')}` });
    res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;

  const req = createRequire(join(root, '.e2e-tools', 'pw', 'node_modules', 'x.js'));
  const { chromium } = req('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  const failures = [];
  const check = (ok, what) => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures.push(what);
  };

  try {
    for (const name of Object.keys(payloads)) {
      const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
      const errors = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
      const init = { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: payloads[name] };
      await page.addInitScript(
        ({ init, dark }) => {
          const w = window;
          w.__posted = [];
          w.__csp = [];
          w.__state = undefined;
          document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
          w.acquireVsCodeApi = () => ({
            postMessage: (m) => {
              w.__posted.push(m);
              if (m.type === 'ready') setTimeout(() => window.postMessage(init, '*'), 0);
            },
            getState: () => w.__state,
            setState: (s) => (w.__state = s),
          });
          document.addEventListener('DOMContentLoaded', () => {
            for (const [k, v] of Object.entries(dark)) document.documentElement.style.setProperty(k, v);
            document.body.classList.add('vscode-dark');
          });
        },
        { init, dark: DARK },
      );
      const t0 = Date.now();
      await page.goto(`${origin}/${name}`);
      await page.waitForSelector('h1', { timeout: 20000 });
      const nCanvas = await page.locator('canvas').count();
      if (nCanvas) await page.waitForFunction((n) => document.querySelectorAll('canvas[data-drawn="yes"]').length === n, nCanvas, { timeout: 20000 });
      const tRender = Date.now() - t0;
      const pixels = await page.evaluate(() =>
        Array.from(document.querySelectorAll('canvas')).map((c) => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
          return n;
        }),
      );
      check(pixels.every((n) => n > 0), `${name}: ${nCanvas} canvas(es) drawn, non-transparent pixels ${pixels.join('/')} (render ${tRender} ms)`);
      await page.screenshot({ path: join(out, `${name}-dark.png`), fullPage: name !== 'table' });

      if (nCanvas) {
        const before = await page.evaluate(() => document.querySelector('canvas').toDataURL());
        await page.evaluate((light) => {
          for (const [k, v] of Object.entries(light)) document.documentElement.style.setProperty(k, v);
          document.body.classList.replace('vscode-dark', 'vscode-light');
        }, LIGHT);
        await page.waitForFunction((n) => document.querySelectorAll('canvas[data-drawn="yes"]').length === n, nCanvas, { timeout: 20000 });
        const after = await page.evaluate(() => document.querySelector('canvas').toDataURL());
        check(before !== after, `${name}: charts redrawn with the light theme's colours`);
        await page.screenshot({ path: join(out, `${name}-light.png`), fullPage: true });
      }

      if (name === 'table') {
        const rows = () => page.locator('vscode-data-grid-row[data-row]').count();
        check((await rows()) > 0, `table: ${await rows()} universal rows on the first page`);
        let t1 = Date.now();
        await page.locator('vscode-checkbox').click();
        await page.waitForFunction(() => /36,864 of 36,864/.test(document.querySelector('.status')?.textContent ?? ''), null, { timeout: 10000 });
        const tAll = Date.now() - t1;
        check((await rows()) === 100, `table: "universal only" off → all 36,864 neurons, page of ${await rows()} rows in ${tAll} ms`);
        t1 = Date.now();
        await page.locator('vscode-data-grid-cell[cell-type="columnheader"]', { hasText: 'kurt' }).first().click();
        await page.waitForFunction(() => document.querySelector('vscode-data-grid-cell[aria-sort="descending"]')?.textContent?.startsWith('kurt'), null, { timeout: 10000 });
        check(true, `table: sort by kurt in ${Date.now() - t1} ms`);
        await page.locator('vscode-data-grid-row[data-row="2"]').click();
        const posted = await page.evaluate(() => window.__posted);
        check(posted.some((m) => m.type === 'openNeuron'), `table: row click posts ${JSON.stringify(posted.find((m) => m.type === 'openNeuron'))}`);
        const state = await page.evaluate(() => window.__state);
        check(JSON.stringify(state).includes('"universalOnly":false'), `table: filters persisted with setState: ${JSON.stringify(state)}`);
        await page.screenshot({ path: join(out, `table-all.png`) });
      }
      if (name === 'table-small') {
        await page.setViewportSize({ width: 560, height: 800 });
        const scrolls = await page.evaluate(() => {
          const w = document.querySelector('.grid-wrap');
          return w.scrollWidth > w.clientWidth;
        });
        check(scrolls, 'table: in a narrow panel the grid scrolls sideways instead of squeezing its columns');
        await page.screenshot({ path: join(out, 'table-narrow.png') });
      }
      if (name === 'prompt') {
        await page.locator('.prompt-text .tok').nth(2).hover();
        const tip = await page.locator('.tooltip').textContent();
        check(/id 1002/.test(tip ?? ''), `prompt: tooltip ${JSON.stringify(tip)}`);
        await page.locator('.prompt-text .tok').nth(2).click();
        const posted = await page.evaluate(() => window.__posted);
        check(posted.some((m) => m.type === 'revealRange'), 'prompt: click posts revealRange');
        await page.screenshot({ path: join(out, `prompt-hover.png`) });
      }
      if (name.startsWith('neuron') && name !== 'neuron-bare' && name !== 'neuron-real') {
        const fam = await page.locator('section[aria-labelledby="h-family-and-roles"]').innerText().catch(() => '');
        check(/Family/.test(fam) && /Roles/.test(fam), `${name}: family section ${JSON.stringify(fam.replace(/\s+/g, ' ').slice(0, 160))}`);
        const hits = await page.locator('ol.contexts li.hit .hit-badge').count();
        check(hits > 0 || name !== 'neuron', `${name}: ${hits} top contexts marked as carrying the label`);
      }
      if (name === 'neuron-entropy') {
        check((await page.locator('.entropy-chart canvas[data-drawn="yes"]').count()) === 1, 'neuron-entropy: intervention chart drawn');
      }
      if (name === 'table-small') {
        await page.locator('vscode-data-grid-cell[cell-type="columnheader"]', { hasText: 'family' }).first().click();
        await page.waitForFunction(() => document.querySelector('vscode-data-grid-cell[aria-sort="ascending"]')?.textContent?.startsWith('family'), null, { timeout: 10000 });
        const first = await page.locator('vscode-data-grid-row[data-row="0"]').innerText();
        check(/unigram/.test(first), `table-small: sorted by family, first row ${JSON.stringify(first.replace(/\s+/g, ' '))}`);
      }
      if (name === 'neuron') {
        const links = page.locator('vscode-link');
        if ((await links.count()) > 0) {
          await links.first().click();
          const posted = await page.evaluate(() => window.__posted);
          check(posted.some((m) => m.type === 'openNeuron'), 'neuron: partner best-match link posts openNeuron');
        }
      }
      const csp = await page.evaluate(() => window.__csp);
      if (csp.length) {
        const styled = await page.evaluate(() => {
          const out = [];
          const walk = (root) => {
            for (const e of Array.from(root.querySelectorAll('*'))) {
              if (e.hasAttribute('style')) out.push(e.tagName + ' ' + e.getAttribute('style').slice(0, 80));
              if (e.shadowRoot) walk(e.shadowRoot);
            }
          };
          walk(document);
          return out;
        });
        console.log('  elements with a style attribute:', styled.slice(0, 10));
      }
      check(csp.length === 0, `${name}: no CSP violations${csp.length ? ': ' + csp.slice(0, 5).join('; ') : ''}`);
      check(errors.length === 0, `${name}: no console errors${errors.length ? ': ' + errors.slice(0, 5).join('; ') : ''}`);
      await page.close();
    }
  } finally {
    await browser.close();
    server.close();
  }
  console.log(failures.length ? `${failures.length} failed` : 'all passed', `— screenshots in ${out}`);
  process.exitCode = failures.length ? 1 : 0;
}

void main();
