// UI tests of a first run (called from ui.js before its own checks): a fresh install in a fresh
// workspace that holds no run, nothing opened. Analyze Prompt and the hover use the demo run
// shipped inside the extension at once: the hover marks universal neurons ★; the Runs view shows
// "Demo run (shipped family)" as current; the table opens without asking for a run.
// Screenshots 00a-… to 00c-… in <shots>.

const { frameWith, hoverText } = require('./ui-editor');

exports.freshUi = async function freshUi({ page, url, palette, check, shot }) {
  await check('first run: a fresh workspace (no runs) loads', async () => {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 450 } }).catch(() => {});
    await palette('', 'first-run.txt');
    await page.waitForSelector('.editor-instance .view-lines .view-line', { timeout: 20000 });
  });

  await check('first run: Analyze Prompt, then the hover marks universal neurons ★ from the demo run', async () => {
    await palette('>', 'Universal Neurons: Analyze Prompt');
    await page.waitForSelector('.statusbar >> text=/tokens analysed on tiny-gpt2-a/', { timeout: 60000 });
    // " a" (of "a man") fires L1.N263, a universal neuron of the demo run, first of its top 3.
    // The editor renders spaces as U+00A0: aim at "man", two characters back.
    const text = await hoverText(page, 'man', (t) => /★/.test(t), -2);
    await page.waitForTimeout(300);
    await shot('00a-first-run-hover.png');
    if (!/" a"/.test(text)) throw new Error('hover is not about " a": ' + JSON.stringify(text.slice(0, 400)));
    const marked = text.match(/L\d+\.N\d+\s*\|?\s*-?\d+\.\d{3}\s*\|?\s*★ excess \d\.\d{3}/g) || [];
    if (!marked.length) throw new Error('no ★ universal mark in the hover: ' + JSON.stringify(text.slice(0, 600)));
    if (!/demo \(shipped family\)/.test(text)) throw new Error('the hover does not name the demo run: ' + JSON.stringify(text.slice(-300)));
    if (/no run open/.test(text)) throw new Error('the hover says no run is open');
    return `${marked.length} marked: ${JSON.stringify(marked[0].replace(/\s+/g, ' '))}`;
  });

  await check('first run: the Runs view shows "Demo run (shipped family)" as the current run', async () => {
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await page.locator('.activitybar .action-item a[aria-label^="Universal Neurons"], .activitybar .action-item[aria-label^="Universal Neurons"]').first().click();
    const row = page.locator('.pane-body .monaco-list-row', { hasText: 'Demo run (shipped family)' }).first();
    await row.waitFor({ timeout: 20000 });
    await page.waitForSelector('.pane-body .monaco-list-row >> text=tiny-gpt2-a', { timeout: 10000 });
    const texts = (await page.locator('.pane-body .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    await shot('00b-first-run-tree.png');
    if (!/current/.test(texts[0] || '') || !/^Demo run \(shipped family\)/.test(texts[0] || '')) throw new Error('rows: ' + texts.join(' | '));
    return texts.slice(0, 4).join(' | ');
  });

  await check('first run: Open Universal Neuron Table shows the demo run without asking', async () => {
    await palette('>', 'Universal Neurons: Open Universal Neuron Table');
    const frame = await frameWith(page, 'vscode-data-grid-row[data-row]', 45000);
    await page.waitForTimeout(800);
    const rows = await frame.locator('vscode-data-grid-row[data-row]').count();
    const quickPick = await page.locator('.quick-input-widget:visible').count();
    await shot('00c-first-run-table.png');
    if (rows < 1) throw new Error('no rows');
    if (quickPick) throw new Error('a quick pick asked for a run');
    return `${rows} rows`;
  });
};
