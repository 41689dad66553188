// Why: a transformer's layer norms (the wasm SIMD kernels MrlLayerNorm and MrlLayerNormGrad of
// src/wasm/transformer_ops.ts, simd/transformer-ops.wat) run on one thread: 15.5 ms of ViT-tiny's
// 16-thread training step (25 calls each way on [16, 65, 192]) and 7.7 ms of BERT-mini's (9 each
// way on [1024, 256]) while the products around them use every core. Here are the same two
// kernels on the addon's OpenMP threads, the same bits as the wasm kernels at every thread count.
//
// Design: every value is computed by the wasm kernel's operations in its order, whichever thread
// computes it. A row's sums are four lanes (lane k adds the row's values k, k + 4, k + 8, ... in
// order, as one f32x4 accumulator does; GCC's 4-float vector type here), added as (l0 + l1) +
// (l2 + l3); mean = sum / cols, rstd = 1 / sqrt(sum((x - mean)^2) / cols + eps), y = ((x - mean)
// rstd) gamma + beta; the gradient's dx = ((g - mean(g)) - xhat mean(g xhat)) rstd with g = dy
// gamma and the means as sum * (1 / cols). So the rows are split between threads freely (groups of
// eight rows interleaved on one thread, for the adder's latency). The gamma and beta gradients are
// sums over all rows that the wasm kernel adds row by row, from row 0, per column: here each
// column is summed the same way, row by row, and the threads split the columns instead of the
// rows (a block of columns each), in the same parallel region as dx (no barrier between the two).
// No partial sums are combined anywhere, so the results do not depend on the thread count.
//
// Also the softmax over the last axis (the wasm backend's Softmax, XNNPACK's f32 softmax: 6.1 ms
// of ViT-tiny's 16-thread step on [48, 65, 65], one thread), rows split between threads, the same
// bits as the wasm kernel: each row's max; e = exp(x - max) by XNNPACK's wasmsimd rr2_p5
// polynomial (a two-constant ln 2 reduction, degree 5, 0 below the cutoff); their sum in one
// four-lane accumulator over the row's groups of four, its lanes added as (l0 + l2) + (l1 + l3),
// then the last cols mod 4 values one by one; y = e (1 / sum). (That order of sums is the one that
// gives the shipped kernel's outputs bit for bit at every width tried, 1 to 70,001:
// test/native_softmax.test.ts.)
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "float_arg.h"
#include "float_bits.h"

namespace {

// Below this many values a call runs on the calling thread alone (waking a thread costs more).
constexpr int64_t kParallelValues = 65536;
// The most columns per block of the gamma/beta gradient sums (results do not depend on the blocks:
// each column is summed row by row whichever block it is in).
constexpr int64_t kMaxColumnBlock = 256;

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define MRL_INLINE inline __attribute__((always_inline))

// One wasm f32x4: four lanes, each operation lane by lane (no reassociation).
typedef float v4 __attribute__((vector_size(16)));

MRL_INLINE v4 load4(const float* p) {
  v4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
MRL_INLINE v4 splat(float f) { return v4{f, f, f, f}; }
// The wasm kernel's $hsum.
MRL_INLINE float hsum(v4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// Layer norm of R consecutive rows of `cols` values (a multiple of 4) at x, as the wasm kernel's
// layer_norm: the R rows' sums run interleaved, each in its own lanes.
template <int R>
MRL_INLINE void normRows(const float* x, const float* gamma, const float* beta, int64_t cols, float eps, float* y,
                         float* mean, float* rstd) {
  const float n = static_cast<float>(cols);
  v4 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = splat(0.0f);
  for (int64_t j = 0; j < cols; j += 4) {
    for (int r = 0; r < R; ++r) acc[r] += load4(x + r * cols + j);
  }
  v4 mv[R];
  float m[R];
  for (int r = 0; r < R; ++r) {
    m[r] = hsum(acc[r]) / n;
    mv[r] = splat(m[r]);
    acc[r] = splat(0.0f);
  }
  for (int64_t j = 0; j < cols; j += 4) {
    for (int r = 0; r < R; ++r) {
      const v4 d = load4(x + r * cols + j) - mv[r];
      acc[r] += d * d;
    }
  }
  for (int r = 0; r < R; ++r) {
    const float s = 1.0f / std::sqrt(hsum(acc[r]) / n + eps);
    mean[r] = m[r];
    rstd[r] = s;
    const float* in = x + r * cols;
    float* out = y + r * cols;
    const float mr = m[r];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = ((in[j] - mr) * s) * gamma[j] + beta[j];
  }
}

// Rows [r0, r1).
MRL_CLONES void normChunk(const float* x, const float* gamma, const float* beta, int64_t r0, int64_t r1, int64_t cols,
                          float eps, float* y, float* mean, float* rstd) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) normRows<8>(x + r * cols, gamma, beta, cols, eps, y + r * cols, mean + r, rstd + r);
  for (; r + 4 <= r1; r += 4) normRows<4>(x + r * cols, gamma, beta, cols, eps, y + r * cols, mean + r, rstd + r);
  for (; r < r1; ++r) normRows<1>(x + r * cols, gamma, beta, cols, eps, y + r * cols, mean + r, rstd + r);
}

// dx of R consecutive rows, as the wasm kernel's layer_norm_grad: xhat = (x - mean) rstd and
// g = dy gamma, their row sums in lanes, then dx = ((g - mean(g)) - xhat mean(g xhat)) rstd.
template <int R>
MRL_INLINE void gradRows(const float* x, const float* mean, const float* rstd, const float* gamma, const float* dy,
                         int64_t cols, float inv, float* dx) {
  v4 mv[R], sv[R], accG[R], accGx[R];
  for (int r = 0; r < R; ++r) {
    mv[r] = splat(mean[r]);
    sv[r] = splat(rstd[r]);
    accG[r] = splat(0.0f);
    accGx[r] = splat(0.0f);
  }
  for (int64_t j = 0; j < cols; j += 4) {
    const v4 gm = load4(gamma + j);
    for (int r = 0; r < R; ++r) {
      const v4 xh = (load4(x + r * cols + j) - mv[r]) * sv[r];
      const v4 g = load4(dy + r * cols + j) * gm;
      accG[r] += g;
      accGx[r] += g * xh;
    }
  }
  for (int r = 0; r < R; ++r) {
    const float mg = hsum(accG[r]) * inv, mgx = hsum(accGx[r]) * inv;
    const float m = mean[r], s = rstd[r];
    const float* in = x + r * cols;
    const float* d = dy + r * cols;
    float* out = dx + r * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      const float xh = (in[j] - m) * s;
      const float g = d[j] * gamma[j];
      out[j] = ((g - mg) - xh * mgx) * s;
    }
  }
}

