// Why: a vision transformer's self-attention ran as TF.js ops: the qkv projection's output
// [B, T, 3H, dh] reshaped, transposed to [B, 3H, T, dh] and split into q, k, v, two batched
// products around a scale and a softmax, and a transpose back to [B, T, H, dh]; the backward pass
// adds a concat, more transposes and softmax's gradient (Multiply, Sum, Sub, Multiply). In a
// 16-thread ViT-tiny step (batch 16, T 65, H 3, dh 64) those ops cost about 80 ms of ~210,
// mostly on one thread (SplitV 16.8 ms, the transposes 17.4, Concat 5.0, Softmax 6.1, the
// [48, 65, 65] elementwise gradient chain ~15). BERT-mini's attention (T 128, a padding mask and
// attention dropout) had the same shape of cost: the mask and the dropout multiplier are optional
// inputs here.
//
// Here are the forward and backward passes as one kernel each, on OpenMP threads, one (batch,
// head) pair per loop iteration (a static schedule): q, k and v are read in place from the qkv
// output (heads 0..H-1, H..2H-1 and 2H..3H-1 of axis 2), the merged output [B, T, H, dh] and the
// gradient d(qkv) [B, T, 3H, dh] are written in place, and the softmax P [B, H, T, T] is kept for
// the backward pass.
//   forward:  S = q k^T scale (+ a key bias per batch row), P = softmax(S) per row (max
//             subtracted), O = (P M) v with M a dropout multiplier (or none)
//   backward: dV = (P M)^T dO, dP = (dO v^T) M, dS = P (dP - rowsum(dP P)), dQ = scale dS k,
//             dK = scale dS^T q
// Each product is one small register-blocked loop (4 rows by 16 columns of accumulators, GCC
// vector types, so AVX-512, AVX2 or SSE registers as the CPU has; target clones pick the build):
// each output value is a plain sum in index order with no fused multiply-add (-ffp-contract=off)
// and the softmax's sums run in index order, so the results are the same bits at every thread
// count and on every CPU. The operands are first copied into per-thread padded buffers (rows to a
// multiple of 4, columns to a multiple of 16), so the inner loop has no edge cases; padding only
// ever reaches output rows and columns that are not stored. oneDNN's matmul primitive, created
// for one thread and run on strided descriptors over q, k and v in place, took the same time for
// ViT's T 65 (0.71 against 0.74 ms for 48 pairs' forward products, bench/attention-onednn-probe.cc)
// and 1.25x less at T 128; these loops stay for their CPU-independent bits and no primitive cache.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "float_arg.h"

namespace {

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

typedef float V16 __attribute__((vector_size(64)));

constexpr int64_t kRows = 4;   // rows of accumulators in the product loop
constexpr int64_t kCols = 16;  // columns of accumulators (one V16)

inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// C[i, j] = alpha (sum over k of A[i, k] B[k, j]), k ascending, for i < m, j < n: A is read as
// A[i lda + k] for roundUp(m, 4) rows (or, transposed, as A[k lda + i] with lda >= roundUp(m, 4)),
// B as B[k ldb + j] for roundUp(n, 16) columns (the caller's padding), C written at C[i ldc + j].
template <bool kTransposedA>
MRL_CLONES void product(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m, int64_t n, int64_t depth,
                        float alpha, float* c, int64_t ldc) {
  // Row r of the 4 at i0, element k: a[i0 lda + r lda + k] (rowStep lda, kStep 1) or transposed
  // a[k lda + i0 + r] (rowStep 1, kStep lda).
  const int64_t rowStep = kTransposedA ? 1 : lda, kStep = kTransposedA ? lda : 1;
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const float* a0 = a + i0 * rowStep;
    const int64_t rows = std::min(kRows, m - i0);
    for (int64_t j0 = 0; j0 < n; j0 += kCols) {
      V16 c0 = {}, c1 = {}, c2 = {}, c3 = {};
      const float* bk = b + j0;
      const float* ak = a0;
      for (int64_t k = 0; k < depth; ++k, bk += ldb, ak += kStep) {
        V16 bv;
        std::memcpy(&bv, bk, sizeof bv);
        c0 += ak[0] * bv;
        c1 += ak[rowStep] * bv;
        c2 += ak[2 * rowStep] * bv;
        c3 += ak[3 * rowStep] * bv;
      }
      const V16 acc[kRows] = {c0 * alpha, c1 * alpha, c2 * alpha, c3 * alpha};
      const int64_t cols = std::min(kCols, n - j0);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(c + (i0 + r) * ldc + j0, &acc[r], cols * sizeof(float));
    }
  }
}

