#!/usr/bin/env bash
# CI: what the UI tests need beyond `uv sync` — the system Chromium (driven by
# playwright-core over CDP, no Playwright browser download), the ui-app example's
# node_modules (Vite), tests/browser's node_modules (playwright-core) and
# tests/ts-client's (@llamaindex/workflows-client), plus the published dist of
# @llamaindex/ui (only its own files: its workflow module is checked without React).
# Needs Node.js >= 20 with npm 11 (Vite 8), and root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if ! command -v chromium >/dev/null; then
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

npm ci --no-audit --no-fund --prefix examples/ui-app/ui
npm ci --no-audit --no-fund --prefix tests/browser
npm ci --no-audit --no-fund --prefix tests/ts-client

UI_DIR=tests/ts-client/node_modules/.llamaindex-ui
mkdir -p "$UI_DIR"
npm pack --silent --pack-destination "$UI_DIR" @llamaindex/ui@4.7.0 >/dev/null
tar -xzf "$UI_DIR/llamaindex-ui-4.7.0.tgz" -C "$UI_DIR"