MRL_CLONES void gradChunk(const float* x, const float* mean, const float* rstd, const float* gamma, const float* dy,
                          int64_t r0, int64_t r1, int64_t cols, float inv, float* dx) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    gradRows<8>(x + r * cols, mean + r, rstd + r, gamma, dy + r * cols, cols, inv, dx + r * cols);
  }
  for (; r + 4 <= r1; r += 4) {
    gradRows<4>(x + r * cols, mean + r, rstd + r, gamma, dy + r * cols, cols, inv, dx + r * cols);
  }
  for (; r < r1; ++r) gradRows<1>(x + r * cols, mean + r, rstd + r, gamma, dy + r * cols, cols, inv, dx + r * cols);
}

// dgamma and dbeta of columns [c0, c0 + width), width <= kMaxColumnBlock: from 0, row by row,
// dgamma += dy xhat and dbeta += dy, as the wasm kernel's accumulators in memory.
MRL_CLONES void paramGradBlock(const float* x, const float* mean, const float* rstd, const float* dy, int64_t rows,
                               int64_t cols, int64_t c0, int64_t width, float* dgamma, float* dbeta) {
  float dg[kMaxColumnBlock] = {}, db[kMaxColumnBlock] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const float m = mean[r], s = rstd[r];
    const float* in = x + r * cols + c0;
    const float* d = dy + r * cols + c0;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      dg[j] += d[j] * ((in[j] - m) * s);
      db[j] += d[j];
    }
  }
  std::copy(dg, dg + width, dgamma + c0);
  std::copy(db, db + width, dbeta + c0);
}

int threadsFor(int threads, int64_t rows, int64_t cols) {
  return rows * cols < kParallelValues ? 1 : std::max(1, threads);
}

// Rows per unit of the row loops' static schedule: groups of 8 (the interleaved rows).
constexpr int64_t kRowGroup = 8;

void forward(int threads, int64_t rows, int64_t cols, float eps, const float* x, const float* gamma, const float* beta,
             float* y, float* mean, float* rstd) {
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;
#pragma omp parallel for num_threads(threadsFor(threads, rows, cols)) schedule(static)
  for (int64_t k = 0; k < groups; ++k) {
    normChunk(x, gamma, beta, k * kRowGroup, std::min(rows, (k + 1) * kRowGroup), cols, eps, y, mean, rstd);
  }
}