// dst[r, 0..cols) = src[r srcStride + 0..cols) for r < rows (dst rows of dstStride).
void copyRows(const float* src, int64_t srcStride, int64_t rows, int64_t cols, float* dst, int64_t dstStride) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * dstStride, src + r * srcStride, cols * sizeof(float));
}

// dst[c, r] = src[r srcStride + c] for r < rows, c < cols (dst rows of dstStride).
void transposeRows(const float* src, int64_t srcStride, int64_t rows, int64_t cols, float* dst, int64_t dstStride) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * srcStride;
    for (int64_t c = 0; c < cols; ++c) dst[c * dstStride + r] = s[c];
  }
}

struct Shape {
  int64_t batch, t, heads, dh;
  int64_t tRows() const { return roundUp(t, kRows); }   // padded rows of a [T, x] operand
  int64_t tCols() const { return roundUp(t, kCols); }   // padded columns of a [x, T] operand
  int64_t dCols() const { return roundUp(dh, kCols); }  // padded columns of a [T, dh] operand
  int64_t qkvRow() const { return 3 * heads * dh; }     // floats between tokens of qkv
  int64_t outRow() const { return heads * dh; }         // floats between tokens of the output
  int64_t pairs() const { return batch * heads; }
};

// One thread's zeroed buffers (padding stays zero: only the valid parts are ever written).
struct Scratch {
  std::vector<float> rowsA, rowsB, rowsC, rowsD;  // [tRows, dCols]: q, k, v, dO (A or B operands)
  std::vector<float> transA, transB;              // [dh, tCols]: k^T or v^T (B operands)
  std::vector<float> square, squareT;             // [tRows, tCols]: S, P, dP or dS
  explicit Scratch(const Shape& s) {
    const size_t rows = static_cast<size_t>(s.tRows() * s.dCols());
    const size_t trans = static_cast<size_t>(s.dh * s.tCols());
    const size_t square = static_cast<size_t>(s.tRows() * s.tCols());
    for (auto* v : {&rowsA, &rowsB, &rowsC, &rowsD}) v->assign(rows, 0.0f);
    for (auto* v : {&transA, &transB}) v->assign(trans, 0.0f);
    for (auto* v : {&this->square, &squareT}) v->assign(square, 0.0f);
  }
};

// dst[i, j] += row[j] for i < rows, j < cols (dst rows of ld).
MRL_CLONES void addToRows(const float* row, int64_t rows, int64_t cols, float* dst, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i) {
    float* d = dst + i * ld;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) d[j] += row[j];
  }
}

// dst[i, j] *= m[i cols + j] for i < rows, j < cols (dst rows of ld).
MRL_CLONES void multiplyRows(const float* m, int64_t rows, int64_t cols, float* dst, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i) {
    float* d = dst + i * ld;
    const float* mi = m + i * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) d[j] *= mi[j];
  }
}

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// exp(x) for x <= 0 (a softmax's x - max) to about 1 ulp, vectorisable: x = n ln 2 + r with
// n = round(x log2 e), |r| <= ln 2 / 2, exp(r) by Cephes' expf polynomial, times 2^n from the
// exponent bits. Below -87.33 (where exp(x) leaves the normal floats) it is 0: against the
// row's own exp(0) = 1 in the sum, such a term is far below the float rounding of that sum.
inline float expNonPositive(float x) {
  const float lowest = -87.33654f;  // ln(2^-126)
  const float magic = 12582912.0f;  // 1.5 2^23: adding it rounds to an integer
  const float c = std::max(x, lowest);
  const float n = (c * 1.44269504f + magic) - magic;
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const float scale = bitsToFloat(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  const float y = p * scale;
  return x < lowest ? 0.0f : y;
}

// Softmax of each of the t rows of s (row stride ld), in place: exp(x - max) / sum, the sum in
// index order (the max is exact in any order).
MRL_CLONES void softmaxRows(float* s, int64_t t, int64_t ld) {
  for (int64_t i = 0; i < t; ++i) {
    float* row = s + i * ld;
    float m = row[0];
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < t; ++j) m = std::max(m, row[j]);
#pragma omp simd
    for (int64_t j = 0; j < t; ++j) row[j] = expNonPositive(row[j] - m);
    float sum = 0.0f;
    for (int64_t j = 0; j < t; ++j) sum += row[j];
#pragma omp simd
    for (int64_t j = 0; j < t; ++j) row[j] /= sum;
  }
}

