#!/usr/bin/env bash
# Builds the GPU check pack: one self-unpacking file, at most 64 MiB, that trains the benchmark
# models on --backend webgpu on a machine without Node or network. It holds the Node binary
# running this script (process.execPath), the check bundled into one ES module with TF.js and the
# mrl packages (bundle.mjs), Dawn's dawn.node for linux-x64 only (of the npm webgpu package's five
# platforms), the wasm backend's .wasm files, the Vulkan loader of Debian's libvulkan1, PyTorch
# scripts for the CUDA timings, and run.sh. Run after pnpm run build.
# Usage: bash scripts/gpu-check/pack.sh [OUT_FILE]      (default scripts/gpu-check/out/mrl-gpu-check.run)
#        bash scripts/gpu-check/pack.sh --list          (stage the files and list them, no compression)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
limit=$((64 * 1024 * 1024))
list=0
out="$here/out/mrl-gpu-check.run"
case "${1:-}" in
--list) list=1 ;;
-h | --help)
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
-*)
  echo "pack.sh: unknown option '$1' (known: --list, --help)" >&2
  exit 2
  ;;
"") ;;
*) out="$1" ;;
esac

for pkg in kernels core vision text; do
  [ -f "$root/packages/$pkg/dist/index.js" ] || {
    echo "pack.sh: packages/$pkg/dist is missing; run pnpm run build first." >&2
    exit 2
  }
done
resolve() { # the folder of an npm package, as the check's package resolves it
  (cd "$here" && node -e "const {createRequire}=require('node:module');const p=require('node:path');console.log(p.dirname(createRequire(p.join(process.cwd(),'package.json')).resolve(process.argv[1]+'/package.json')))" "$1") 2>/dev/null || {
    echo "pack.sh: the npm package '$1' is not installed (an optional dependency: run pnpm install without --no-optional)." >&2
    exit 2
  }
}
webgpu="$(resolve webgpu)"
wasm="$(resolve @tensorflow/tfjs-backend-wasm)"
vulkan="$(readlink -f /usr/lib/x86_64-linux-gnu/libvulkan.so.1 2>/dev/null || true)"
[ -f "$vulkan" ] || {
  echo "pack.sh: the Vulkan loader (Debian libvulkan1) is not installed; scripts/setup.sh installs it (apt-get install libvulkan1)." >&2
  exit 2
}
[ "$(uname -m)" = x86_64 ] || {
  echo "pack.sh: the pack is for linux-x64 and takes this machine's Node binary; this is $(uname -m)." >&2
  exit 2
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/mrl-gpu-check"
mkdir -p "$stage/bin" "$stage/lib" "$stage/app/dist/linux-x64" "$stage/app/wasm" "$stage/torch"
node "$here/bundle.mjs" "$stage/app"
cp "$(node -p process.execPath)" "$stage/bin/node"
cp "$webgpu/dist/linux-x64/dawn.node" "$stage/app/dist/linux-x64/"
cp "$webgpu/LICENSE.md" "$stage/app/dist/LICENSE-webgpu.md"
cp "$wasm"/dist/*.wasm "$stage/app/wasm/"
cp "$vulkan" "$stage/lib/libvulkan.so.1"
dpkg-query -W -f='${Package} ${Version}\n' libvulkan1 >"$stage/lib/VERSION" 2>/dev/null || echo libvulkan1 >"$stage/lib/VERSION"
cp "$root/bench/torch_speed.py" "$here/torch_cuda.py" "$stage/torch/"
cp "$here/run.sh" "$stage/run.sh"
chmod +x "$stage/run.sh" "$stage/bin/node"
(cd "$stage" && find . -type f ! -name MANIFEST | sort | xargs sha256sum) >"$stage/MANIFEST"

if [ "$list" = 1 ]; then
  (cd "$stage" && find . -type f | sort | xargs stat -c '%s %n')
  echo "total $(du -sb "$stage" | cut -f1) bytes uncompressed"
  exit 0
fi

payload="$work/payload.tar.xz"
tar -C "$work" --owner=0 --group=0 --numeric-owner -cf - mrl-gpu-check | xz -T0 -6 -c >"$payload"
header="$work/header.sh"
cp "$here/header.sh" "$header"
offset=$(($(wc -c <"$header") + 1))
sed -i "s/^payload_offset=@@@@@@@@@@$/payload_offset=$(printf '%010d' "$offset")/" "$header"
[ $(($(wc -c <"$header") + 1)) -eq "$offset" ] || {
  echo "pack.sh: header size changed while setting the payload offset" >&2
  exit 1
}
mkdir -p "$(dirname "$out")"
cat "$header" "$payload" >"$out.tmp"
chmod +x "$out.tmp"
mv "$out.tmp" "$out"
size=$(wc -c <"$out")
echo "pack: $out, $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB; limit 64 MiB)"
echo "uncompressed: $(du -sb "$stage" | cut -f1) bytes: node $(wc -c <"$stage/bin/node"), dawn.node $(wc -c <"$stage/app/dist/linux-x64/dawn.node"), check.mjs $(wc -c <"$stage/app/check.mjs"), libvulkan.so.1 $(wc -c <"$stage/lib/libvulkan.so.1")"
if [ "$size" -ge "$limit" ]; then
  echo "pack.sh: the pack is $size bytes, over the 64 MiB limit" >&2
  exit 1
fi
