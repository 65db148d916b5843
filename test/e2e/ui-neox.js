// UI tests on GPT-NeoX and training checkpoints (issue #15), called from ui.js after the editor
// tests. run.sh made a development run of the tiny GPT-NeoX's training checkpoints (the
// final step against steps 250, 500 and 1000, test/fixtures/neox-checkpoints) in a Hugging Face
// cache of its own (HF_HOME), and put a GPT-NeoX folder in the workspace. Here: open that run,
// analyse prompt.txt on its reference model (the NeoX final checkpoint), hover a token, open the
// neuron page from the hover's link and read its development chart; then the "Choose Model…"
// picker lists the shipped family, the workspace folder and the cache's revisions, and the model
// it sets is the one Show Token Activations runs. Screenshots 11-… to 14-… in <shots>.
const fs = require('fs');
const path = require('path');
const { frameWith, hoverText, pickItem } = require('./ui-editor');

const HOVER_ROW = /L\d+\.N\d+\s*\|?\s*-?\d+\.\d{3}/;

exports.neoxUi = async function neoxUi({ page, palette, check, shot }) {
  const runDir = process.env.E2E_NEOX_RUN_DIR;
  const hub = process.env.HF_HOME && path.join(process.env.HF_HOME, 'hub');
  const ws = process.env.E2E_WS;
  const quickPick = (text) => pickItem(page, text);
  const focusPrompt = async () => {
    const tab = page.locator('.tabs-container .tab', { hasText: 'prompt.txt' }).first();
    await tab.click();
    await page.waitForFunction(() => document.querySelector('.tab.active')?.textContent?.includes('prompt.txt'), null, { timeout: 10000 });
    await page.locator('.editor-instance .view-lines').first().click({ position: { x: 5, y: 5 } });
  };
  const commitOf = (entry, ref) => fs.readFileSync(path.join(hub, entry, 'refs', ref), 'utf8').trim();

  await check('NeoX: Open Run… picks the development run of the tiny GPT-NeoX', async () => {
    if (!runDir || !fs.existsSync(path.join(runDir, 'manifest.json'))) throw new Error(`no development run at ${runDir} (run.sh makes it)`);
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await palette('>', 'Universal Neurons: Open Run…');
    await quickPick('neox-dev');
    await page.waitForTimeout(500);
    const m = JSON.parse(fs.readFileSync(path.join(runDir, 'manifest.json'), 'utf8'));
    return `models ${JSON.stringify((m.models || []).map((x) => x.label || x.name || x))}`.slice(0, 300);
  });

  await check('NeoX: Analyze Prompt runs on the final checkpoint', async () => {
    await focusPrompt();
    await palette('>', 'Universal Neurons: Analyze Prompt');
    await page.waitForSelector('.statusbar >> text=/tokens analysed on tiny-neox-a/', { timeout: 60000 });
    return (await page.locator('.statusbar').innerText()).split('\n').find((l) => /tokens analysed/.test(l));
  });

  let neuron = '';
  await check('NeoX: hover " cat" lists the NeoX neurons with values', async () => {
    const text = await hoverText(page, 'cat', (t) => HOVER_ROW.test(t) && /tiny-neox-a/.test(t));
    await page.waitForTimeout(300);
    await shot('11-neox-hover.png');
    if (!/" cat"/.test(text)) throw new Error('hover is not about " cat": ' + JSON.stringify(text.slice(0, 400)));
    if (!/tiny-neox-a/.test(text)) throw new Error('hover does not name the NeoX model: ' + JSON.stringify(text.slice(0, 600)));
    const rows = text.match(/L\d+\.N\d+/g) || [];
    if (rows.length < 3 || !HOVER_ROW.test(text)) throw new Error('no neuron rows with values: ' + JSON.stringify(text.slice(0, 600)));
    neuron = rows[0];
    return `${rows.length} neurons, first ${neuron}: ${JSON.stringify(text.replace(/\s+/g, ' ').slice(0, 240))}`;
  });

  await check("NeoX: the hover's neuron link opens its page with the development chart", async () => {
    const link = page.locator('.monaco-hover:visible a[data-href^="command:universalNeurons.showNeuron"], .monaco-hover:visible a[href^="command:universalNeurons.showNeuron"]').first();
    if (!(await link.count())) throw new Error('no neuron-page link in the hover');
    const linkText = (await link.innerText()).trim();
    await link.click();
    const sel = 'section[aria-labelledby="h-development-over-training"]';
    const frame = await frameWith(page, `${sel} canvas[data-drawn="yes"]`, 45000);
    const section = frame.locator(sel);
    const title = (await frame.locator('h1').first().innerText().catch(() => '')).trim();
    await section.evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await section.locator('details').evaluate((d) => { d.open = true; });
    await page.mouse.move(1100, 860); // off the hover, so it closes before the screenshot
    await page.waitForTimeout(800);
    await shot('12-neox-development.png');
    const painted = await section.locator('canvas').evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    const rows = (await section.locator('tbody tr').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    if (!title.includes(linkText)) throw new Error(`page "${title}" is not the linked ${linkText}`);
    if (painted < 500) throw new Error(`development chart has ${painted} painted pixels`);
    // Steps 250, 500, 1000 (a partner and its correlation each, three decimals), then the
    // final step (itself, 1).
    const want = [/^250 tiny-neox-a@step250 L\d+\.N\d+ -?[01](\.\d{1,3})?$/, /^500 tiny-neox-a@step500 L\d+\.N\d+ -?[01](\.\d{1,3})?$/, /^1,000 tiny-neox-a@step1000 L\d+\.N\d+ -?[01](\.\d{1,3})?$/, /^2,000 tiny-neox-a@main itself 1(\.0+)?$/];
    if (rows.length !== want.length || !want.every((re, i) => re.test(rows[i]))) throw new Error('development table: ' + JSON.stringify(rows));
    return `${linkText}: ${painted} painted pixels; ${rows.join(' | ')}`;
  });

  await check('Choose Model…: the shipped family, the workspace folder and the cache revisions with steps', async () => {
    await page.keyboard.press('Escape');
    await focusPrompt();
    await palette('>', 'Universal Neurons: Choose Model…');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    const rowsFor = async (filter) => {
      await input.fill(filter);
      await page.waitForTimeout(400);
      return (await page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    };
    const found = {};
    // Each group by a filter (the list is virtualised: rows out of view are not in the DOM).
    found.shipped = await rowsFor('tiny-gpt2-b');
    found.workspace = await rowsFor('neox-14m');
    found.neox = await rowsFor('tiny-neox-a@');
    found.gpt2 = await rowsFor('tiny-gpt2-a@step');
    await input.fill('');
    await page.waitForTimeout(400);
    await shot('13-choose-model.png');
    const has = (rows, re) => rows.some((r) => re.test(r));
    const problems = [];
    // A row's text runs label, description and path together ("tiny-gpt2-bGPT-2 /…").
    if (!has(found.shipped, /tiny-gpt2-bGPT-2 .*\/models\/tiny-gpt2-b$/)) problems.push('shipped tiny-gpt2-b: ' + JSON.stringify(found.shipped));
    if (!has(found.workspace, /checkpoints\/neox-14m.*GPT-NeoX/)) problems.push('workspace neox-14m: ' + JSON.stringify(found.workspace));
    for (const step of [250, 500, 1000, 2000]) {
      if (!has(found.neox, new RegExp(`tiny-neox-a@step${step}GPT-NeoX \\(Pythia\\) · step ${step.toLocaleString('en-US')}`))) problems.push(`tiny-neox-a@step${step}: ` + JSON.stringify(found.neox));
    }
    if (!has(found.neox, /tiny-neox-a@mainGPT-NeoX \(Pythia\) \//)) problems.push('tiny-neox-a@main: ' + JSON.stringify(found.neox));
    if (!has(found.gpt2, /tiny-gpt2-a@step400GPT-2 · step 400/)) problems.push('tiny-gpt2-a@step400: ' + JSON.stringify(found.gpt2));
    await page.keyboard.press('Escape');
    if (problems.length) throw new Error(problems.join(' ; '));
    return `${found.neox.length} tiny-neox-a revisions, ${found.gpt2.length} tiny-gpt2-a steps; ${found.shipped[0]}; ${found.workspace[0]}`;
  });

  await check('Choose Model…: picking tiny-neox-a@step500 sets the setting, and Show Token Activations runs that checkpoint', async () => {
    await focusPrompt();
    await palette('>', 'Universal Neurons: Choose Model…');
    await quickPick('tiny-neox-a@step500');
    const settings = path.join(ws, '.vscode', 'settings.json');
    const want = path.join(hub, 'models--local--tiny-neox-a') + '@step500';
    let value;
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && value !== want) {
      try {
        // JSON with comments (the workspace's settings.json has one): drop the comment lines.
        value = JSON.parse(fs.readFileSync(settings, 'utf8').replace(/^\s*\/\/.*$/gm, ''))['universalNeurons.modelPath'];
      } catch (_) { /* not written yet */ }
      await page.waitForTimeout(200);
    }
    if (value !== want) throw new Error(`${settings}: universalNeurons.modelPath is ${JSON.stringify(value)}, expected ${JSON.stringify(want)}`);
    await focusPrompt();
    await palette('>', 'Universal Neurons: Show Token Activations');
    await page.locator('.part.panel').waitFor({ state: 'visible', timeout: 30000 });
    const snap = path.join(hub, 'models--local--tiny-neox-a', 'snapshots', commitOf('models--local--tiny-neox-a', 'step500'));
    const box = await page.locator('.part.panel .monaco-editor .overflow-guard').first().boundingBox();
    let text = '';
    const until = Date.now() + 60000;
    // The Output wraps long lines (a snapshot path in a deep folder breaks after a '/'): read the
    // view lines joined without the wrap's line breaks.
    const flat = () => text.replace(/\n/g, '');
    while (Date.now() < until && !flat().includes(`model ${snap}`)) {
      await page.waitForTimeout(300);
      if (box) {
        await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
        await page.keyboard.press('Control+Home');
      }
      text = (await page.locator('.part.panel .view-lines').allInnerTexts().catch(() => [])).join('\n').replace(/\u00a0/g, ' ');
    }
    await shot('14-choose-model-activations.png');
    const at = flat().indexOf('prompt.txt — model ');
    const header = at < 0 ? '' : flat().slice(at, at + 19 + snap.length);
    if (header !== `prompt.txt — model ${snap}`) throw new Error(`Output header ${JSON.stringify(header)} is not step500's snapshot ${snap}`);
    if (!/2 layers x 256 neurons/.test(text)) throw new Error('not the tiny NeoX shape: ' + JSON.stringify(text.slice(0, 300)));
    return `setting ${value}; ${header.slice(0, 160)}`;
  });
};
