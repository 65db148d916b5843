/**
 * Messages between the extension host and its webviews (stub: the webviews arrive in a later
 * issue). Both sides import these types, so a renamed field fails to compile on both ends.
 * Handshake: the webview posts `ready` once its script runs; only then does the host send `init`
 * (messages posted before the webview listens are lost).
 */

export const PROTOCOL_VERSION = 1;

/** Webview → host. */
export type FromWebview = { type: 'ready'; protocolVersion: number };

/** Host → webview. */
export type ToWebview = { type: 'init'; protocolVersion: number } | { type: 'error'; message: string };

export function isFromWebview(m: unknown): m is FromWebview {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ready';
}

export function isToWebview(m: unknown): m is ToWebview {
  const t = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  return t === 'init' || t === 'error';
}