void backward(int threads, int64_t rows, int64_t cols, const float* x, const float* mean, const float* rstd,
              const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;
  const int use = threadsFor(threads, rows, cols);
  // One block of columns per thread, a multiple of 16 wide (wider blocks read longer runs of each
  // row: 0.028 ms for 1040x192 in one block against 0.06 in blocks of 16, on one thread).
  const int64_t width = std::min(kMaxColumnBlock, std::max<int64_t>(16, (cols + use * 16 - 1) / (use * 16) * 16));
  const int64_t blocks = (cols + width - 1) / width;
  // As the wasm kernel: 1 / cols once, the row means as products with it.
  const float inv = 1.0f / static_cast<float>(cols);
#pragma omp parallel num_threads(use)
  {
#pragma omp for schedule(static) nowait
    for (int64_t k = 0; k < groups; ++k) {
      gradChunk(x, mean, rstd, gamma, dy, k * kRowGroup, std::min(rows, (k + 1) * kRowGroup), cols, inv, dx);
    }
#pragma omp for schedule(static) nowait  // the region's end is the one barrier
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * width;
      paramGradBlock(x, mean, rstd, dy, rows, cols, c0, std::min(width, cols - c0), dgamma, dbeta);
    }
  }
}


// exp(x) for x <= 0 as XNNPACK's f32 raddstoreexpminusmax (wasmsimd_rr2_p5) computes it: x =
// n ln 2 + t with n rounded by the magic bias and ln 2 in two parts, 2^n from n's bits, exp(t) by
// a degree-5 polynomial; 0 below the cutoff (where 2^n would be subnormal).
MRL_INLINE float xnnExpMinus(float x) {
  const float log2e = 0x1.715476p+0f, magicBias = 0x1.8000FEp23f;
  const float minusLn2Hi = -0x1.62E400p-1f, minusLn2Lo = -0x1.7F7D1Cp-20f;
  const float c5 = 0x1.0F9F9Cp-7f, c4 = 0x1.573A1Ap-5f, c3 = 0x1.555A80p-3f, c2 = 0x1.FFFDC6p-2f, c1 = 0x1.FFFFF6p-1f;
  const float denormCutoff = -0x1.5D589Ep6f;
  float n = x * log2e + magicBias;
  const float s = bitsToFloat(floatToBits(n) << 23);
  n = n - magicBias;
  float t = n * minusLn2Hi + x;
  t = n * minusLn2Lo + t;
  float p = c5 * t + c4;
  p = p * t + c3;
  p = p * t + c2;
  p = p * t + c1;
  t = t * s;
  const float f = t * p + s;
  // A bit mask, as the SIMD kernel's andnot (and so that GCC vectorises it).
  const uint32_t below = 0u - static_cast<uint32_t>(x < denormCutoff);
  return bitsToFloat(floatToBits(f) & ~below);
}

// The max of n values, in 16 lanes. The max is exact in any order (a NaN, which the selects here
// skip, makes its whole softmax row NaN either way, through the sum).
MRL_INLINE float rowMax(const float* x, int64_t n) {
  float m = x[0];
  int64_t j = 0;
  if (n >= 16) {
    v4 a = load4(x), b = load4(x + 4), c = load4(x + 8), d = load4(x + 12);
    for (j = 16; j + 16 <= n; j += 16) {
      const v4 p = load4(x + j), q = load4(x + j + 4), r = load4(x + j + 8), s = load4(x + j + 12);
      a = p > a ? p : a;
      b = q > b ? q : b;
      c = r > c ? r : c;
      d = s > d ? s : d;
    }
    a = b > a ? b : a;
    c = d > c ? d : c;
    a = c > a ? c : a;
    m = std::max(std::max(a[0], a[1]), std::max(a[2], a[3]));
  }
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// Softmax of R consecutive rows of `cols` values: the exponentials row by row, then the R rows'
// sums interleaved (each its own four lanes, for the adder's latency), then the scaling.
template <int R>
MRL_INLINE void softmaxRows(const float* x, int64_t cols, float* y) {
  for (int r = 0; r < R; ++r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    const float m = rowMax(in, cols);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] = xnnExpMinus(in[j] - m);
  }
  const int64_t whole = cols & ~int64_t{3};
  v4 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = splat(0.0f);
  for (int64_t j = 0; j < whole; j += 4) {
    for (int r = 0; r < R; ++r) acc[r] += load4(y + r * cols + j);
  }
  for (int r = 0; r < R; ++r) {
    float* out = y + r * cols;
    float sum = (acc[r][0] + acc[r][2]) + (acc[r][1] + acc[r][3]);
    for (int64_t j = whole; j < cols; ++j) sum += out[j];
    const float scale = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) out[j] *= scale;
  }
}

// Rows [r0, r1).
MRL_CLONES void softmaxChunk(const float* x, int64_t r0, int64_t r1, int64_t cols, float* y) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) softmaxRows<8>(x + r * cols, cols, y + r * cols);
  for (; r < r1; ++r) softmaxRows<1>(x + r * cols, cols, y + r * cols);
}

