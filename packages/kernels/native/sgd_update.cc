// Why: the SGD-momentum update of a ResNet-18 step reads and writes every one of its 11M
// parameters (~9 ms a step at batch 16, the wasm SIMD kernel of src/wasm/optimizer_updates.ts on
// one thread). Here is the same elementwise update on OpenMP threads, with the same float
// operations in the same order (the build turns off FMA contraction), so its results are the
// wasm kernel's to the bit at every thread count.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "blocks.h"
#include "float_arg.h"

namespace {

// Below this many values an update runs on the calling thread alone (waking a thread costs more).
constexpr int64_t kParallelValues = 32768;
constexpr int64_t kBlock = 8192;

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// d = g + wd p;  buf' = momentum buf + d;  p' = p - lr (nesterov ? d + momentum buf' : buf')
MRL_CLONES void sgdBlock(const float* p, const float* g, const float* buf, float* pOut, float* bufOut, int64_t n,
                         float lr, float momentum, float wd, bool nesterov) {
  if (nesterov) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + p[i] * wd;
      const float b = buf[i] * momentum + d;
      bufOut[i] = b;
      pOut[i] = p[i] - lr * (d + b * momentum);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + p[i] * wd;
      const float b = buf[i] * momentum + d;
      bufOut[i] = b;
      pOut[i] = p[i] - lr * b;
    }
  }
}

// sgdMomentum(threads, p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov)
napi_value SgdMomentum(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t threads = 0;
  if (argc != 10 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) {
    napi_throw_type_error(env, nullptr,
                          "onednn: sgdMomentum takes (threads >= 1, p, g, buf, pOut, bufOut, lr, momentum, "
                          "weightDecay, nesterov)");
    return nullptr;
  }
  const char* names[5] = {"p", "g", "buf", "pOut", "bufOut"};
  float* a[5];
  size_t n[5];
  if (!sameLengthFloats(env, argv + 1, 5, names, "sgdMomentum", a, n)) return nullptr;
  double lr, momentum, wd;
  bool nesterov = false;
  if (napi_get_value_double(env, argv[6], &lr) != napi_ok || napi_get_value_double(env, argv[7], &momentum) != napi_ok ||
      napi_get_value_double(env, argv[8], &wd) != napi_ok || napi_get_value_bool(env, argv[9], &nesterov) != napi_ok) {
    napi_throw_type_error(env, nullptr, "onednn: sgdMomentum's lr, momentum and weightDecay are numbers, nesterov a boolean");
    return nullptr;
  }
  // The wasm kernel takes them as f32 parameters: the same rounding here.
  const float flr = static_cast<float>(lr), fm = static_cast<float>(momentum), fwd = static_cast<float>(wd);
  parallelBlocks(threads, static_cast<int64_t>(n[0]), kBlock, kParallelValues, [&](int64_t at, int64_t len) {
    sgdBlock(a[0] + at, a[1] + at, a[2] + at, a[3] + at, a[4] + at, len, flr, fm, fwd, nesterov);
  });
  return nullptr;
}

}  // namespace

napi_value OneDnnSgdMomentum(napi_env env, napi_callback_info info) { return SgdMomentum(env, info); }