int threadsFor(int threads, const Shape& s) { return static_cast<int>(std::min<int64_t>(threads, s.pairs())); }

// keyBias [batch, tokens] (added to each row of a pair's scores) and mult [batch, heads, tokens,
// tokens] (multiplies P before the product with v: dropout) are optional (nullptr).
void forward(int threads, const Shape& s, float scale, const float* qkv, const float* keyBias, const float* mult,
             float* out, float* p) {
  const int64_t t = s.t, dh = s.dh, tc = s.tCols(), dc = s.dCols(), rs = s.qkvRow();
  const int use = threadsFor(threads, s);
  std::vector<Scratch> scratch(use, Scratch(s));  // allocated here: a failure throws before the threads start
#pragma omp parallel num_threads(use)
  {
    Scratch& w = scratch[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < s.pairs(); ++pair) {
      const int64_t b = pair / s.heads, h = pair % s.heads;
      const float* q = qkv + b * t * rs + h * dh;
      const float* k = q + s.heads * dh;
      const float* v = k + s.heads * dh;
      copyRows(q, rs, t, dh, w.rowsA.data(), dc);
      transposeRows(k, rs, t, dh, w.transA.data(), tc);
      copyRows(v, rs, t, dh, w.rowsC.data(), dc);
      float* sq = w.square.data();
      product<false>(w.rowsA.data(), dc, w.transA.data(), tc, t, t, dh, scale, sq, tc);  // S
      if (keyBias != nullptr) addToRows(keyBias + b * t, t, t, sq, tc);
      softmaxRows(sq, t, tc);
      copyRows(sq, tc, t, t, p + pair * t * t, t);
      if (mult != nullptr) multiplyRows(mult + pair * t * t, t, t, sq, tc);  // dropout
      product<false>(w.square.data(), tc, w.rowsC.data(), dc, t, dh, t, 1.0f, out + b * t * s.outRow() + h * dh,
              s.outRow());  // O = P v
    }
  }
}

void backward(int threads, const Shape& s, float scale, const float* dy, const float* p, const float* qkv,
              const float* mult, float* dqkv) {
  const int64_t t = s.t, dh = s.dh, tc = s.tCols(), dc = s.dCols(), rs = s.qkvRow(), os = s.outRow();
  const int use = threadsFor(threads, s);
  std::vector<Scratch> scratch(use, Scratch(s));
#pragma omp parallel num_threads(use)
  {
    Scratch& w = scratch[omp_get_thread_num()];
    float* sq = w.square.data();
    float* pc = w.squareT.data();
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < s.pairs(); ++pair) {
      const int64_t b = pair / s.heads, h = pair % s.heads;
      const float* q = qkv + b * t * rs + h * dh;
      const float* k = q + s.heads * dh;
      const float* v = k + s.heads * dh;
      float* dq = dqkv + b * t * rs + h * dh;
      float* dk = dq + s.heads * dh;
      float* dv = dk + s.heads * dh;
      const float* pp = p + pair * t * t;
      copyRows(dy + b * t * os + h * dh, os, t, dh, w.rowsD.data(), dc);  // dO
      copyRows(pp, t, t, t, pc, tc);  // P, rows padded
      const float* pm = mult == nullptr ? nullptr : mult + pair * t * t;
      if (pm != nullptr) {  // dV = (P M)^T dO
        copyRows(pp, t, t, t, sq, tc);
        multiplyRows(pm, t, t, sq, tc);
        product<true>(sq, tc, w.rowsD.data(), dc, t, dh, t, 1.0f, dv, rs);
      } else {
        product<true>(pc, tc, w.rowsD.data(), dc, t, dh, t, 1.0f, dv, rs);  // dV = P^T dO
      }
      transposeRows(v, rs, t, dh, w.transB.data(), tc);                                 // v^T
      product<false>(w.rowsD.data(), dc, w.transB.data(), tc, t, t, dh, 1.0f, sq, tc);  // dP = dO v^T
      if (pm != nullptr) multiplyRows(pm, t, t, sq, tc);                               // (times M)
      for (int64_t i = 0; i < t; ++i) {  // dS = P (dP - rowsum(dP P))
        float* d = sq + i * tc;
        const float* pr = pc + i * tc;
        float dot = 0.0f;
        for (int64_t j = 0; j < t; ++j) dot += d[j] * pr[j];
#pragma omp simd
        for (int64_t j = 0; j < t; ++j) d[j] = pr[j] * (d[j] - dot);
      }
      copyRows(k, rs, t, dh, w.rowsB.data(), dc);
      product<false>(sq, tc, w.rowsB.data(), dc, t, dh, t, scale, dq, rs);  // dQ = scale dS k
      copyRows(q, rs, t, dh, w.rowsA.data(), dc);
      product<true>(sq, tc, w.rowsA.data(), dc, t, dh, t, scale, dk, rs);  // dK = scale dS^T q
    }
  }
}

