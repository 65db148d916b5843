// Runs an extensionTestsPath module (the @vscode/test-electron contract: exports run(): Promise,
// rejection = failure) inside the real Node extension host of a VS Code server started with
// --enable-smoke-test-driver. The workbench reads extensionDevelopmentPath/extensionTestsPath from
// the ?payload= URL parameter, forwards the host's console through window.codeAutomationLog, and
// reports the result by calling window.codeAutomationExit(code); both are exposed from Playwright.
// Usage: node exthost.js <base-url> <workspace-folder> <extensionDevelopmentPath> <extensionTestsPath>
const { chromium } = require('playwright-core');

const [base, folder, devPath, testsPath] = process.argv.slice(2);
const host = new URL(base).host;
const remote = (p) => `vscode-remote://${host}${p}`;
const payload = [
  ['extensionDevelopmentPath', remote(devPath)],
  ['extensionTestsPath', remote(testsPath)],
];
const url = `${base.replace(/\/$/, '')}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationLog', (_type, args) => console.log(...(Array.isArray(args) ? args : [args])));
  await page.exposeFunction('codeAutomationExit', (code) => resolveExit(code));
  const timeoutMs = Number(process.env.EXTHOST_TEST_TIMEOUT_MS || 420000);
  const timer = setTimeout(() => resolveExit('timeout'), timeoutMs);
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  const code = await exited;
  clearTimeout(timer);
  await browser.close();
  console.log(`extension-host tests exit code: ${code}`);
  process.exit(code === 0 ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
