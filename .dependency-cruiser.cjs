// The layers and what each may import (docs/architecture.md). `npm test` runs this file
// (test/run.mjs: depcruise src webview bench tools); a broken rule fails the tests.
//
//   engine     src/engine/**     plain Node: no vscode, no editor, view, webview or CLI code
//   view       src/view/**       pure: only src/protocol.ts and itself (no Node, vscode, DOM, npm)
//   protocol   src/protocol.ts   pure: only src/schema.ts
//   schema     src/schema.ts     imports nothing
//   extension  src/extension/**  the VS Code adapters: anything but the CLI and the webview
//   webview    webview/**        the browser bundle: only src/view, src/protocol.ts and itself
//   cli        src/cli/**        engine, the pure view and the shared modules; no vscode, editor or webview
//   bench, tools                 may use the engine and the view, never the extension
// Shared modules at src/: format.ts (text, for the CLI and the editor), locate.ts (where the
// shipped models are: Node), schema.ts (pure).
//
// The per-folder tsconfigs (src/*/tsconfig.json, webview/tsconfig.json; tools/typecheck-layers.mjs)
// check the other half: each folder compiles with only the types it may use.

const ENGINE = '^src/engine/';
const VIEW = '^src/view/';
const PROTOCOL = '^src/protocol\\.ts$';
const SCHEMA = '^src/schema\\.ts$';
const EXTENSION = '^src/extension/';
const WEBVIEW = '^webview/';
const CLI = '^src/cli/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'engine-is-plain-node',
      comment: 'The engine runs in the CLI, the analysis worker and the extension host alike: it imports no vscode and no code of the layers above it.',
      severity: 'error',
      from: { path: ENGINE },
      to: { path: ['^vscode$', EXTENSION, WEBVIEW, CLI, VIEW, PROTOCOL] },
    },
    {
      name: 'vscode-only-in-extension',
      comment: 'No layer outside the extension imports the vscode module (types included).',
      severity: 'error',
      from: { pathNot: EXTENSION },
      to: { path: '^vscode$' },
    },
    {
      name: 'view-is-pure',
      comment: 'The view layer is shared by the host and the webview: it imports src/protocol.ts and itself, nothing else (no Node, no vscode, no DOM, no npm).',
      severity: 'error',
      from: { path: VIEW },
      to: { pathNot: [VIEW, PROTOCOL] },
    },
    {
      name: 'protocol-is-pure',
      comment: 'The protocol is imported by both bundles: it imports only the schema module.',
      severity: 'error',
      from: { path: PROTOCOL },
      to: { pathNot: [SCHEMA] },
    },
    {
      name: 'schema-imports-nothing',
      severity: 'error',
      from: { path: SCHEMA },
      to: {},
    },
    {
      name: 'webview-imports-view-and-protocol-only',
      comment: 'The webview bundle runs in a browser sandbox: besides its own files and npm UI packages it imports only src/view and src/protocol.ts.',
      severity: 'error',
      from: { path: WEBVIEW },
      to: { path: '^src/', pathNot: [VIEW, PROTOCOL] },
    },
    {
      name: 'webview-no-node',
      severity: 'error',
      from: { path: [WEBVIEW, VIEW, PROTOCOL, SCHEMA] },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'extension-not-cli-or-webview',
      comment: 'The extension reaches the webview only through messages (src/protocol.ts), and shares no code with the CLI but the engine and src/*.ts.',
      severity: 'error',
      from: { path: EXTENSION },
      to: { path: [CLI, WEBVIEW] },
    },
    {
      name: 'cli-not-editor',
      comment: 'The CLI runs without VS Code. It may use the view layer, which is pure (view-is-pure): the summary shares its statistics (view/properties.ts) with the overview.',
      severity: 'error',
      from: { path: CLI },
      to: { path: [EXTENSION, WEBVIEW] },
    },
    {
      name: 'bench-and-tools-not-extension',
      comment: 'Benchmarks and tools measure and drive the engine (and the view), never the VS Code adapters.',
      severity: 'error',
      from: { path: '^(bench|tools)/' },
      to: { path: [EXTENSION, WEBVIEW] },
    },
    {
      name: 'architectures-through-the-registry',
      comment: 'Shared code reaches an architecture (arch/gpt2.ts, arch/gpt_neox.ts, …) only through arch/index.ts, which chooses it by model_type, and arch/common.ts; so no GPT-2 (or other) assumption leaks into it (docs/architecture.md "An architecture"). Bench and tests may build one architecture directly.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/engine/arch/' },
      to: { path: '^src/engine/arch/', pathNot: ['^src/engine/arch/index\\.ts$', '^src/engine/arch/common\\.ts$'] },
    },
    {
      name: 'no-circular',
      comment: 'Import cycles (type-only imports aside: they vanish at run time).',
      severity: 'error',
      from: { path: '^(src|webview)/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      // vscode is provided by the host at run time; only its types are installed (@types/vscode).
      to: { couldNotResolve: true, pathNot: '^vscode$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^src/engine/kernels/assembly/', '^webview/dev/', '^tools/\\.cache/', '\\.py$'] },
    // Type-only imports count: an engine file may not even name a vscode type.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
