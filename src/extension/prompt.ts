/** What may be analysed: refuses empty, oversized and binary documents before any model work. */
import { Buffer } from 'node:buffer';
import type * as vscode from 'vscode';
import { SECTION } from './config';
import type { TokenizerModule } from './engineHost';

/** C0 controls other than \t \n \v \f \r and ESC (ANSI colour codes in logs are still text). */
const CONTROL = /[\u0000-\u0008\u000e-\u001a\u001c-\u001f]/g;

export function checkPromptText(text: string, maxBytes: number, name: string): void {
  if (text.length === 0) throw new Error(`${name} is empty: nothing to analyse`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    throw new Error(`${name} is ${bytes} bytes, over ${SECTION}.maxPromptBytes (${maxBytes}): refusing to analyse it`);
  }
  const controls = text.match(CONTROL)?.length ?? 0;
  if (text.includes('\u0000') || controls > text.length / 100) {
    throw new Error(`${name} looks binary (${controls} control characters): refusing to analyse it`);
  }
}

/**
 * The document's own text is what gets analysed (ranges then match editor offsets). A saved file
 * also goes through the engine's readTextFile, the same gate as the CLI's --file (non-UTF-8 bytes
 * that the editor decoded anyway are refused there).
 */
export async function checkDocument(doc: vscode.TextDocument, maxBytes: number, load: () => Promise<TokenizerModule>): Promise<string> {
  const name = doc.isUntitled ? 'the untitled document' : (doc.uri.path.split('/').pop() ?? doc.uri.toString());
  const text = doc.getText();
  checkPromptText(text, maxBytes, name);
  if (doc.uri.scheme === 'file' && !doc.isDirty) (await load()).readTextFile(doc.uri.fsPath, maxBytes);
  return text;
}
