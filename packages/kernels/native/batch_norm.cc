// Why: with the convolutions and products on oneDNN's threads, training-mode batch normalisation
// was the largest part of a ResNet-18 step left on one thread (the wasm SIMD kernels of
// src/wasm/batch_norm.ts, ~27 ms of CPU time a step at batch 16): at 2 threads it held the step
// at 1.09-1.12x PyTorch's wall time. Here are the same two kernels, NHWC float32 on the caller's
// arrays (views of the wasm heap), as passes over row chunks on OpenMP threads, with the ReLU
// that follows a batch norm optionally fused into both (its mask read from the output).
//
// Also the ReLUs around them that no batch norm precedes (a residual block's relu(h + skip)): the
// sum and ReLU in one pass, and ReLU's gradient (dy where the output is positive) in one; the
// sums of same-shape tensors, and of a row vector and each row of a matrix (the bias adds).
//
// And a transformer's GELU and its gradient (src/wasm/transformer_ops.ts runs them on one thread:
// 49 ms of ViT-tiny's 16-thread step, 32 ms of BERT-mini's): one pass each way on the threads,
// the same bits as the wasm kernels (their constants and operation order, and the wasm backend's
// own sigmoid reproduced below).
//
// Determinism: the rows are cut into chunks that depend on the shape alone; each chunk's
// per-channel sums are float, and the chunks are added in chunk order in double, so the results
// are the same bits at every thread count. Each pass's loop runs in one parallel region (its
// phases separated by barriers), so a call wakes the sleeping OpenMP threads once.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blocks.h"
#include "float_arg.h"
#include "float_bits.h"

namespace {

// About 64 KiB of floats per chunk: enough work to pay for a thread, small enough that ResNet's
// 32x32 layers at batch 16 have 64 chunks to share.
constexpr int64_t kChunkValues = 16384;
// Below this many values a call runs on the calling thread alone (waking a thread costs more).
constexpr int64_t kParallelValues = 65536;

struct Layout {
  int64_t rows, c, rowsPerChunk, chunks;
  Layout(int64_t rows_, int64_t c_) : rows(rows_), c(c_) {
    rowsPerChunk = std::max<int64_t>(1, kChunkValues / c);
    chunks = rows == 0 ? 0 : (rows + rowsPerChunk - 1) / rowsPerChunk;
  }
  int64_t begin(int64_t chunk) const { return chunk * rowsPerChunk; }
  int64_t end(int64_t chunk) const { return std::min(rows, (chunk + 1) * rowsPerChunk); }
};

// The loops below are vectorised over channels (`omp simd`); target_clones builds each for
// AVX-512, AVX2 and the baseline, picked at load time by the CPU.
#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// acc[ch] = sum over rows of (x - shift[ch]) ^ power (power 1 or 2).
MRL_CLONES void chunkSums(const float* x, const float* shift, int64_t r0, int64_t r1, int64_t c, int power,
                          float* acc) {
  std::fill(acc, acc + c, 0.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * c;
    if (power == 1) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) acc[i] += row[i] - shift[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        const float d = row[i] - shift[i];
        acc[i] += d * d;
      }
    }
  }
}

// y = x * scale + shift per channel, clamped at 0 with relu.
MRL_CLONES void chunkAffine(const float* x, const float* scale, const float* shift, int64_t r0, int64_t r1, int64_t c,
                            bool relu, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * c;
    float* out = y + r * c;
    if (relu) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) out[i] = std::max(in[i] * scale[i] + shift[i], 0.0f);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) out[i] = in[i] * scale[i] + shift[i];
    }
  }
}

// sumDy[ch] = sum of g, sumDyXc[ch] = sum of g (x - mean), g = dy (masked by y > 0 with relu).
MRL_CLONES void chunkGradSums(const float* dy, const float* x, const float* y, const float* mean, int64_t r0,
                              int64_t r1, int64_t c, float* sumDy, float* sumDyXc) {
  std::fill(sumDy, sumDy + c, 0.0f);
  std::fill(sumDyXc, sumDyXc + c, 0.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = dy + r * c;
    const float* in = x + r * c;
    if (y != nullptr) {
      const float* out = y + r * c;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        const float gi = out[i] > 0.0f ? g[i] : 0.0f;
        sumDy[i] += gi;
        sumDyXc[i] += gi * (in[i] - mean[i]);
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        sumDy[i] += g[i];
        sumDyXc[i] += g[i] * (in[i] - mean[i]);
      }
    }
  }
}