void softmax(int threads, int64_t rows, int64_t cols, const float* x, float* y) {
  // Chunks of about 2K values, whole groups of 8 rows (enough chunks to share among 16 threads at
  // ViT-tiny's [48, 65, 65]); which thread runs a row changes nothing in it.
  const int64_t perChunk = std::max<int64_t>(8, 2048 / cols / 8 * 8);
  const int64_t chunks = (rows + perChunk - 1) / perChunk;
#pragma omp parallel for num_threads(threadsFor(threads, rows, cols)) schedule(static)
  for (int64_t k = 0; k < chunks; ++k) softmaxChunk(x, k * perChunk, std::min(rows, (k + 1) * perChunk), cols, y);
}

// --- Node-API glue ---------------------------------------------------------------------------

// dims: Int32Array [threads, rows, cols], all positive, cols a multiple of 4 unless `anyCols`.
bool readDims(napi_env env, napi_value v, const char* kernel, int* threads, int64_t* rows, int64_t* cols,
              bool anyCols = false) {
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, v, &d, &count) || count != 3) {
    std::string message = std::string("onednn: ") + kernel + " dims must be an Int32Array [threads, rows, cols]";
    napi_throw_type_error(env, nullptr, message.c_str());
    return false;
  }
  if (d[0] < 1 || d[1] < 1 || d[2] < 1 || (!anyCols && d[2] % 4 != 0)) {
    std::string message = std::string("onednn: ") + kernel + " threads, rows and cols must be positive" +
                          (anyCols ? "" : ", cols a multiple of 4");
    napi_throw_range_error(env, nullptr, message.c_str());
    return false;
  }
  *threads = d[0];
  *rows = d[1];
  *cols = d[2];
  return true;
}

// layerNorm(dims, epsilon, x, gamma, beta, y, mean, rstd)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!exactArgs(env, info, argv, "onednn: layerNorm takes (dims, epsilon, x, gamma, beta, y, mean, rstd)")) {
    return nullptr;
  }
  int threads;
  int64_t rows, cols;
  if (!readDims(env, argv[0], "layerNorm", &threads, &rows, &cols)) return nullptr;
  double epsilon = 0;
  if (napi_get_value_double(env, argv[1], &epsilon) != napi_ok || !(epsilon >= 0)) {
    napi_throw_range_error(env, nullptr, "onednn: layerNorm epsilon must be a non-negative number");
    return nullptr;
  }
  const char* const names[6] = {"x", "gamma", "beta", "y", "mean", "rstd"};
  const int64_t want[6] = {rows * cols, cols, cols, rows * cols, rows, rows};
  float* p[6];
  if (!floatArgsOfLengths(env, argv + 2, 6, names, want, "layerNorm", p)) return nullptr;
  // The wasm kernel takes epsilon as an f32 parameter: the same rounding of the JavaScript number.
  forward(threads, rows, cols, static_cast<float>(epsilon), p[0], p[1], p[2], p[3], p[4], p[5]);
  return nullptr;
}

// layerNormGrad(dims, x, mean, rstd, gamma, dy, dx, dgamma, dbeta)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!exactArgs(env, info, argv, "onednn: layerNormGrad takes (dims, x, mean, rstd, gamma, dy, dx, dgamma, dbeta)")) {
    return nullptr;
  }
  int threads;
  int64_t rows, cols;
  if (!readDims(env, argv[0], "layerNormGrad", &threads, &rows, &cols)) return nullptr;
  const char* const names[8] = {"x", "mean", "rstd", "gamma", "dy", "dx", "dgamma", "dbeta"};
  const int64_t want[8] = {rows * cols, rows, rows, cols, rows * cols, rows * cols, cols, cols};
  float* p[8];
  if (!floatArgsOfLengths(env, argv + 1, 8, names, want, "layerNormGrad", p)) return nullptr;
  backward(threads, rows, cols, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
  return nullptr;
}

// softmax(dims, x, y): over the last axis, rows of cols values.
napi_value Softmax(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!exactArgs(env, info, argv, "onednn: softmax takes (dims, x, y)")) return nullptr;
  int threads;
  int64_t rows, cols;
  if (!readDims(env, argv[0], "softmax", &threads, &rows, &cols, true)) return nullptr;
  const char* const names[2] = {"x", "y"};
  const int64_t want[2] = {rows * cols, rows * cols};
  float* p[2];
  if (!floatArgsOfLengths(env, argv + 1, 2, names, want, "softmax", p)) return nullptr;
  softmax(threads, rows, cols, p[0], p[1]);
  return nullptr;
}

}  // namespace

napi_value OneDnnSoftmax(napi_env env, napi_callback_info info) { return Softmax(env, info); }
napi_value OneDnnLayerNorm(napi_env env, napi_callback_info info) { return LayerNorm(env, info); }
napi_value OneDnnLayerNormGrad(napi_env env, napi_callback_info info) { return LayerNormGrad(env, info); }
