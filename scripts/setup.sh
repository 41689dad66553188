#!/usr/bin/env bash
# Sets up a fresh Debian machine with Node 20 (as root): the Debian data packages, pnpm, the
# workspace's npm dependencies, and a build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  dataset-fashion-mnist # Fashion-MNIST IDX files: the main job and the vision tests
  python3-skimage       # real sample photos for the image pipeline tests
  wordnet-base          # WordNet glosses: text classification and retrieval
  python3-numpy         # tests check that numpy reads our .npy and safetensors files
  python3-onnx          # tests run onnx.checker on exported ONNX models
)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: installing ${missing[*]} needs root (apt-get)." >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$pnpm_version" ]; then
  npm install -g "pnpm@$pnpm_version"
fi
pnpm install --frozen-lockfile
pnpm run build