// dx = a g + b x + d per channel, g as in chunkGradSums.
MRL_CLONES void chunkGradAffine(const float* dy, const float* x, const float* y, const float* a, const float* b,
                                const float* d, int64_t r0, int64_t r1, int64_t c, float* dx) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = dy + r * c;
    const float* in = x + r * c;
    float* out = dx + r * c;
    if (y != nullptr) {
      const float* yr = y + r * c;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) out[i] = a[i] * (yr[i] > 0.0f ? g[i] : 0.0f) + b[i] * in[i] + d[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) out[i] = a[i] * g[i] + b[i] * in[i] + d[i];
    }
  }
}

// Adds the chunks' partial sums [chunks, c] in chunk order, in double.
void reduceChunks(const std::vector<float>& partial, const Layout& l, std::vector<double>& out) {
  out.assign(l.c, 0.0);
  for (int64_t k = 0; k < l.chunks; ++k) {
    const float* p = partial.data() + k * l.c;
    for (int64_t i = 0; i < l.c; ++i) out[i] += p[i];
  }
}

int threadsFor(int threads, const Layout& l) {
  return l.rows * l.c < kParallelValues ? 1 : static_cast<int>(std::min<int64_t>(threads, l.chunks));
}

// Training forward: mean, biased variance and rstd = 1 / sqrt(variance + epsilon) per channel
// (two passes: the variance around the mean, as the wasm kernel), then y.
void forward(int threads, const Layout& l, double epsilon, bool relu, const float* x, const float* gamma,
             const float* beta, float* y, float* mean, float* variance, float* rstd) {
  std::vector<float> partial(static_cast<size_t>(l.chunks * l.c));
  std::vector<float> zero(l.c, 0.0f), scale(l.c), shift(l.c);
  std::vector<double> total;
#pragma omp parallel num_threads(threadsFor(threads, l))
  {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < l.chunks; ++k) chunkSums(x, zero.data(), l.begin(k), l.end(k), l.c, 1, &partial[k * l.c]);
#pragma omp single
    {
      reduceChunks(partial, l, total);
      for (int64_t i = 0; i < l.c; ++i) mean[i] = static_cast<float>(total[i] / l.rows);
    }
#pragma omp for schedule(static)
    for (int64_t k = 0; k < l.chunks; ++k) chunkSums(x, mean, l.begin(k), l.end(k), l.c, 2, &partial[k * l.c]);
#pragma omp single
    {
      reduceChunks(partial, l, total);
      for (int64_t i = 0; i < l.c; ++i) {
        const double v = total[i] / l.rows;
        const double r = 1.0 / std::sqrt(v + epsilon);
        variance[i] = static_cast<float>(v);
        rstd[i] = static_cast<float>(r);
        scale[i] = static_cast<float>(gamma[i] * r);
        shift[i] = static_cast<float>(beta[i] - static_cast<double>(mean[i]) * scale[i]);
      }
    }
#pragma omp for schedule(static)
    for (int64_t k = 0; k < l.chunks; ++k)
      chunkAffine(x, scale.data(), shift.data(), l.begin(k), l.end(k), l.c, relu, y);
  }
}

// Its gradient from the forward's mean and rstd (and y with relu): dbeta = sum g, dgamma =
// sum g xhat, dx = r gamma (g - sum(g) / P - xhat sum(g xhat) / P), xhat = (x - mean) r, P rows.
void backward(int threads, const Layout& l, const float* dy, const float* x, const float* y, const float* gamma,
              const float* mean, const float* rstd, float* dx, float* dgamma, float* dbeta) {
  std::vector<float> sums(static_cast<size_t>(l.chunks * l.c)), centred(static_cast<size_t>(l.chunks * l.c));
  std::vector<float> a(l.c), b(l.c), d(l.c);
  std::vector<double> sumDy, sumDyXc;
#pragma omp parallel num_threads(threadsFor(threads, l))
  {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < l.chunks; ++k)
      chunkGradSums(dy, x, y, mean, l.begin(k), l.end(k), l.c, &sums[k * l.c], &centred[k * l.c]);
#pragma omp single
    {
      reduceChunks(sums, l, sumDy);
      reduceChunks(centred, l, sumDyXc);
      const double p = static_cast<double>(l.rows);
      for (int64_t i = 0; i < l.c; ++i) {
        const double r = rstd[i], gr = static_cast<double>(gamma[i]) * r;
        const double bi = -gr * r * r * sumDyXc[i] / p;
        a[i] = static_cast<float>(gr);
        b[i] = static_cast<float>(bi);
        d[i] = static_cast<float>(-bi * mean[i] - gr * sumDy[i] / p);
        dbeta[i] = static_cast<float>(sumDy[i]);
        dgamma[i] = static_cast<float>(sumDyXc[i] * r);
      }
    }
#pragma omp for schedule(static)
    for (int64_t k = 0; k < l.chunks; ++k)
      chunkGradAffine(dy, x, y, a.data(), b.data(), d.data(), l.begin(k), l.end(k), l.c, dx);
  }
}

