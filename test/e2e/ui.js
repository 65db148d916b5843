// UI tests in the real workbench (headless Debian chromium via playwright-core), extension loaded
// from the installed VSIX: open prompt.txt, run "Universal Neurons: Show Token Activations" from
// the command palette, and read the table from the Output panel; then the editor features
// (ui-editor.js) and GPT-NeoX with its training checkpoints and the model picker (ui-neox.js).
// Screenshots go to <shots-dir>.
// With a third argument, first the first-run checks (ui-fresh.js) in that fresh workspace.
// Usage: node ui.js <workbench-url> <shots-dir> [<fresh-workspace-url>]. Prints "N passed, N failed"; exits non-zero on failure.
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const [url, shots, freshUrl] = process.argv.slice(2);
fs.mkdirSync(shots, { recursive: true });
const results = [];

async function check(name, fn) {
  const s = Date.now();
  try {
    const detail = await fn();
    results.push(true);
    console.log(`ok   ${name} (${Date.now() - s} ms)${detail ? ' — ' + detail : ''}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name} (${Date.now() - s} ms): ${String((e && e.message) || e).split('\n').slice(0, 6).join(' | ')}`);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
  const shot = (name) => page.screenshot({ path: path.join(shots, name) });
  const palette = async (prefix, text) => {
    await page.keyboard.press(prefix === '>' ? 'F1' : 'Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    await input.fill(prefix + text);
    await page.waitForSelector(`.quick-input-list .monaco-list-row >> text=${text}`, { timeout: 20000 });
    await page.keyboard.press('Enter');
  };

  if (freshUrl) await require('./ui-fresh').freshUi({ page, url: freshUrl, palette, check, shot });

  await check('workbench loads', async () => {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    await page.waitForSelector('.statusbar', { timeout: 60000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
  });
  await shot('01-workbench.png');

  await check('open prompt.txt via Quick Open', async () => {
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 450 } }).catch(() => {});
    await palette('', 'prompt.txt');
    await page.waitForSelector('.editor-instance .view-lines .view-line', { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector('.tab.active')?.textContent?.includes('prompt.txt'), null, { timeout: 10000 });
  });

  const outputText = async () =>
    (await page.locator('.part.panel .view-lines').allInnerTexts().catch(() => [])).join('\n').replace(/\u00a0/g, ' ');
  const NEURON_ROW = /^\s*\d+\s+".*"\s+\d+\s+\d+-\d+\s+(L\d+\.N\d+=-?\d+\.\d{3}\s*){3}$/m;

  await check('palette runs Show Token Activations; Output shows table rows', async () => {
    await palette('>', 'Universal Neurons: Show Token Activations');
    // The Output panel is a read-only editor that follows the end of the channel.
    await page.locator('.part.panel').waitFor({ state: 'visible', timeout: 30000 });
    let text = '';
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline && !NEURON_ROW.test(text)) {
      await page.waitForTimeout(250);
      text = await outputText();
    }
    await shot('02-output-table.png');
    if (!NEURON_ROW.test(text)) throw new Error('no token row with 3 neurons in Output: ' + JSON.stringify(text.slice(0, 400)));
    const channel = await page.locator('.part.panel select.monaco-select-box').first().inputValue().catch(() => '?');
    return `${(text.match(/L\d+\.N\d+=/g) || []).length} neuron cells visible; last row ${JSON.stringify(text.trim().split('\n').pop().replace(/\s+/g, ' '))}; channel ${JSON.stringify(channel)}`;
  });

  await check('top of the Output: header and the BOS row', async () => {
    // Focus the Output editor (click inside its text area), then jump to its first line.
    const box = await page.locator('.part.panel .monaco-editor .overflow-guard').first().boundingBox();
    if (!box) throw new Error('Output editor not found');
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.keyboard.press('Control+Home');
    let text = '';
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && !/tokens \(BOS first\)/.test(text)) {
      await page.waitForTimeout(200);
      text = await outputText();
    }
    await shot('03-output-top.png');
    if (!/^prompt\.txt — model /m.test(text)) throw new Error('no "prompt.txt — model" header: ' + JSON.stringify(text.slice(0, 300)));
    if (!/top-3 neurons by hook_post/.test(text)) throw new Error('no column header with top-3: ' + JSON.stringify(text.slice(0, 400)));
    const bos = text.split('\n').find((l) => /^\s*0\s+"<\|endoftext\|>"\s+\d+\s+0-0\s+L\d+\.N\d+=/.test(l));
    if (!bos) throw new Error('no BOS row: ' + JSON.stringify(text.slice(0, 600)));
    return JSON.stringify(bos.trim().replace(/\s+/g, ' '));
  });

  await check('maximised Output panel shows the whole table', async () => {
    await palette('>', 'View: Toggle Maximized Panel');
    await page.waitForTimeout(800);
    const text = await outputText();
    await shot('04-output-maximized.png');
    const rows = text.split('\n').filter((l) => NEURON_ROW.test(l)).length;
    if (rows < 20) throw new Error(`only ${rows} token rows visible: ` + JSON.stringify(text.slice(-300)));
    return `${rows} token rows visible`;
  });

  await require('./ui-editor').editorUi({ page, palette, check, shot });
  // GPT-NeoX, training checkpoints and the model picker (needs run.sh's NeoX development run).
  await require('./ui-neox').neoxUi({ page, palette, check, shot });

  fs.writeFileSync(path.join(shots, 'browser-console-errors.txt'), consoleErrors.join('\n'));
  await browser.close();
  const failed = results.filter((ok) => !ok).length;
  console.log(`ui: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
