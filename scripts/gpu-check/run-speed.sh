#!/usr/bin/env bash
# The CPU speed pack's runner (pack.sh --cpu builds the pack; its header unpacks it and calls
# this): prints the machine (cores, CPU model, glibc, Python and PyTorch versions), checks that the
# native kernels load (ONNX Runtime, and the oneDNN addon with the pack's own libdnnl), then runs
# bench/speed.mjs: mrl on the wasm backend with the native kernels against the machine's PyTorch
# (python3) on the same number of threads. Every option goes to bench/speed.mjs; --threads
# defaults to all (every core, os.availableParallelism()). Exit status: speed.mjs's, or 2 for an
# incomplete pack.
# Usage: run-speed.sh [--threads N|all] [--models mlp,resnet18,vit,bert] [--steps N] [--no-torch]
#                     [--out DIR] [other bench/speed.mjs options]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
for f in bin/node bin/python3 app/dist/native/speed.mjs app/native/build/onednn.node lib/libdnnl.so.2 \
  app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1; do
  [ -e "$here/$f" ] || {
    echo "run-speed.sh: $here/$f is missing: run-speed.sh runs inside an unpacked CPU speed pack. Build the pack with scripts/gpu-check/pack.sh --cpu and run the file it writes." >&2
    exit 2
  }
done
out="$here/out"
args=()
threads=
while [ $# -gt 0 ]; do
  case "$1" in
  --out)
    [ $# -ge 2 ] || { echo "run-speed.sh: --out needs a folder" >&2; exit 2; }
    out=$2
    shift 2
    continue
    ;;
  --threads) threads=${2:-} ;;
  esac
  args+=("$1")
  shift
done
[ -n "$threads" ] || args+=(--threads all)
mkdir -p "$out"

# PyTorch: the machine's python3 (MRL_SPEED_PYTHON to choose another), run through bin/python3,
# which takes the pack's lib/ off LD_LIBRARY_PATH again.
export MRL_SPEED_PYTHON="${MRL_SPEED_PYTHON:-$(command -v python3 || true)}"
export MRL_SPEED_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
torch_ok=0
if [ -n "$MRL_SPEED_PYTHON" ] && "$MRL_SPEED_PYTHON" -c 'import torch' 2>/dev/null; then torch_ok=1; fi
if [ "$torch_ok" = 0 ] && [[ " ${args[*]} " != *" --no-torch "* ]]; then args+=(--no-torch); fi
if [[ " ${args[*]} " != *" --python "* ]]; then args+=(--python "$here/bin/python3"); fi
# The native kernels: the pack's oneDNN, libgomp and libOpenCL come first on the library path.
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# What runs where, before the table (also in the log).
describe() {
  local cpu_model
  cpu_model="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
  [ -n "$cpu_model" ] || cpu_model="$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)"
  echo "machine: nproc $(nproc), $(grep -c ^processor /proc/cpuinfo) processors listed; CPU: ${cpu_model:-unknown}; $(uname -sr); $(ldd --version 2>&1 | head -1)"
  echo "Node: $("$here/bin/node" --version) (the pack's)"
  if [ "$torch_ok" = 1 ]; then
    "$here/bin/python3" -c 'import sys, torch
print(f"Python {sys.version.split()[0]} ({sys.executable}), PyTorch {torch.__version__}, {torch.get_num_threads()} threads by default, MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}")'
  else
    echo "PyTorch: '${MRL_SPEED_PYTHON:-python3}' -c 'import torch' fails here; mrl runs alone (--no-torch)"
  fi
  echo "libraries: the pack's lib/ ($(tr '\n' ',' <"$here/lib/VERSION" | sed 's/,$//; s/,/, /g'))"
  if command -v ldd >/dev/null 2>&1; then
    ldd "$here/app/native/build/onednn.node" | grep -E 'dnnl|gomp|OpenCL|not found' | sed 's/^[[:space:]]*/  onednn.node: /'
  fi
  "$here/bin/node" -e '
const r = require("node:module").createRequire(process.argv[1] + "/");
const mapped = (name) => [...new Set(require("node:fs").readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.split(/\s+/)[5] ?? "").filter((f) => f.includes(name)))].join(", ");
try { const v = r("./app/native/build/onednn.node").version(); console.log(`oneDNN addon: loads (oneDNN ${v}; ${mapped("libdnnl")}, ${mapped("libgomp")})`); }
catch (e) { console.log(`oneDNN addon: does not load here (${e.message.split("\n")[0]}); convolutions and products go to ONNX Runtime`); }
try { r("./app/node_modules/onnxruntime-node/dist/binding.js"); console.log(`ONNX Runtime: loads (onnxruntime-node ${r("./app/node_modules/onnxruntime-node/package.json").version})`); }
catch (e) { console.log(`ONNX Runtime: does not load here (${e.message.split("\n")[0]}); mrl falls back to the wasm kernels`); }
' "$here"
}

set +e
{
  describe
  echo "+ node bench/speed.mjs ${args[*]}"
  "$here/bin/node" "$here/app/dist/native/speed.mjs" "${args[@]}"
} 2>&1 | grep --line-buffered -v -e 'looks like you are running TensorFlow.js in Node.js' -e 'tfjs-node for more details' -e '^=*$' |
  tee "$out/speed.log"
status=${PIPESTATUS[0]}
echo "results: $out/speed.log"
exit "$status"