// Elementwise loops run in blocks of this many values, on threads from kParallelValues up.
constexpr int64_t kBlock = 16384;

MRL_CLONES void addReluBlock(const float* a, const float* b, int64_t n, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = std::max(a[i] + b[i], 0.0f);
}

MRL_CLONES void addBlock(const float* a, const float* b, int64_t n, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

MRL_CLONES void reluGradBlock(const float* dy, const float* y, int64_t n, float* dx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// GELU, tanh form, as src/wasm/transformer_ops.ts computes it, operation for operation (its
// simd/transformer-ops.wat, with the backend's sigmoid between): z = x (k + (x x) kc), k =
// 2 sqrt(2/pi), kc = k 0.044715; s = sigmoid(z); y = x s. The sigmoid is the one the wasm
// backend's Sigmoid kernel runs (XNNPACK's f32 wasmsimd rr2_p5_div microkernel): exp(-|z|) by a
// degree-5 polynomial after a two-constant ln 2 range reduction, e / (e + 1), mirrored for z > 0;
// so y and s are the same bits as the wasm kernels' (test/native_gelu.test.ts).

inline float xnnSigmoid(float x) {
  const float magicBias = 0x1.8000FEp23f, minusLog2e = -0x1.715476p+0f;
  const float ln2Hi = 0x1.62E400p-1f, ln2Lo = 0x1.7F7D1Cp-20f;
  const float c5 = -0x1.0F9F9Cp-7f, c4 = 0x1.573A1Ap-5f, c3 = -0x1.555A80p-3f, c2 = 0x1.FFFDC6p-2f,
              c1 = -0x1.FFFFF6p-1f;
  const float denormCutoff = 0x1.5D589Ep+6f;
  const float z = std::fabs(x);
  float n = magicBias + z * minusLog2e;
  const float s = bitsToFloat(floatToBits(n) << 23);  // 2^round(-z log2 e)
  n = n - magicBias;
  float t = z + n * ln2Hi;
  t = t + n * ln2Lo;
  float p = c4 + t * c5;
  p = c3 + t * p;
  p = c2 + t * p;
  p = c1 + t * p;
  t = t * s;
  const float e = s + t * p;  // exp(-z)
  // Selects as bit masks (as the SIMD kernel does): with branches GCC vectorises for AVX-512 only.
  const uint32_t beyond = 0u - static_cast<uint32_t>(z > denormCutoff);
  const float f = bitsToFloat(floatToBits(e / (e + 1.0f)) & ~beyond);  // sigmoid(-z), 0 past the cutoff
  const uint32_t negative = static_cast<uint32_t>(static_cast<int32_t>(floatToBits(x)) >> 31);
  return bitsToFloat((floatToBits(f) & negative) | (floatToBits(1.0f - f) & ~negative));
}

constexpr float kGeluK = 1.59576912f;     // 2 sqrt(2 / pi)
constexpr float kGeluKc = 0.0713548163f;  // kGeluK 0.044715
constexpr float kGeluKc3 = 0.214064449f;  // 3 kGeluKc

MRL_CLONES void geluBlock(const float* x, int64_t n, float* y, float* s) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float si = xnnSigmoid(v * (kGeluK + (v * v) * kGeluKc));
    s[i] = si;
    y[i] = v * si;
  }
}

// dx = dy (s + (x (s (1 - s))) (k + (x x) 3kc)), the wasm kernel's order.
MRL_CLONES void geluGradBlock(const float* x, const float* s, const float* dy, int64_t n, float* dx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], si = s[i];
    dx[i] = dy[i] * (si + (v * (si * (1.0f - si))) * (kGeluK + (v * v) * kGeluKc3));
  }
}

// --- Node-API glue ---------------------------------------------------------------------------

