#!/usr/bin/env bash
# Install Azurite (the Azure Storage emulator, an npm package) into .cache/npm/ of the repository.
# Idempotent: does nothing when the pinned version is already there. Prints the path of azurite-blob.
set -euo pipefail

VERSION="${AZURITE_VERSION:-3.37.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${CONVEYOR_NPM_PREFIX:-$ROOT/.cache/npm}"
BIN="$PREFIX/node_modules/.bin/azurite-blob"

if ! command -v npm >/dev/null 2>&1; then
  echo "install-azurite: npm is not installed (Node.js 18+ with npm is needed: apt-get install nodejs npm)" >&2
  exit 1
fi

installed="$(node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [[ -x "$BIN" && "$installed" == "$VERSION" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$PREFIX"
[[ -f "$PREFIX/package.json" ]] || echo '{"name": "conveyor-test-tools", "private": true}' >"$PREFIX/package.json"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$VERSION" >&2
echo "$BIN"
