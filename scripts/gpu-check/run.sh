#!/usr/bin/env bash
# The GPU check, run from an unpacked pack (pack.sh builds it; the pack's own header unpacks it and
# calls this). Selects the NVIDIA Vulkan driver when one is installed, trains a few steps of the
# MLP, ResNet-18, ViT-tiny and BERT-mini on --backend webgpu (Dawn on Vulkan) and on a CPU backend
# from the same weights, checks that the losses agree, and prints ms/step, next to PyTorch CUDA
# when `python3 -c "import torch"` works here with a CUDA device. Exit status: 0 the losses agree,
# 1 they do not, 2 bad arguments or an incomplete pack, 3 no WebGPU adapter / backend.
set -euo pipefail

usage="usage: run.sh [--models mlp,resnet18,vit,bert] [--steps N] [--reference cpu|wasm|none] [--batch-scale S]
              [--tolerance R] [--icd FILE] [--no-torch] [--out DIR] [--profile TOP] [--tf-flags NAME=VALUE,...]"
models=mlp,resnet18,vit,bert
steps=3
reference=wasm
batch_scale=1
tolerance=1e-3
icd=
torch=1
out=
extra=()
fail() {
  echo "run.sh: $1" >&2
  echo "$usage" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
  -h | --help)
    echo "$usage"
    exit 0
    ;;
  --no-torch)
    torch=0
    shift
    continue
    ;;
  --models | --steps | --reference | --batch-scale | --tolerance | --icd | --out | --profile | --tf-flags)
    [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || fail "$1 needs a value"
    ;;
  *) fail "unknown argument '$1'" ;;
  esac
  case "$1" in
  --models) models=$2 ;;
  --steps)
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 2 ] || fail "--steps must be a whole number >= 2 (the first step is not timed), got '$2'"
    steps=$2
    ;;
  --reference)
    case "$2" in cpu | wasm | none) reference=$2 ;; *) fail "--reference must be cpu, wasm or none, got '$2'" ;; esac
    ;;
  --batch-scale) batch_scale=$2 ;;
  --tolerance) tolerance=$2 ;;
  --icd)
    [ -f "$2" ] || fail "--icd: no Vulkan ICD file '$2'"
    icd=$2
    ;;
  --out) out=$2 ;;
  --profile)
    [[ "$2" =~ ^[0-9]+$ ]] || fail "--profile must be a whole number of kernels to list (0: none), got '$2'"
    extra+=(--profile "$2")
    ;;
  --tf-flags) extra+=(--tf-flags "$2") ;;
  esac
  shift 2
done

here="$(cd "$(dirname "$0")" && pwd)"
for f in bin/node app/check.mjs app/dist/linux-x64/dawn.node; do
  [ -e "$here/$f" ] || {
    echo "run.sh: $here/$f is missing: run.sh runs inside an unpacked GPU check pack. Build the pack with scripts/gpu-check/pack.sh and run the file it writes." >&2
    exit 2
  }
done
out="${out:-$here/out}"
mkdir -p "$out"

# The Vulkan driver: the NVIDIA ICD when installed (Dawn would otherwise take the first driver
# the loader lists, possibly a software one), else whatever the loader finds (lavapipe here).
if [ -z "$icd" ] && [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
    if [ -f "$f" ]; then
      icd=$f
      break
    fi
  done
fi
if [ -n "$icd" ]; then
  export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
  echo "Vulkan driver: $icd"
elif [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  echo "Vulkan driver: ${VK_ICD_FILENAMES:-$VK_DRIVER_FILES} (from the environment)"
else
  echo "Vulkan driver: no NVIDIA ICD found; the loader's default drivers ($(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | grep json | tr '\n' ' '))"
fi
# The Vulkan loader: the pack's (Debian libvulkan1), so the run is the same whether or not the
# machine has one; the driver (ICD) it loads is the machine's.
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "Vulkan loader: the pack's ($(cat "$here/lib/VERSION" 2>/dev/null || echo libvulkan1))"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /'

torch_file=
if [ "$torch" = 1 ]; then
  if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 4)" 2>/dev/null; then
    torch_file="$out/torch-cuda.jsonl"
    echo "PyTorch CUDA: timing the same models (torch/torch_cuda.py)"
    python3 "$here/torch/torch_cuda.py" --models "$models" --steps "$steps" --batch-scale "$batch_scale" >"$torch_file" ||
      echo "PyTorch CUDA run failed; going on without it" >&2
  else
    echo "PyTorch CUDA: python3 -c 'import torch' does not give a CUDA device here; skipped"
  fi
fi

args=(--backend webgpu --reference "$reference" --models "$models" --steps "$steps" --batch-scale "$batch_scale"
  --tolerance "$tolerance" --json "$out/check.json" ${extra[@]+"${extra[@]}"})
[ -n "$torch_file" ] && args+=(--torch "$torch_file")
set +e
"$here/bin/node" "$here/app/check.mjs" "${args[@]}" 2>&1 | grep --line-buffered -v -e 'looks like you are running TensorFlow.js in Node.js' \
  -e 'tfjs-node for more details' -e '^=*$' | tee "$out/check.log"
status=${PIPESTATUS[0]}
echo "results: $out/check.log, $out/check.json${torch_file:+, $torch_file}"
exit "$status"
