#!/usr/bin/env bash
# CI: what the UI tests need beyond `uv sync` — the system Chromium (driven by
# playwright-core over CDP, no Playwright browser download), the ui-app example's
# node_modules (Vite), tests/browser's node_modules (playwright-core) and
# tests/ts-client's (@llamaindex/workflows-client).
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
