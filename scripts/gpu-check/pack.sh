#!/usr/bin/env bash
# Builds a self-unpacking pack (one file, at most 64 MiB) that runs on a machine without Node or
# network. Run after pnpm run build.
#   GPU check (default): trains the benchmark models on --backend webgpu. It holds the Node binary
#     running this script (process.execPath), the check bundled into one ES module with TF.js and
#     the mrl packages (bundle.mjs), Dawn's dawn.node for linux-x64 only (of the npm webgpu
#     package's five platforms), the wasm backend's .wasm files, the Vulkan loader of Debian's
#     libvulkan1, PyTorch scripts for the CUDA timings, and run.sh.
#   CPU speed pack (--cpu): bench/speed.mjs on the wasm backend with the native kernels, against
#     the machine's PyTorch. Node, bench/speed.mjs bundled, onnxruntime-node's linux-x64 files, the
#     oneDNN addon (packages/kernels/native/build.sh) with Debian's libdnnl.so.2 and the libraries
#     it links (libgomp, libOpenCL), the .wasm files, bench/torch_speed.py and run-speed.sh.
# Usage: bash scripts/gpu-check/pack.sh [--cpu] [OUT_FILE]   (default scripts/gpu-check/out/mrl-gpu-check.run,
#                                                            or out/mrl-cpu-speed.run with --cpu)
#        bash scripts/gpu-check/pack.sh [--cpu] --list     (stage the files and list them, no compression)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
limit=$((64 * 1024 * 1024))
list=0
cpu=0
out=
while [ $# -gt 0 ]; do
  case "$1" in
  --list) list=1 ;;
  --cpu) cpu=1 ;;
  -h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  -*)
    echo "pack.sh: unknown option '$1' (known: --cpu, --list, --help)" >&2
    exit 2
    ;;
  *) out="$1" ;;
  esac
  shift
done
if [ "$cpu" = 1 ]; then
  name=mrl-cpu-speed var=MRL_CPU_SPEED runner=run-speed.sh
  # The CPU pack carries larger native files (ONNX Runtime, oneDNN); under 60 MiB leaves room for
  # other files on a 64 MiB carry.
  limit=$((60 * 1024 * 1024))
else
  name=mrl-gpu-check var=MRL_GPU_CHECK runner=run.sh
fi
out="${out:-$here/out/$name.run}"

for pkg in kernels core vision text; do
  [ -f "$root/packages/$pkg/dist/index.js" ] || {
    echo "pack.sh: packages/$pkg/dist is missing; run pnpm run build first." >&2
    exit 2
  }
done
resolve() { # the folder of an npm package, as the package in folder $2 (default: the check's) resolves it
  (cd "${2:-$here}" && node -e "const {createRequire}=require('node:module');const p=require('node:path');console.log(p.dirname(createRequire(p.join(process.cwd(),'package.json')).resolve(process.argv[1]+'/package.json')))" "$1") 2>/dev/null || {
    echo "pack.sh: the npm package '$1' is not installed (an optional dependency: run pnpm install without --no-optional)." >&2
    exit 2
  }
}

