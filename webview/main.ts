/**
 * Webview entry (bundled to dist/webview.js, browser/iife). Placeholder until the views land:
 * it performs the ready handshake from src/protocol.ts and shows what the host sends.
 */
import { isToWebview, PROTOCOL_VERSION, type FromWebview } from '../src/protocol';

interface VsCodeApi {
  postMessage(message: FromWebview): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const root = document.getElementById('root') ?? document.body;

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const m = event.data;
  if (!isToWebview(m)) return;
  root.textContent = m.type === 'init' ? `Universal Neurons (protocol ${m.protocolVersion})` : `Error: ${m.message}`;
});

vscode.postMessage({ type: 'ready', protocolVersion: PROTOCOL_VERSION });
