#!/usr/bin/env bash
# CI: put the Lambda Runtime Interface Emulator (from the aws-sam-cli wheel on PyPI)
# into ~/.cache/llamaws/rie/ for the --lambda and RIE tests; prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
uv run python -m llamaws.local.rie --ensure
