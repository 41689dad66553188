#!/usr/bin/env bash
# Sets up a fresh Debian machine with Node 20 (as root): the Debian data packages, pnpm, the
# workspace's npm dependencies (their native addons come prebuilt), a build, and our one optional
# addon (oneDNN convolutions: one g++ call, skipped with a message where it cannot build).
# Safe to run again; waits for another apt or dpkg process to finish instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  dataset-fashion-mnist # Fashion-MNIST IDX files: the main job and the vision tests
  python3-skimage       # real sample photos for the image pipeline tests
  wordnet-base          # WordNet glosses: text classification and retrieval
  python3-numpy         # tests check that numpy reads our .npy and safetensors files
  python3-faiss         # bench/retrieval.mjs: FAISS IndexFlatIP and IndexHNSWFlat on the same vectors
  python3-onnx          # tests run onnx.checker on exported ONNX models
  libvulkan1            # the Vulkan loader that scripts/gpu-check/pack.sh puts in the GPU check pack
  libdnnl-dev g++       # oneDNN's convolutions (the library PyTorch's CPU convolutions use): packages/kernels/native
  librandom123-dev      # Philox4x32-10 (header-only Random123): the addon's dropout masks, packages/kernels/native
  openclipart-svg       # drawings with titles: the align reference runs in packages/align/README.md (not the tests)
  # bench/benchmarks/glyphs.mjs: the many-class glyph benchmark draws each character in these faces
  fonts-liberation2 fonts-freefont-ttf fonts-urw-base35 fonts-go fonts-linuxlibertine
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-open-sans fonts-roboto-unhinted
  fonts-ebgaramond fonts-hack fonts-noto-mono fonts-paratype fonts-stix fonts-sil-gentium
  fonts-comfortaa fonts-cantarell
)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

# apt-get waits up to 10 minutes for the dpkg lock; `apt-get update` is retried while the lists
# lock is held (exit 100), which it does not wait for by itself.
apt_wait=(-o DPkg::Lock::Timeout=600)
apt_update() {
  for attempt in $(seq 1 60); do
    if apt-get "${apt_wait[@]}" update -q; then return 0; fi
    echo "setup: apt-get update failed (attempt $attempt); another apt process may hold the lock, retrying in 10 s" >&2
    sleep 10
  done
  return 1
}

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: installing ${missing[*]} needs root (apt-get)." >&2
    exit 1
  fi
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_wait[@]}" install -y -q --no-install-recommends "${missing[@]}"
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$pnpm_version" ]; then
  npm install -g --no-fund --no-audit "pnpm@$pnpm_version"
fi
pnpm install --frozen-lockfile
pnpm run build
pnpm --filter @mrl/kernels run build:native
