// Each layer compiles with only the types it may use (docs/architecture.md): the engine and the
// CLI without the DOM or vscode, the extension without the DOM, the view (with src/protocol.ts
// and src/schema.ts) with neither the DOM, Node nor vscode, the webview without Node or vscode.
// One TypeScript program per tsconfig below, in one process; `npm test` runs this after the
// whole-project typecheck (tsc -p ., which also covers test/, bench/ and tools/).
//
//   node tools/typecheck-layers.mjs [tsconfig ...]
import ts from 'typescript';

const LAYERS = ['src/engine/tsconfig.json', 'src/view/tsconfig.json', 'src/cli/tsconfig.json', 'src/extension/tsconfig.json', 'webview/tsconfig.json'];
const configs = process.argv.slice(2).length ? process.argv.slice(2) : LAYERS;

const host = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: ts.sys.getCurrentDirectory,
  getNewLine: () => ts.sys.newLine,
};
let errors = 0;
for (const path of configs) {
  const parsed = ts.getParsedCommandLineOfConfigFile(path, { noEmit: true }, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => console.error(ts.formatDiagnostic(d, host)) });
  if (!parsed) process.exit(2);
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options, projectReferences: parsed.projectReferences });
  const diags = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
  if (diags.length) {
    console.error(`${path}: ${diags.length} error(s)`);
    console.error(ts.formatDiagnosticsWithColorAndContext(diags, host));
    errors += diags.length;
  } else console.log(`${path}: ok (${parsed.fileNames.length} files and what they import)`);
}
process.exit(errors ? 1 : 0);