// dims: Int32Array [threads, rows, channels, relu].
bool readDims(napi_env env, napi_value v, int* threads, int64_t* rows, int64_t* c, bool* relu) {
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, v, &d, &count) || count != 4) {
    napi_throw_type_error(env, nullptr, "onednn: batch-norm dims must be an Int32Array [threads, rows, channels, relu]");
    return false;
  }
  if (d[0] < 1 || d[1] < 1 || d[2] < 1 || (d[3] != 0 && d[3] != 1)) {
    napi_throw_range_error(env, nullptr, "onednn: batch-norm threads, rows and channels must be positive, relu 0 or 1");
    return false;
  }
  *threads = d[0];
  *rows = d[1];
  *c = d[2];
  *relu = d[3] == 1;
  return true;
}

bool lengthIs(napi_env env, size_t length, int64_t want, const char* what, const char* kernel = "batch-norm") {
  if (static_cast<int64_t>(length) == want) return true;
  std::string message = std::string("onednn: ") + kernel + " " + what + " has " + std::to_string(length) +
                        " values, expected " + std::to_string(want);
  napi_throw_range_error(env, nullptr, message.c_str());
  return false;
}

// batchNorm(dims, epsilon, x, gamma, beta, y, mean, variance, rstd)
napi_value BatchNorm(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!exactArgs(env, info, argv, "onednn: batchNorm takes (dims, epsilon, x, gamma, beta, y, mean, variance, rstd)")) {
    return nullptr;
  }
  int threads;
  int64_t rows, c;
  bool relu;
  if (!readDims(env, argv[0], &threads, &rows, &c, &relu)) return nullptr;
  double epsilon = 0;
  if (napi_get_value_double(env, argv[1], &epsilon) != napi_ok || !(epsilon >= 0)) {
    napi_throw_range_error(env, nullptr, "onednn: batch-norm epsilon must be a non-negative number");
    return nullptr;
  }
  const char* names[7] = {"x", "gamma", "beta", "y", "mean", "variance", "rstd"};
  float* p[7];
  size_t n[7];
  for (int i = 0; i < 7; ++i) {
    if (!floatArg(env, argv[2 + i], &p[i], &n[i], names[i])) return nullptr;
    if (!lengthIs(env, n[i], i == 0 || i == 3 ? rows * c : c, names[i])) return nullptr;
  }
  forward(threads, Layout(rows, c), epsilon, relu, p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
  return nullptr;
}

// batchNormGrad(dims, dy, x, y, gamma, mean, rstd, dx, dgamma, dbeta); y is read with relu only
// (pass any Float32Array of rows * channels values, or of 0 values, without).
napi_value BatchNormGrad(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!exactArgs(env, info, argv,
                 "onednn: batchNormGrad takes (dims, dy, x, y, gamma, mean, rstd, dx, dgamma, dbeta)")) {
    return nullptr;
  }
  int threads;
  int64_t rows, c;
  bool relu;
  if (!readDims(env, argv[0], &threads, &rows, &c, &relu)) return nullptr;
  const char* names[9] = {"dy", "x", "y", "gamma", "mean", "rstd", "dx", "dgamma", "dbeta"};
  float* p[9];
  size_t n[9];
  for (int i = 0; i < 9; ++i) {
    if (!floatArg(env, argv[1 + i], &p[i], &n[i], names[i])) return nullptr;
    if (i == 2 && !relu) continue;
    if (!lengthIs(env, n[i], i < 3 || i == 6 ? rows * c : c, names[i])) return nullptr;
  }
  backward(threads, Layout(rows, c), p[0], p[1], relu ? p[2] : nullptr, p[3], p[4], p[5], p[6], p[7], p[8]);
  return nullptr;
}

