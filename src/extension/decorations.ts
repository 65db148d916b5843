/**
 * What the heat-map and the intervention shading share: per-document overlays kept in a map by
 * URI, cleared from every visible editor of those documents.
 */
import * as vscode from 'vscode';

/** Forgets `doc` (or every document) in `active` and empties `types` in its visible editors; returns how many were active. */
export function clearOverlays(active: Map<string, unknown>, types: readonly vscode.TextEditorDecorationType[], doc?: vscode.TextDocument): number {
  const uris = doc ? [doc.uri.toString()] : [...active.keys()];
  let n = 0;
  for (const uri of uris) {
    if (!active.delete(uri)) continue;
    n++;
    for (const ed of vscode.window.visibleTextEditors) {
      if (ed.document.uri.toString() !== uri) continue;
      for (const t of types) ed.setDecorations(t, []);
    }
  }
  return n;
}