// --- Node-API glue ---------------------------------------------------------------------------

// dims: Int32Array [threads, batch, tokens, heads, headWidth].
bool readDims(napi_env env, napi_value v, int* threads, Shape* s) {
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, v, &d, &count) || count != 5) {
    napi_throw_type_error(env, nullptr,
                          "onednn: attention dims must be an Int32Array [threads, batch, tokens, heads, headWidth]");
    return false;
  }
  for (int i = 0; i < 5; ++i) {
    if (d[i] < 1) {
      napi_throw_range_error(env, nullptr,
                             "onednn: attention threads, batch, tokens, heads and headWidth must be positive");
      return false;
    }
  }
  *threads = d[0];
  *s = Shape{d[1], d[2], d[3], d[4]};
  return true;
}

bool readScale(napi_env env, napi_value v, float* scale) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || !std::isfinite(d)) {
    napi_throw_range_error(env, nullptr, "onednn: attention scale must be a finite number");
    return false;
  }
  *scale = static_cast<float>(d);
  return true;
}

// attention(dims, scale, qkv, keyBias, mult, out, p); keyBias and mult may have 0 values (none).
napi_value Attention(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!exactArgs(env, info, argv, "onednn: attention takes (dims, scale, qkv, keyBias, mult, out, p)")) return nullptr;
  int threads;
  Shape s{};
  float scale;
  if (!readDims(env, argv[0], &threads, &s) || !readScale(env, argv[1], &scale)) return nullptr;
  const char* names[5] = {"qkv", "keyBias", "mult", "out", "p"};
  const int64_t bt = s.batch * s.t, square = s.pairs() * s.t * s.t;
  const int64_t want[5] = {bt * s.qkvRow(), bt, square, bt * s.outRow(), square};
  const bool optional[5] = {false, true, true, false, false};
  float* p[5];
  if (!floatArgsOfLengths(env, argv + 2, 5, names, want, "attention", p, optional)) return nullptr;
  try {
    forward(threads, s, scale, p[0], p[1], p[2], p[3], p[4]);
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: attention could not allocate its per-thread buffers");
  }
  return nullptr;
}

// attentionGrad(dims, scale, dy, p, qkv, mult, dqkv); mult may have 0 values (none).
napi_value AttentionGrad(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!exactArgs(env, info, argv, "onednn: attentionGrad takes (dims, scale, dy, p, qkv, mult, dqkv)")) return nullptr;
  int threads;
  Shape s{};
  float scale;
  if (!readDims(env, argv[0], &threads, &s) || !readScale(env, argv[1], &scale)) return nullptr;
  const char* names[5] = {"dy", "p", "qkv", "mult", "dqkv"};
  const int64_t bt = s.batch * s.t, square = s.pairs() * s.t * s.t;
  const int64_t want[5] = {bt * s.outRow(), square, bt * s.qkvRow(), square, bt * s.qkvRow()};
  const bool optional[5] = {false, false, false, true, false};
  float* p[5];
  if (!floatArgsOfLengths(env, argv + 2, 5, names, want, "attentionGrad", p, optional)) return nullptr;
  try {
    backward(threads, s, scale, p[0], p[1], p[2], p[3], p[4]);
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: attentionGrad could not allocate its per-thread buffers");
  }
  return nullptr;
}

}  // namespace

napi_value OneDnnAttention(napi_env env, napi_callback_info info) { return Attention(env, info); }
napi_value OneDnnAttentionGrad(napi_env env, napi_callback_info info) { return AttentionGrad(env, info); }