// N Float32Arrays after a thread count: addRelu(threads, a, b, y), add(threads, a, b, y),
// addRows(threads, a, b, y), reluGrad(threads, dy, y, dx), gelu(threads, x, y, s) and
// geluGrad(threads, x, s, dy, dx); their lengths are the caller's to check.
template <int N>
bool floatArrays(napi_env env, napi_callback_info info, const char* usage, const char* const names[N], int* threads,
                 float* p[N], size_t lengths[N]) {
  size_t argc = N + 1;
  napi_value argv[N + 1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t t = 0;
  if (argc != N + 1 || napi_get_value_int32(env, argv[0], &t) != napi_ok || t < 1) {
    napi_throw_type_error(env, nullptr, usage);
    return false;
  }
  for (int i = 0; i < N; ++i) {
    if (!floatArg(env, argv[1 + i], &p[i], &lengths[i], names[i])) return false;
  }
  *threads = t;
  return true;
}

const char* const kSumNames[3] = {"a", "b", "y"};
const char* const kReluGradNames[3] = {"dy", "y", "dx"};
const char* const kGeluNames[3] = {"x", "y", "s"};
const char* const kGeluGradNames[4] = {"x", "s", "dy", "dx"};

// One elementwise kernel over N same-length arrays: `block(p, at, len)` on each block of values,
// on the blocks' threads.
template <int N, typename Block>
napi_value Elementwise(napi_env env, napi_callback_info info, const char* kernel, const char* usage,
                       const char* const names[N], Block block) {
  int threads;
  float* p[N];
  size_t lengths[N];
  if (!floatArrays<N>(env, info, usage, names, &threads, p, lengths)) return nullptr;
  for (int i = 1; i < N; ++i) {
    if (!lengthIs(env, lengths[i], static_cast<int64_t>(lengths[0]), names[i], kernel)) return nullptr;
  }
  parallelBlocks(threads, static_cast<int64_t>(lengths[0]), kBlock, kParallelValues,
                 [&](int64_t at, int64_t len) { block(p, at, len); });
  return nullptr;
}

// addRows(threads, a, b, y): y = a + b with b [n] added to each row of a [rows, n] (a bias add),
// in chunks of whole rows of about kBlock values.
napi_value AddRows(napi_env env, napi_callback_info info) {
  int threads;
  float* p[3];
  size_t lengths[3];
  if (!floatArrays<3>(env, info, "onednn: addRows takes (threads >= 1, a, b, y)", kSumNames, &threads, p, lengths)) {
    return nullptr;
  }
  const int64_t total = static_cast<int64_t>(lengths[0]), n = static_cast<int64_t>(lengths[1]);
  if (n == 0 || total % n != 0) {
    std::string message = "onednn: addRows b has " + std::to_string(n) + " values, which do not divide a's " +
                          std::to_string(total);
    napi_throw_range_error(env, nullptr, message.c_str());
    return nullptr;
  }
  if (!lengthIs(env, lengths[2], total, "y", "addRows")) return nullptr;
  const Layout l(total / n, n);
  const int use = total < kParallelValues ? 1 : static_cast<int>(std::min<int64_t>(threads, l.chunks));
  float* const* q = p;
#pragma omp parallel for num_threads(use) schedule(static)
  for (int64_t k = 0; k < l.chunks; ++k) {
    for (int64_t r = l.begin(k); r < l.end(k); ++r) addBlock(q[0] + r * n, q[1], n, q[2] + r * n);
  }
  return nullptr;
}

}  // namespace

napi_value OneDnnAddRelu(napi_env env, napi_callback_info info) {
  return Elementwise<3>(env, info, "addRelu", "onednn: addRelu takes (threads >= 1, a, b, y)", kSumNames,
                        [](float* const* p, int64_t at, int64_t len) { addReluBlock(p[0] + at, p[1] + at, len, p[2] + at); });
}
napi_value OneDnnReluGrad(napi_env env, napi_callback_info info) {
  return Elementwise<3>(env, info, "reluGrad", "onednn: reluGrad takes (threads >= 1, dy, y, dx)", kReluGradNames,
                        [](float* const* p, int64_t at, int64_t len) { reluGradBlock(p[0] + at, p[1] + at, len, p[2] + at); });
}
napi_value OneDnnAdd(napi_env env, napi_callback_info info) {
  return Elementwise<3>(env, info, "add", "onednn: add takes (threads >= 1, a, b, y)", kSumNames,
                        [](float* const* p, int64_t at, int64_t len) { addBlock(p[0] + at, p[1] + at, len, p[2] + at); });
}
napi_value OneDnnAddRows(napi_env env, napi_callback_info info) { return AddRows(env, info); }
napi_value OneDnnGelu(napi_env env, napi_callback_info info) {
  return Elementwise<3>(env, info, "gelu", "onednn: gelu takes (threads >= 1, x, y, s)", kGeluNames,
                        [](float* const* p, int64_t at, int64_t len) { geluBlock(p[0] + at, len, p[1] + at, p[2] + at); });
}
napi_value OneDnnGeluGrad(napi_env env, napi_callback_info info) {
  return Elementwise<4>(env, info, "geluGrad", "onednn: geluGrad takes (threads >= 1, x, s, dy, dx)", kGeluGradNames,
                        [](float* const* p, int64_t at, int64_t len) {
                          geluGradBlock(p[0] + at, p[1] + at, p[2] + at, len, p[3] + at);
                        });
}
napi_value OneDnnBatchNorm(napi_env env, napi_callback_info info) { return BatchNorm(env, info); }
napi_value OneDnnBatchNormGrad(napi_env env, napi_callback_info info) { return BatchNormGrad(env, info); }