stage_gpu() {
  local webgpu vulkan
  webgpu="$(resolve webgpu)"
  vulkan="$(readlink -f $libs/libvulkan.so.1 2>/dev/null || true)"
  [ -f "$vulkan" ] || {
    echo "pack.sh: the Vulkan loader (Debian libvulkan1) is not installed; scripts/setup.sh installs it (apt-get install libvulkan1)." >&2
    exit 2
  }
  mkdir -p "$stage/app/dist/linux-x64" "$stage/app/wasm" "$stage/torch"
  node "$here/bundle.mjs" "$stage/app"
  cp "$webgpu/dist/linux-x64/dawn.node" "$stage/app/dist/linux-x64/"
  cp "$webgpu/LICENSE.md" "$stage/app/dist/LICENSE-webgpu.md"
  cp "$wasm"/dist/*.wasm "$stage/app/wasm/"
  cp "$vulkan" "$stage/lib/libvulkan.so.1"
  dpkg-query -W -f='${Package} ${Version}\n' libvulkan1 >"$stage/lib/VERSION" 2>/dev/null || echo libvulkan1 >"$stage/lib/VERSION"
  cp "$root/bench/torch_speed.py" "$here/torch_cuda.py" "$stage/torch/"
  summary="node $(wc -c <"$stage/bin/node"), dawn.node $(wc -c <"$stage/app/dist/linux-x64/dawn.node"), check.mjs $(wc -c <"$stage/app/check.mjs"), libvulkan.so.1 $(wc -c <"$stage/lib/libvulkan.so.1")"
}

# The CPU pack's layout mirrors @mrl/kernels' package: the bundle in app/dist/native/ (where
# onednn.js sits), the addon in app/native/build/ (its ADDON_PATH from there), onnxruntime-node in
# app/node_modules/ (found by createRequire from the bundle). lib/ holds the libraries the addon
# links that a machine may lack; run-speed.sh puts it on LD_LIBRARY_PATH for Node only.
stage_cpu() {
  local ort common addon lib
  ort="$(resolve onnxruntime-node "$root/packages/kernels")"
  # onnxruntime-common's exports hide its package.json: its folder is three up from its CommonJS entry.
  common="$(cd "$ort" && node -p "require('node:path').resolve(require.resolve('onnxruntime-common'), '../../..')")"
  addon="$root/packages/kernels/native/build/onednn.node"
  [ -f "$addon" ] || {
    echo "pack.sh: the oneDNN addon is not built ($addon); run bash packages/kernels/native/build.sh (needs g++ and libdnnl-dev)." >&2
    exit 2
  }
  local app="$stage/app"
  mkdir -p "$app/dist/native" "$app/native/build" "$app/wasm" "$app/node_modules/onnxruntime-node/dist" \
    "$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64" "$app/node_modules/onnxruntime-common/dist"
  node "$here/bundle.mjs" "$app/dist/native" --cpu
  grep -q '`../../native/build/onednn.node`' "$app/dist/native/speed.mjs" || {
    echo "pack.sh: the bundle no longer loads the oneDNN addon from ../../native/build/onednn.node (packages/kernels/src/native/onednn.ts ADDON_PATH); update the pack's layout." >&2
    exit 1
  }
  cp "$root/bench/torch_speed.py" "$app/dist/native/" # speed.mjs runs it from beside itself
  cp "$addon" "$app/native/build/"
  cp "$wasm"/dist/*.wasm "$app/wasm/"
  cp "$ort/package.json" "$ort/README.md" "$app/node_modules/onnxruntime-node/"
  cp "$ort"/dist/*.js "$app/node_modules/onnxruntime-node/dist/"
  cp "$ort"/bin/napi-v6/linux/x64/* "$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/"
  cp "$common/package.json" "$app/node_modules/onnxruntime-common/"
  mkdir -p "$app/node_modules/onnxruntime-common/dist/cjs"
  cp "$common"/dist/cjs/*.js "$common/dist/cjs/package.json" "$app/node_modules/onnxruntime-common/dist/cjs/"
  # Debian's oneDNN and what it links beyond glibc and libstdc++ (which every system with the
  # glibc oneDNN needs, 2.34, has new enough): the files under their sonames.
  for lib in libdnnl.so.2 libgomp.so.1 libOpenCL.so.1; do
    [ -f "$libs/$lib" ] || {
      echo "pack.sh: $libs/$lib is missing (Debian libdnnl2, libgomp1, ocl-icd-libopencl1; scripts/setup.sh installs them)." >&2
      exit 2
    }
    cp "$(readlink -f "$libs/$lib")" "$stage/lib/$lib"
  done
  dpkg-query -W -f='${Package} ${Version}\n' libdnnl2 libgomp1 ocl-icd-libopencl1 >"$stage/lib/VERSION" 2>/dev/null || echo libdnnl2 >"$stage/lib/VERSION"
  cp "$here/python3-wrapper.sh" "$stage/bin/python3"
  chmod +x "$stage/bin/python3"
  summary="node $(wc -c <"$stage/bin/node"), speed.mjs $(wc -c <"$app/dist/native/speed.mjs"), libonnxruntime.so.1 $(wc -c <"$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"), onednn.node $(wc -c <"$app/native/build/onednn.node"), libdnnl.so.2 $(wc -c <"$stage/lib/libdnnl.so.2")"
}
wasm="$(resolve @tensorflow/tfjs-backend-wasm)"
[ "$(uname -m)" = x86_64 ] || {
  echo "pack.sh: the pack is for linux-x64 and takes this machine's Node binary; this is $(uname -m)." >&2
  exit 2
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage/bin" "$stage/lib"
cp "$(node -p process.execPath)" "$stage/bin/node"
libs=/usr/lib/x86_64-linux-gnu
if [ "$cpu" = 1 ]; then
  stage_cpu
else
  stage_gpu
fi
cp "$here/$runner" "$stage/$runner"
chmod +x "$stage/$runner" "$stage/bin/node"
(cd "$stage" && find . -type f ! -name MANIFEST | sort | xargs sha256sum) >"$stage/MANIFEST"

if [ "$list" = 1 ]; then
  (cd "$stage" && find . -type f | sort | xargs stat -c '%s %n')
  echo "total $(du -sb "$stage" | cut -f1) bytes uncompressed"
  exit 0
fi

payload="$work/payload.tar.xz"
tar -C "$work" --owner=0 --group=0 --numeric-owner -cf - "$name" | xz -T0 -6 -c >"$payload"
header="$work/header.sh"
sed -e "s/@NAME@/$name/g" -e "s/@VAR@/$var/g" -e "s/@RUN@/$runner/g" "$here/header.sh" >"$header"
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
echo "pack: $out, $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB; limit $((limit / 1048576)) MiB)"
echo "uncompressed: $(du -sb "$stage" | cut -f1) bytes: $summary"
if [ "$size" -ge "$limit" ]; then
  echo "pack.sh: the pack is $size bytes, over the $((limit / 1048576)) MiB limit" >&2
  exit 1
fi
