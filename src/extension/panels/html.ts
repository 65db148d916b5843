/**
 * The webview HTML, built without `vscode` so tests can check it: a nonce CSP with no remote
 * content, every script carrying the nonce, every resource URI produced by the caller's
 * `resource()` (the host passes webview.asWebviewUri).
 */
import { randomBytes } from 'node:crypto';
import type { ViewKind } from '../../protocol';

/** Extension-relative paths the webview loads (shipped by .vscodeignore: dist/webview.js, media/**). */
export const WEBVIEW_SCRIPT: readonly string[] = ['dist', 'webview.js'];
export const WEBVIEW_STYLES: readonly (readonly string[])[] = [['media', 'webview.css']];
/** Folders the webview may load from (localResourceRoots). */
export const RESOURCE_ROOTS: readonly string[] = ['dist', 'media'];

export interface WebviewHtmlOptions {
  view: ViewKind;
  title: string;
  nonce: string;
  /** webview.cspSource */
  cspSource: string;
  /** Maps extension-relative path segments to a webview URI (webview.asWebviewUri). */
  resource: (...segments: string[]) => string;
}

/** 128 random bits, base64 (a CSP nonce must be unguessable and fresh for every document). */
export function makeNonce(): string {
  return randomBytes(16).toString('base64');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]!);

export function webviewHtml(o: WebviewHtmlOptions): string {
  if (!/^[A-Za-z0-9+/_=-]{16,}$/.test(o.nonce)) throw new Error('webview nonce must be at least 16 base64 characters');
  const a = escapeHtml;
  const styles = WEBVIEW_STYLES.map((p) => `  <link rel="stylesheet" nonce="${a(o.nonce)}" href="${a(o.resource(...p))}">`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${a(contentSecurityPolicy(o.cspSource, o.nonce))}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <meta property="csp-nonce" content="${a(o.nonce)}">
${styles}
  <title>${a(o.title)}</title>
</head>
<body data-view="${a(o.view)}">
  <main id="app"><p class="loading" role="status">Loading…</p></main>
  <script nonce="${a(o.nonce)}" src="${a(o.resource(...WEBVIEW_SCRIPT))}"></script>
</body>
</html>
`;
}
