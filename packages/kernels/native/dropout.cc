// Why: BERT's dropout masks were drawn by `tf.randomUniform`, a JavaScript generator on one thread
// (about 13 ns a value; 4.5M values, 40-50 ms of CPU, of every BERT-mini step at batch 8, at any
// thread count). Here a mask is Philox4x32-10 (Random123, Debian's librandom123-dev: the
// counter-based generator of PyTorch's CUDA dropout) at counter (i / 4, 0, 0, 0) under
// the seed's key, so value i depends on (seed, i) alone: blocks of values are filled on OpenMP
// threads with the same bits at every thread count, and src/random/philox.ts gives the same bits
// where the addon is absent. Value i is `scale` when the top 24 bits of word i % 4 are below
// `keepBelow`, else 0 (the draw is described once, in philox.ts `dropoutDraw`).
#include <Random123/philox.h>
#include <node_api.h>
#include <omp.h>

#include <cstdint>
#include <string>

#include "blocks.h"
#include "float_arg.h"

namespace {

// Below this many values a mask is filled on the calling thread alone (waking a thread costs more).
constexpr int64_t kParallelValues = 32768;
// Values per block: a multiple of 4, so that no Philox block is split between threads.
constexpr int64_t kBlock = 8192;

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// Philox blocks per vectorised batch.
constexpr int64_t kLanes = 16;

// One Philox4x32 round on every lane, with Random123's multipliers.
inline __attribute__((always_inline)) void round4x32(uint32_t& x0, uint32_t& x1, uint32_t& x2, uint32_t& x3,
                                                     uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(PHILOX_M4x32_0) * x0;
  const uint64_t p1 = static_cast<uint64_t>(PHILOX_M4x32_1) * x2;
  x0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ k0;
  x1 = static_cast<uint32_t>(p1);
  x2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ k1;
  x3 = static_cast<uint32_t>(p0);
}

// Philox4x32-10 of counters (first + b, 0, 0, 0), b < kLanes, into words[w][b]: Random123's
// r123::Philox4x32_R<10> written on plain lanes, which the compiler vectorises (the library's
// struct form stays scalar: 28 ms for BERT-mini's 4.5M values at one thread). `checked` below
// compares the two once per process.
MRL_CLONES void philoxLanes(uint32_t first, uint32_t key0, uint32_t key1, uint32_t (*words)[kLanes]) {
#pragma omp simd
  for (int64_t b = 0; b < kLanes; ++b) {
    uint32_t x0 = first + static_cast<uint32_t>(b), x1 = 0, x2 = 0, x3 = 0;
    uint32_t k0 = key0, k1 = key1;
    round4x32(x0, x1, x2, x3, k0, k1);
#define MRL_PHILOX_BUMPED_ROUND                         \
  k0 += PHILOX_W32_0;                                   \
  k1 += PHILOX_W32_1;                                   \
  round4x32(x0, x1, x2, x3, k0, k1);
    MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND
    MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND MRL_PHILOX_BUMPED_ROUND
    MRL_PHILOX_BUMPED_ROUND
#undef MRL_PHILOX_BUMPED_ROUND
    words[0][b] = x0;
    words[1][b] = x1;
    words[2][b] = x2;
    words[3][b] = x3;
  }
}

// Whether philoxLanes gives the library's words (Random123's known-answer key among others).
bool checked() {
  static const bool same = [] {
    const uint32_t keys[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    for (const auto& k : keys) {
      uint32_t words[4][kLanes];
      const uint32_t first = 0xfffffff8u;  // the counter wraps within the batch
      philoxLanes(first, k[0], k[1], words);
      for (int64_t b = 0; b < kLanes; ++b) {
        const r123::Philox4x32_R<10>::ctr_type counter = {{first + static_cast<uint32_t>(b), 0, 0, 0}};
        const r123::Philox4x32_R<10>::key_type key = {{k[0], k[1]}};
        const auto r = r123::Philox4x32_R<10>()(counter, key);
        for (int w = 0; w < 4; ++w) {
          if (words[w][b] != r.v[w]) return false;
        }
      }
    }
    return true;
  }();
  return same;
}

// y[at .. at + len) of the mask; `at` is a multiple of 4.
void fill(uint32_t key0, uint32_t key1, uint32_t keepBelow, float scale, int64_t at, int64_t len, float* y) {
  const int64_t end = at + len;
  uint32_t words[4][kLanes];
  for (int64_t i = at; i < end; i += 4 * kLanes) {
    philoxLanes(static_cast<uint32_t>(i / 4), key0, key1, words);
    if (end - i >= 4 * kLanes) {
      for (int64_t b = 0; b < kLanes; ++b) {
        for (int w = 0; w < 4; ++w) y[i + 4 * b + w] = (words[w][b] >> 8) < keepBelow ? scale : 0.0f;
      }
    } else {
      for (int64_t j = 0; j < end - i; ++j) y[i + j] = (words[j % 4][j / 4] >> 8) < keepBelow ? scale : 0.0f;
    }
  }
}

// dropoutMultiplier(threads, Uint32 words as an Int32Array [key0, key1, keepBelow], scale, y):
// y = the mask of y.length values.
napi_value DropoutMultiplier(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const char* usage = "onednn: dropoutMultiplier takes (threads >= 1, Int32Array [key0, key1, keepBelow], scale, y)";
  int32_t threads = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 4 ||
      napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) {
    napi_throw_type_error(env, nullptr, usage);
    return nullptr;
  }
  const int32_t* words = nullptr;
  size_t count = 0;
  double scale = 0;
  if (!int32Array(env, argv[1], &words, &count) || count != 3 ||
      napi_get_value_double(env, argv[2], &scale) != napi_ok) {
    napi_throw_type_error(env, nullptr, usage);
    return nullptr;
  }
  const uint32_t keepBelow = static_cast<uint32_t>(words[2]);
  if (keepBelow > (1u << 24)) {
    napi_throw_range_error(env, nullptr, "onednn: dropoutMultiplier's keepBelow must be at most 2^24");
    return nullptr;
  }
  float* y = nullptr;
  size_t n = 0;
  if (!floatArg(env, argv[3], &y, &n, "dropoutMultiplier y")) return nullptr;
  if (n / 4 > UINT32_MAX) {
    napi_throw_range_error(env, nullptr, "onednn: dropoutMultiplier takes at most 2^34 values");
    return nullptr;
  }
  if (!checked()) {
    napi_throw_error(env, nullptr, "onednn: dropoutMultiplier's vectorised Philox4x32-10 differs from Random123's here");
    return nullptr;
  }
  const uint32_t key0 = static_cast<uint32_t>(words[0]), key1 = static_cast<uint32_t>(words[1]);
  const float s = static_cast<float>(scale);
  parallelBlocks(threads, static_cast<int64_t>(n), kBlock, kParallelValues,
                 [&](int64_t at, int64_t len) { fill(key0, key1, keepBelow, s, at, len, y); });
  return nullptr;
}

}  // namespace

napi_value OneDnnDropoutMultiplier(napi_env env, napi_callback_info info) { return DropoutMultiplier(env, info); }
