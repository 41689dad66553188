#!/usr/bin/env bash
# An install without optional dependencies, in a fresh clone of the committed tree: pnpm's
# --no-optional (pnpm 9 and 10; the config equivalent is optional=false) leaves out webgpu,
# @tensorflow/tfjs-backend-webgpu and onnxruntime-node, and must still build and train on the CPU.
# Offline: the packages come from the local pnpm store. About 75 s on 2 cores, so not part of CI.
# Usage: bash scripts/no-optional-check.sh [folder to clone into; default: a new temp folder]
set -euo pipefail
repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
dir="${1:-$(mktemp -d)}/mrl"
git clone -q "$repo" "$dir"
cd "$dir"
pnpm install --frozen-lockfile --offline --no-optional
for pkg in webgpu @tensorflow/tfjs-backend-webgpu onnxruntime-node; do
  if [ -e "packages/kernels/node_modules/$pkg" ]; then
    echo "FAIL: $pkg was installed by --no-optional" >&2
    exit 1
  fi
done
pnpm run build
node scripts/no-optional-check.mjs
