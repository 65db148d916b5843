// UI tests of the editor features in the real workbench (called from ui.js after its own checks):
// Open Run from the palette, Analyze Prompt, hover a token (neurons with values), ablate from the
// hover's link (Δ loss shading, status bar, prompt view), the table webview (rows), the neuron page
// (chart canvases with drawn pixels, What it does), a heat-map (decorations
// and the status-bar item), the Runs tree. One screenshot per step in <shots>.

const fs = require('fs');
const path = require('path');

const HOVER_ROW = /L\d+\.N\d+\s*\|?\s*-?\d+\.\d{3}/;

async function frameWith(page, selector, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const f of page.frames()) {
      try {
        if (await f.$(selector)) return f;
      } catch (_) { /* frame navigating */ }
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no webview frame with ${selector}; frames: ${page.frames().map((f) => f.url().slice(0, 80)).join(', ')}`);
}

async function focusEditor(page, name) {
  const tab = page.locator('.tabs-container .tab', { hasText: name }).first();
  await tab.click();
  await page.waitForFunction((n) => document.querySelector('.tab.active')?.textContent?.includes(n), name, { timeout: 10000 });
  await page.locator('.editor-instance .view-lines').first().click({ position: { x: 5, y: 5 } });
}

/** Screen position of character `index` (+0.5) of `word` inside the first view line containing it. */
async function wordPos(page, word, charIndex = 1) {
  const span = page.locator('.editor-instance .view-lines .view-line span span', { hasText: word }).first();
  await span.waitFor({ timeout: 10000 });
  return span.evaluate((el, [w, ci]) => {
    const node = el.firstChild;
    const i = node.textContent.indexOf(w) + ci;
    const r = document.createRange();
    r.setStart(node, i);
    r.setEnd(node, i + 1);
    const b = r.getBoundingClientRect();
    return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
  }, [word, charIndex]);
}

/** Moves the mouse onto `word` (its character charIndex) until the Universal Neurons hover's text passes `done` (5 tries); returns the text. */
async function hoverText(page, word, done, charIndex = 1) {
  const pos = await wordPos(page, word, charIndex);
  let text = '';
  for (let attempt = 0; attempt < 5 && !done(text); attempt++) {
    await page.mouse.move(pos.x - 40, pos.y + 60);
    await page.mouse.move(pos.x, pos.y, { steps: 5 });
    try {
      await page.waitForSelector('.monaco-hover:visible >> text=Universal Neurons', { timeout: 8000 });
    } catch (_) { /* retry */ }
    text = (await page.locator('.monaco-hover:visible').allInnerTexts().catch(() => [])).join(' | ');
  }
  return text;
}

/** In the open quick pick: types `text`, waits for a row showing it, and picks the first row. */
async function pickItem(page, text) {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 15000 });
  await input.fill(text);
  await page.waitForSelector(`.quick-input-list .monaco-list-row >> text=${text}`, { timeout: 20000 });
  await page.keyboard.press('Enter');
}

exports.frameWith = frameWith;
exports.pickItem = pickItem;
exports.wordPos = wordPos;
exports.hoverText = hoverText;

exports.editorUi = async function editorUi({ page, palette, check, shot }) {
  const tryPalette = async (text) => {
    try {
      await palette('>', text);
      await page.waitForTimeout(300);
    } catch (_) {
      await page.keyboard.press('Escape');
    }
  };
  const quickPick = (text) => pickItem(page, text);

  await check('restore the panel; Open Run… from the palette picks the CLI-made run', async () => {
    await page.keyboard.press('Escape');
    await palette('>', 'View: Toggle Maximized Panel');
    await page.waitForTimeout(300);
    // The Output panel has served its purpose: give the editor the height for the screenshots.
    await tryPalette('View: Hide Panel');
    await palette('>', 'Universal Neurons: Open Run…');
    await quickPick('e2e');
    await page.waitForTimeout(500);
  });

  await check('Analyze Prompt on prompt.txt', async () => {
    await focusEditor(page, 'prompt.txt');
    await palette('>', 'Universal Neurons: Analyze Prompt');
    await page.waitForSelector('.statusbar >> text=/tokens analysed on tiny-gpt2-a/', { timeout: 60000 });
    await shot('05-analyze-prompt.png');
    return (await page.locator('.statusbar').innerText()).split('\n').find((l) => /tokens analysed/.test(l));
  });

  await check('hover a token: the hover lists neurons with values', async () => {
    const text = await hoverText(page, 'cat', (t) => HOVER_ROW.test(t));
    await page.waitForTimeout(300);
    await shot('06-hover.png');
    if (!/" cat"/.test(text)) throw new Error('hover is not about " cat": ' + JSON.stringify(text.slice(0, 400)));
    const rows = text.match(/L\d+\.N\d+/g) || [];
    if (rows.length < 3 || !HOVER_ROW.test(text)) throw new Error('no neuron rows with values: ' + JSON.stringify(text.slice(0, 600)));
    const links = await page.locator('.monaco-hover:visible a[data-href^="command:universalNeurons."], .monaco-hover:visible a[href^="command:universalNeurons."]').count();
    if (links < 6) throw new Error(`only ${links} command links in the hover`);
    return `${rows.length} neurons, ${links} command links: ${JSON.stringify(text.replace(/\s+/g, ' ').slice(0, 200))}`;
  });

  await check("ablate from the hover's link: tokens shaded by Δ loss, status bar, then the prompt view", async () => {
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await focusEditor(page, 'prompt.txt');
    const before = await page.locator('.editor-instance .view-overlays div[class*="ced-"]').count();
    const pos = await wordPos(page, 'cat');
    const link = page.locator('.monaco-hover:visible a[data-href^="command:universalNeurons.interveneNeuron"], .monaco-hover:visible a[href^="command:universalNeurons.interveneNeuron"]').first();
    for (let attempt = 0; attempt < 5 && !(await link.count()); attempt++) {
      await page.mouse.move(pos.x - 40, pos.y + 60);
      await page.mouse.move(pos.x, pos.y, { steps: 5 });
      try {
        await link.waitFor({ state: 'visible', timeout: 8000 });
      } catch (_) { /* retry */ }
    }
    if (!(await link.count())) throw new Error('no ablate link in the hover');
    const linkText = (await link.innerText()).trim();
    await link.click();
    const status = page.locator('.statusbar-item', { hasText: /Δloss/ }).first();
    await status.waitFor({ timeout: 60000 });
    await page.mouse.move(5, 5);
    await page.waitForTimeout(800);
    const deco = await page.locator('.editor-instance .view-overlays div[class*="ced-"]').evaluateAll((els) =>
      els.map((e) => getComputedStyle(e).backgroundColor).filter((c) => c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent'),
    );
    const statusText = (await status.innerText()).trim();
    await shot('06b-ablate-from-hover.png');
    if (deco.length <= before) throw new Error(`no Δ loss shading (${before} overlays before, ${deco.length} after)`);
    if (!/zero L\d+\.N\d+/.test(statusText)) throw new Error('status bar: ' + statusText);
    // The prompt view shows the intervention's Δ loss (its label says so), tokens shaded.
    await palette('>', 'Universal Neurons: Show Heat-map in Prompt View');
    const frame = await frameWith(page, '.prompt-text .tok.pos, .prompt-text .tok.neg', 45000);
    await page.waitForTimeout(800);
    const shaded = await frame.locator('.prompt-text .tok.pos, .prompt-text .tok.neg').count();
    const label = (await frame.locator('.prompt-text').getAttribute('aria-label')) || '';
    await shot('06c-prompt-view-delta-loss.png');
    if (!/Δ loss \(zero L\d+\.N\d+\)/.test(label)) throw new Error('prompt view is not the Δ loss: ' + label);
    // Clear it (the status-bar item), so the heat-map checks below start from a clean editor.
    await focusEditor(page, 'prompt.txt');
    await page.locator('.statusbar-item', { hasText: /Δloss/ }).first().click();
    await page.waitForTimeout(500);
    return `link "${linkText}" → ${deco.length} shaded overlay boxes (${[...new Set(deco)].slice(0, 2).join('; ')}); status "${statusText}"; prompt view: ${shaded} shaded tokens, ${label.slice(0, 60)}`;
  });

  await check('Open Universal Neuron Table: rows appear', async () => {
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await palette('>', 'Universal Neurons: Open Universal Neuron Table');
    const frame = await frameWith(page, 'vscode-data-grid-row[data-row]', 45000);
    await page.waitForTimeout(800);
    const rows = await frame.locator('vscode-data-grid-row[data-row]').count();
    const first = (await frame.locator('vscode-data-grid-row[data-row]').first().innerText()).replace(/\s+/g, ' ');
    await shot('07-table.png');
    if (rows < 1) throw new Error('no rows');
    return `${rows} rows; first: ${first}`;
  });

  await check('Open Run Overview: the properties of universal neurons and the basis charts are drawn', async () => {
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await palette('>', 'Universal Neurons: Open Run Overview');
    const frame = await frameWith(page, 'section[aria-labelledby="h-properties-of-universal-neurons"] canvas[data-drawn="yes"]', 45000);
    const section = frame.locator('section[aria-labelledby="h-properties-of-universal-neurons"]');
    await section.evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await page.waitForTimeout(800);
    await shot('07b-overview-properties.png');
    const readings = await frame.locator('ul.basis-readings li').allInnerTexts();
    if (readings.length < 1 || !readings.every((r) => /neurons here are (not )?more meaningful than random directions/.test(r))) throw new Error('basis readings: ' + JSON.stringify(readings));
    const basisDrawn = await frame.locator('section[aria-labelledby="h-is-the-basis-privileged-"] canvas[data-drawn="yes"]').count();
    if (basisDrawn !== 1) throw new Error('the basis chart is not drawn');
    return `properties and basis charts drawn; ${readings.length} layer readings, first: ${readings[0]}`;
  });

  await check('Show Neuron… (top excess): the neuron page draws its charts', async () => {
    await focusEditor(page, 'prompt.txt');
    await tryPalette('View: Close Editors in Other Groups');
    await palette('>', 'Universal Neurons: Show Neuron…');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    await page.waitForSelector('.quick-input-list .monaco-list-row >> text=/^L\\d+\\.N\\d+$/', { timeout: 20000 });
    const label = (await page.locator('.quick-input-list .monaco-list-row.focused .label-name').first().innerText().catch(() => '')).trim();
    await page.keyboard.press('Enter');
    const frame = await frameWith(page, 'canvas[data-drawn="yes"]', 45000);
    await page.waitForTimeout(1000);
    const stats = await frame.evaluate(() =>
      Array.from(document.querySelectorAll('canvas')).map((c) => {
        const ctx = c.getContext('2d');
        const { width, height } = c;
        if (!ctx || !width || !height) return { drawn: c.dataset.drawn, painted: 0, width, height };
        const d = ctx.getImageData(0, 0, width, height).data;
        let painted = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
        return { drawn: c.dataset.drawn, painted, width, height };
      }),
    );
    await frame.evaluate(() => document.querySelector('canvas[data-drawn="yes"]')?.scrollIntoView({ block: 'center' }));
    await page.waitForTimeout(300);
    await shot('08-neuron-page.png');
    const good = stats.filter((s) => s.drawn === 'yes' && s.painted > 100);
    if (good.length < 1 || good.length < stats.length) throw new Error('canvases: ' + JSON.stringify(stats));
    return `${label}: ${good.length} canvases drawn (${good.map((s) => s.painted).join(', ')} painted pixels)`;
  });

  await check('neuron page: What it does (ablation on its top contexts) loads and shows Δ loss and movers', async () => {
    const frame = await frameWith(page, 'section[aria-labelledby="h-what-it-does"] vscode-button', 30000);
    const section = frame.locator('section[aria-labelledby="h-what-it-does"]');
    await section.evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await section.locator('vscode-button', { hasText: 'Measure on the top contexts' }).click();
    const t0 = Date.now();
    let sawLoading = false;
    while (Date.now() - t0 < 60000) {
      if (await section.locator('.effect-loading').count()) sawLoading = true;
      if (await section.locator('.effect-dloss').count()) break;
      const err = await section.locator('.error').count();
      if (err) throw new Error('What it does failed: ' + (await section.innerText()).slice(0, 300));
      await page.waitForTimeout(100);
    }
    const text = (await section.innerText()).replace(/\s+/g, ' ');
    await page.waitForTimeout(300);
    await shot('08a-what-it-does.png');
    const dl = await section.locator('.effect-dloss').allInnerTexts();
    if (!dl.length || !dl.every((t) => /mean Δ loss [+-]?\d/.test(t))) throw new Error('no Δ loss: ' + text.slice(0, 400));
    if ((await section.locator('ol.vocab li').count()) < 2) throw new Error('no movers: ' + text.slice(0, 400));
    return `${Date.now() - t0} ms${sawLoading ? ' (loading state seen)' : ''}: ${dl.join(' | ')}; ${JSON.stringify(text.slice(0, 200))}`;
  });

  await check('neuron page: family and roles (when the run has them) beside the marked top contexts', async () => {
    // The CLI run has families once the engine writes them (roles.json is their marker file).
    const runDir = process.env.E2E_RUN_DIR;
    const families = !!runDir && fs.existsSync(path.join(runDir, 'roles.json'));
    const frame = await frameWith(page, 'ol.contexts li', 30000);
    const contexts = await frame.locator('ol.contexts li').count();
    const section = frame.locator('section[aria-labelledby="h-family-and-roles"]');
    if (!families) {
      if (await section.count()) throw new Error('a family section for a run without families');
      return `run has no families yet: no family section; ${contexts} top contexts`;
    }
    await section.waitFor({ timeout: 10000 });
    const text = (await section.innerText()).replace(/\s+/g, ' ');
    const badge = (await section.locator('.family-badge').first().innerText().catch(() => '')).trim();
    if (!badge) throw new Error('no family badge: ' + text.slice(0, 300));
    if (!/Roles/.test(text)) throw new Error('no roles part: ' + text.slice(0, 300));
    const marked = await frame.locator('ol.contexts li.hit .hit-badge').count();
    await section.evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await page.waitForTimeout(300);
    await shot('08b-neuron-family.png');
    return `family ${badge}; ${contexts} top contexts, ${marked} marked ✓ label; ${JSON.stringify(text.slice(0, 220))}`;
  });

  await check('Heat-map Neuron…: decorations on the tokens, status-bar item', async () => {
    await focusEditor(page, 'prompt.txt');
    const before = await page.locator('.editor-instance .view-overlays div[class*="ced-"]').count();
    await palette('>', 'Universal Neurons: Heat-map Neuron…');
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 15000 });
    await page.waitForSelector('.quick-input-list .monaco-list-row >> text=/^L\\d+\\.N\\d+$/', { timeout: 20000 });
    await page.keyboard.press('Enter'); // the neuron most active at the cursor
    await page.waitForSelector('.statusbar-item >> text=/L\\d+\\.N\\d+/', { timeout: 30000 });
    await page.waitForTimeout(800);
    const deco = await page.locator('.editor-instance .view-overlays div[class*="ced-"]').evaluateAll((els) =>
      els.map((e) => getComputedStyle(e).backgroundColor).filter((c) => c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent'),
    );
    const status = (await page.locator('.statusbar-item', { hasText: /L\d+\.N\d+/ }).first().innerText()).trim();
    await shot('09-heatmap.png');
    if (deco.length <= before) throw new Error(`no decorations (${before} before, ${deco.length} after)`);
    return `${deco.length} shaded overlay boxes (${[...new Set(deco)].slice(0, 3).join('; ')}); status bar "${status}"`;
  });

  await check('status-bar item clears the heat-map', async () => {
    await page.locator('.statusbar-item', { hasText: /L\d+\.N\d+/ }).first().click();
    await page.waitForTimeout(800);
    const left = await page.locator('.editor-instance .view-overlays div[class*="ced-"]').evaluateAll((els) =>
      els.filter((e) => { const c = getComputedStyle(e).backgroundColor; return c && c !== 'rgba(0, 0, 0, 0)'; }).length,
    );
    const status = await page.locator('.statusbar-item', { hasText: /L\d+\.N\d+/ }).count();
    if (left || status) throw new Error(`${left} decorations and ${status} status items left`);
  });

  await check('Runs tree: run → models → layers → universal neurons', async () => {
    await page.locator('.activitybar .action-item a[aria-label^="Universal Neurons"], .activitybar .action-item[aria-label^="Universal Neurons"]').first().click();
    const view = page.locator('.pane-body .monaco-list-row');
    await page.waitForSelector('.pane-body .monaco-list-row >> text=e2e', { timeout: 20000 });
    await page.locator('.pane-body .monaco-list-row', { hasText: 'tiny-gpt2-a' }).first().click();
    await page.waitForSelector('.pane-body .monaco-list-row >> text=Layer 0', { timeout: 10000 });
    // Open the first layer that has universal neurons.
    const layers = page.locator('.pane-body .monaco-list-row', { hasText: /^Layer \d/ });
    const n = await layers.count();
    let opened = '';
    for (let i = 0; i < n && !opened; i++) {
      const row = layers.nth(i);
      const desc = (await row.locator('.label-description').first().innerText().catch(() => '')).trim();
      if (!/^0 universal/.test(desc)) {
        await row.click();
        opened = `${(await row.locator('.label-name').first().innerText()).trim()} (${desc})`;
      }
    }
    await page.waitForTimeout(600);
    // Families (when the run has them) sit between layer and neurons: open the first.
    if (opened && !(await view.allInnerTexts()).some((t) => /^L\d+\.N\d+/.test(t.trim()))) {
      const fam = page.locator('.pane-body .monaco-list-row[aria-level="4"]').first();
      if (await fam.count()) await fam.click();
      await page.waitForTimeout(400);
    }
    // Hover a neuron row: its inline actions (open page, heat-map) show.
    const neuronRow = page.locator('.pane-body .monaco-list-row', { hasText: /^L\d+\.N\d+/ }).first();
    if (await neuronRow.count()) await neuronRow.hover();
    await page.waitForTimeout(300);
    const actions = await neuronRow.locator('.actions .action-label').count().catch(() => 0);
    const texts = (await view.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    await shot('10-runs-tree.png');
    const neurons = texts.filter((t) => /^L\d+\.N\d+/.test(t));
    if (!opened) return `no layer with universal neurons; rows: ${texts.join(' | ')}`;
    if (!neurons.length) throw new Error('no neuron rows under ' + opened + ': ' + texts.join(' | '));
    if (actions < 2) throw new Error(`neuron row shows ${actions} inline actions`);
    return `${texts.length} rows; opened ${opened}; first neuron ${neurons[0]}; ${actions} inline actions`;
  });
};
