// Why: the AdamW update reads four arrays and writes three for every parameter of the model
// (11M in BERT-mini, 5.7M in ViT-tiny). On the wasm SIMD kernel of src/wasm/optimizer_updates.ts,
// one thread, it was 36.7 ms of BERT-mini's 16-thread step and 15.5 ms of ViT-tiny's. Here is the
// same elementwise update on OpenMP threads, with the same float operations in the same order and
// the same f32 coefficients (the build turns off FMA contraction; division and square root are
// IEEE's, correctly rounded, on both sides), so its results are the wasm kernel's to the bit at
// every thread count.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "blocks.h"
#include "float_arg.h"

namespace {

// Below this many values an update runs on the calling thread alone (waking a thread costs more).
constexpr int64_t kParallelValues = 16384;
constexpr int64_t kBlock = 8192;

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// The coefficients as the wasm kernel takes them (f32 parameters): see src/wasm/optimizer_updates.ts.
struct AdamW {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, keep, stepScale, vScale, eps;
};

// m' = m beta1 + g (1 - beta1);  v' = v beta2 + (g g)(1 - beta2);
// p' = p keep - (m' stepScale) / (sqrt(v' vScale) + eps), keep = 1 - lr wd, stepScale = lr / (1 - beta1^t),
// vScale = 1 / (1 - beta2^t): simd/optimizer-updates.wat's `adamw`, operation for operation.
MRL_CLONES void adamwBlock(const float* p, const float* g, const float* m, const float* v, float* pOut, float* mOut,
                           float* vOut, int64_t n, AdamW c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] * c.beta1 + gi * c.oneMinusBeta1;
    const float vi = v[i] * c.beta2 + (gi * gi) * c.oneMinusBeta2;
    mOut[i] = mi;
    vOut[i] = vi;
    // Vectorised only without errno (-fno-math-errno in build.sh: sqrtps, the same correctly rounded root).
    pOut[i] = p[i] * c.keep - (mi * c.stepScale) / (std::sqrt(vi * c.vScale) + c.eps);
  }
}

constexpr int kArrays = 7;
constexpr int kArgs = 1 + kArrays + 8;

// adamW(threads, p, g, m, v, pOut, mOut, vOut, beta1, 1 - beta1, beta2, 1 - beta2, keep, stepScale, vScale, eps)
napi_value AdamWUpdate(napi_env env, napi_callback_info info) {
  size_t argc = kArgs;
  napi_value argv[kArgs];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t threads = 0;
  if (argc != kArgs || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) {
    napi_throw_type_error(env, nullptr,
                          "onednn: adamW takes (threads >= 1, p, g, m, v, pOut, mOut, vOut, beta1, oneMinusBeta1, "
                          "beta2, oneMinusBeta2, keep, stepScale, vScale, eps)");
    return nullptr;
  }
  const char* names[kArrays] = {"p", "g", "m", "v", "pOut", "mOut", "vOut"};
  float* a[kArrays];
  size_t n[kArrays];
  if (!sameLengthFloats(env, argv + 1, kArrays, names, "adamW", a, n)) return nullptr;
  double d[8];
  for (int i = 0; i < 8; ++i) {
    if (napi_get_value_double(env, argv[1 + kArrays + i], &d[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "onednn: adamW's coefficients are numbers");
      return nullptr;
    }
  }
  // The wasm kernel takes them as f32 parameters: the same rounding here.
  const AdamW c{static_cast<float>(d[0]), static_cast<float>(d[1]), static_cast<float>(d[2]),
                static_cast<float>(d[3]), static_cast<float>(d[4]), static_cast<float>(d[5]),
                static_cast<float>(d[6]), static_cast<float>(d[7])};
  parallelBlocks(threads, static_cast<int64_t>(n[0]), kBlock, kParallelValues, [&](int64_t at, int64_t len) {
    adamwBlock(a[0] + at, a[1] + at, a[2] + at, a[3] + at, a[4] + at, a[5] + at, a[6] + at, len, c);
  });
  return nullptr;
}

}  // namespace

napi_value OneDnnAdamW(napi_env env, napi_callback_info info) { return AdamWUpdate(env, info); }
