#!/usr/bin/env bash
# Builds the optional oneDNN addon into build/onednn.node: the convolutions (onednn.cc), the
# products (onednn_matmul.cc), the chunked Matryoshka softmax cross-entropy (onednn_prefix_ce.cc)
# and the one of a head with few classes (prefix_ce_few.cc),
# threaded batch norm with its elementwise sums, ReLU and GELU (batch_norm.cc), the SGD and AdamW
# updates (sgd_update.cc, adamw_update.cc), Multiply, Sub and the sums over any axes (binary.cc),
# the Transpose, Slice, SplitV and Concat copies (layout.cc), the fused attention (attention.cc),
# layer norm, its gradient and Softmax (layer_norm.cc), and dropout masks (dropout.cc). Offline:
# one g++ call against Node's own headers (Debian's nodejs package, /usr/include/node), Debian's
# libdnnl-dev and librandom123-dev (Random123's header-only generators); node-gyp is not needed
# (and would fetch headers without --nodedir).
# Exits 0 with one line when something is missing: the addon is optional, and without it the
# convolutions run on ONNX Runtime as before.
set -euo pipefail
cd "$(dirname "$0")"

cxx=${CXX:-g++}
node_include=${NODE_INCLUDE:-}
if [ -z "$node_include" ]; then
  for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_api.h" ]; then node_include=$d; break; fi
  done
fi
if [ "$(uname -s)" != Linux ]; then
  echo "onednn addon: skipped (built on Linux only); convolutions stay on ONNX Runtime."
  exit 0
fi
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "onednn addon: skipped ($cxx not found; apt-get install g++); convolutions stay on ONNX Runtime."
  exit 0
fi
if [ -z "$node_include" ] || [ ! -f "$node_include/node_api.h" ]; then
  echo "onednn addon: skipped (node_api.h not found; apt-get install nodejs or set NODE_INCLUDE); convolutions stay on ONNX Runtime."
  exit 0
fi
if ! printf '#include "oneapi/dnnl/dnnl.hpp"\n' | "$cxx" -x c++ -fsyntax-only - >/dev/null 2>&1; then
  echo "onednn addon: skipped (oneDNN headers not found; apt-get install libdnnl-dev); convolutions stay on ONNX Runtime."
  exit 0
fi
if ! printf '#include <Random123/philox.h>\n' | "$cxx" -x c++ -fsyntax-only - >/dev/null 2>&1; then
  echo "onednn addon: skipped (Random123 headers not found; apt-get install librandom123-dev); convolutions stay on ONNX Runtime."
  exit 0
fi

mkdir -p build
# -ffp-contract=off: no fused multiply-adds in the vectorised loops of batch_norm.cc and
# sgd_update.cc, so that they round as the wasm kernels they replace (and the same on every CPU).
# -fno-math-errno: a square root is the sqrtps instruction, not a libm call kept for errno, so that
# adamw_update.cc's loop vectorises (the same correctly rounded values; no other result changes).
# Built beside the final name, then renamed: a half-written addon is never loaded.
"$cxx" -std=c++17 -O2 -ffp-contract=off -fno-math-errno -fPIC -shared -fopenmp -fvisibility=hidden \
  -DNODE_GYP_MODULE_NAME=onednn -DNAPI_VERSION=8 -I"$node_include" \
  onednn.cc onednn_matmul.cc onednn_prefix_ce.cc prefix_ce_few.cc batch_norm.cc sgd_update.cc adamw_update.cc binary.cc \
  layout.cc attention.cc layer_norm.cc dropout.cc -o build/onednn.node.tmp -ldnnl
mv build/onednn.node.tmp build/onednn.node
echo "onednn addon: built packages/kernels/native/build/onednn.node (oneDNN $(node -p "require('./build/onednn.node').version()"))."
