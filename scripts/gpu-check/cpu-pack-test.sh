#!/usr/bin/env bash
# The CPU speed pack's test: builds it (pack.sh --cpu; fails at 60 MiB), unpacks it into a fresh
# folder under /tmp and runs it as on a machine without Node: an empty environment whose PATH is
# this machine's /usr/bin without node, npm, npx, pnpm and corepack, and no LD_LIBRARY_PATH. The
# run must print the speed table with a PyTorch column (the machine's python3 with torch), show
# the native kernels in the backend line (ONNX Runtime and oneDNN, not the wasm fallback), and
# show the oneDNN addon loading the pack's libdnnl.so.2, not /usr/lib's. Takes 3-5 minutes on 2
# shared cores (2 to pack), so it is not in the test suite.
# Usage: bash scripts/gpu-check/cpu-pack-test.sh [run-speed.sh options]   (default: --threads 2 --models mlp --steps 2)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d /tmp/mrl-cpu-speed-test.XXXXXX)"
pack="$tmp/mrl-cpu-speed.run"
bash "$here/pack.sh" --cpu "$pack"

# A PATH without Node: every program of /usr/bin and /usr/sbin but Node's.
mkdir -p "$tmp/path"
for d in /usr/bin /usr/sbin; do
  for f in "$d"/*; do
    case "$(basename "$f")" in node | nodejs | npm | npx | pnpm | pnpx | corepack | yarn) continue ;; esac
    [ -e "$tmp/path/$(basename "$f")" ] || ln -s "$f" "$tmp/path/$(basename "$f")"
  done
done
if env -i PATH="$tmp/path" sh -c 'command -v node' >/dev/null; then
  echo "cpu-pack-test: node is still on the test PATH" >&2
  exit 1
fi

[ $# -gt 0 ] || set -- --threads 2 --models mlp --steps 2
env -i PATH="$tmp/path" HOME="$tmp" MRL_CPU_SPEED_DIR="$tmp/unpacked" sh "$pack" --out "$tmp/out" "$@"
log="$tmp/out/speed.log"
fail=0
check() { # what, pattern
  if grep -qE "$2" "$log"; then echo "ok: $1"; else
    echo "FAILED: $1 (no line matching /$2/ in $log)" >&2
    fail=1
  fi
}
check "the backend runs the native kernels (ONNX Runtime, convolutions and products on oneDNN)" \
  'backend wasm \(WebAssembly with mrl training kernels.*ONNX Runtime [0-9.]+.*convolutions on oneDNN [0-9.]+, products on oneDNN'
check "PyTorch ran beside it" '^PyTorch [0-9]'
check "the table has a PyTorch ms/step" '^\| mlp \| 256 \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9.]+ /'
check "the oneDNN addon loaded the pack's libdnnl.so.2" "^oneDNN addon: loads \(oneDNN [0-9.]+; $tmp/unpacked/mrl-cpu-speed/lib/libdnnl.so.2"
echo "pack: $(wc -c <"$pack") bytes; unpacked run in $tmp"
exit "$fail"
