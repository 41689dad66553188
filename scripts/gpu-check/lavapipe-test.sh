#!/usr/bin/env bash
# The GPU check pack's test on a machine without a GPU: builds the pack (pack.sh fails at 64 MiB),
# unpacks it into a fresh folder under /tmp and runs it on Mesa's lavapipe (setup-lavapipe.sh
# installs it) with small batches: every model's webgpu losses must match the wasm backend's to
# 1e-3 relative. `--reference cpu --models mlp,vit,bert` compares with TF.js's plain JavaScript
# backend instead (its ResNet-18 gradients take over 10 minutes even at batch 2). Takes about
# 10 minutes on 2 shared cores (5 to pack, 4 to run), so it is not in the test suite.
# Usage: bash scripts/gpu-check/lavapipe-test.sh [run.sh options]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || {
  echo "lavapipe-test: Mesa's lavapipe is not installed; run scripts/gpu-check/setup-lavapipe.sh (root)." >&2
  exit 2
}
pack="$(mktemp -d)/mrl-gpu-check.run"
bash "$here/pack.sh" "$pack"
dir="$(mktemp -d /tmp/mrl-gpu-check-test.XXXXXX)"
# The lavapipe ICD alone, as run.sh would select nvidia_icd.json on a GPU machine.
MRL_GPU_CHECK_DIR="$dir" sh "$pack" --icd "$(ls /usr/share/vulkan/icd.d/lvp_icd*.json | head -1)" \
  --steps 2 --batch-scale 0.125 --reference wasm --out "$dir/out" "$@"
