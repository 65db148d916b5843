import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contentSecurityPolicy, escapeHtml, makeNonce, RESOURCE_ROOTS, WEBVIEW_SCRIPT, WEBVIEW_STYLES, webviewHtml } from '../../src/extension/panels/html';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAMILY_ORDER } from '../../src/view/familyText';
import { ROLES, VIEW_KINDS } from '../../src/protocol';

// What VS Code's webview.cspSource and asWebviewUri look like.
const CSP_SOURCE = 'https://*.vscode-cdn.net';
const RESOURCE_BASE = 'https://file%2B.vscode-resource.vscode-cdn.net/ext';
const asWebviewUri = (...p: string[]) => `${RESOURCE_BASE}/${p.join('/')}`;

function build(view = VIEW_KINDS[0]!, nonce = makeNonce(), title = 'Universality · run') {
  const seen: string[][] = [];
  const html = webviewHtml({
    view,
    title,
    nonce,
    cspSource: CSP_SOURCE,
    resource: (...p) => {
      seen.push(p);
      return asWebviewUri(...p);
    },
  });
  return { html, nonce, seen };
}

function cspOf(html: string): Map<string, string[]> {
  const m = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html);
  assert.ok(m, 'the page has a CSP meta tag');
  const out = new Map<string, string[]>();
  for (const d of m[1]!.replace(/&#39;/g, "'").split(';')) {
    const [name, ...values] = d.trim().split(/\s+/);
    out.set(name!, values);
  }
  return out;
}

test('nonces are fresh, unguessable and CSP-safe', () => {
  const a = makeNonce();
  const b = makeNonce();
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9+/]{22}==$/); // 128 bits, base64
  assert.throws(() => webviewHtml({ view: 'overview', title: 't', nonce: 'short', cspSource: CSP_SOURCE, resource: asWebviewUri }));
  assert.throws(() => webviewHtml({ view: 'overview', title: 't', nonce: `${a}" onload="x`, cspSource: CSP_SOURCE, resource: asWebviewUri }));
});

test('the CSP is nonce-based, denies by default, and allows no remote content', () => {
  for (const view of VIEW_KINDS) {
    const { html, nonce } = build(view);
    const csp = cspOf(html);
    assert.deepEqual(csp.get('default-src'), ["'none'"]);
    assert.deepEqual(csp.get('script-src'), [`'nonce-${nonce}'`]);
    assert.deepEqual(csp.get('style-src'), [CSP_SOURCE, `'nonce-${nonce}'`]);
    assert.deepEqual(csp.get('img-src'), [CSP_SOURCE, 'data:']);
    assert.deepEqual(csp.get('font-src'), [CSP_SOURCE]);
    assert.deepEqual([...csp.keys()].sort(), ['default-src', 'font-src', 'img-src', 'script-src', 'style-src']);
    for (const values of csp.values()) {
      for (const v of values) {
        assert.ok(!/unsafe-inline|unsafe-eval|unsafe-hashes|wasm-unsafe-eval|strict-dynamic/.test(v), `no unsafe keyword: ${v}`);
        assert.ok(v === CSP_SOURCE || v === 'data:' || v.startsWith("'"), `no source other than the webview's own: ${v}`);
        assert.notEqual(v, '*');
      }
    }
  }
  assert.equal(contentSecurityPolicy('S', 'N'), "default-src 'none'; script-src 'nonce-N'; style-src S 'nonce-N'; img-src S data:; font-src S");
});

test('every script carries the nonce; no inline scripts, handlers or styles', () => {
  const { html, nonce } = build('table');
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
  assert.ok(scripts.length >= 1);
  assert.equal(scripts.length, (html.match(/<script\b/g) ?? []).length);
  for (const [, attrs, body] of scripts) {
    assert.ok(attrs!.includes(`nonce="${nonce}"`), `script has the nonce: ${attrs}`);
    assert.match(attrs!, /\ssrc="/, 'scripts are files, not inline code');
    assert.equal(body!.trim(), '');
  }
  assert.ok(!/\son[a-z]+=/i.test(html), 'no inline event handlers');
  assert.ok(!/\sstyle=/i.test(html), 'no inline style attributes');
  assert.ok(!/<style\b/i.test(html), 'no inline style elements');
  assert.ok(!/javascript:/i.test(html));
  // FAST (webview-ui-toolkit) reads the style nonce from this meta for its probe style element.
  assert.ok(html.includes(`<meta property="csp-nonce" content="${nonce}">`));
});

test('resources go through asWebviewUri, and only shipped files are loaded', () => {
  const { html, seen } = build('neuron');
  assert.deepEqual(seen, [...WEBVIEW_STYLES, WEBVIEW_SCRIPT]);
  const urls = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
  assert.equal(urls.length, WEBVIEW_STYLES.length + 1);
  for (const u of urls) assert.ok(u.startsWith(RESOURCE_BASE + '/'), `loaded through asWebviewUri: ${u}`);
  assert.ok(urls.includes(`${RESOURCE_BASE}/dist/webview.js`));
  assert.ok(urls.includes(`${RESOURCE_BASE}/media/webview.css`));
  // Every loaded file sits under a localResourceRoot that .vscodeignore ships.
  for (const p of [...WEBVIEW_STYLES, WEBVIEW_SCRIPT]) assert.ok(RESOURCE_ROOTS.includes(p[0]!), p.join('/'));
});

test('the view and title are escaped into the page', () => {
  const { html } = build('prompt', makeNonce(), 'L1.N2 · <img src=x onerror=alert(1)>"');
  assert.ok(html.includes('<body data-view="prompt">'));
  assert.ok(html.includes('<title>L1.N2 · &lt;img src=x onerror=alert(1)&gt;&quot;</title>'));
  assert.ok(!html.includes('<img'));
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('the stylesheet takes colours only from the theme, and gives every family and role its colour', () => {
  const css = readFileSync(join(__dirname, '..', '..', 'media', 'webview.css'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  assert.ok(!/#[0-9a-f]{3,8}\b|\brgba?\(|\bhsla?\(/i.test(css), 'no literal colours');
  for (const f of FAMILY_ORDER.filter((x) => x !== 'unexplained')) assert.match(css, new RegExp(`\\[data-family='${f}'\\]`), f);
  for (const r of ROLES) assert.match(css, new RegExp(`\\[data-role='${r}'\\]`), r);
});
