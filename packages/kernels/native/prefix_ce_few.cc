// Why: the Matryoshka softmax cross-entropy of a head with few classes (the vision and MLP heads:
// 10 classes) ran as an ONNX Runtime product and softmax per nesting dim forward and a scale and
// two products per dim backward (src/wasm/native_prefix_softmax.ts): 14 and 22 runtime calls for
// seven dims, 3.3 ms of a 16 ms MLP step at one thread against a plain head's 1 ms, for 4M
// multiply-adds. With so few classes a row's logits fit in registers, so this file does the whole
// loss in one call and its whole gradient in another:
//   forward, per row: L_j = L_{j-1} + z[block j] W[block j], P_j = softmax(L_j),
//     loss_j = log-sum-exp(L_j) - L_j[label]: the running sums of a tile of rows in registers
//     (16 classes a vector), each prefix's softmax with exp_approx.h's exp on the same vectors;
//   backward: S_j = S_{j+1} + dy_j / N (P_j - onehot(label)), dz[block j] = S_j W[block j]^T (16
//     embedding columns a vector, classes in order), dW[block j] = the sum over rows, in order, of
//     S_j^T z[block j] (tiles of up to 8 classes x 16 columns), db = the sum over rows of S_1.
// Every output is summed one term at a time in that fixed order, each lane as a scalar loop would
// (built with -ffp-contract=off), and the exp's fused multiply-adds round alike in every clone:
// the same bits on every x86-64 CPU and at every thread count. Threads split the rows (forward,
// dz) and the embedding columns (dW). Up to 128 classes (bench/few-class-head-probe.mjs: 0.23-0.28x
// the runtime path's CPU time at 10 classes, 0.58-0.65x at 64, 0.93-0.98x at 128); past that, a
// product per prefix pays for its call and the runtime path stays.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "blocks.h"
#include "exp_approx.h"
#include "float_arg.h"

namespace {

// dims: [threads, rows N, width D, classes C, classesFirst (0 or 1), k, m_1 .. m_k].
constexpr int kHeader = 6;
// Past this many classes a product per prefix (the runtime's GEMM) pays for its call.
constexpr int kMaxClasses = 128;
// Below this many multiply-adds a call runs on the calling thread alone.
constexpr int64_t kParallelWork = int64_t{1} << 21;
// Rows per block handed to a thread (forward, dz) and columns (dW).
constexpr int64_t kRowBlock = 16;
constexpr int64_t kColumnBlock = 64;

// Compiled for AVX-512, for AVX2 with FMA (x86-64-v3, for exp_approx.h's fused multiply-adds) and
// for plain x86-64, picked at load time; without trapping math the exp's clamps are selects.
#define MRL_CLONES \
  __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"), optimize("no-trapping-math")))

struct Problem {
  int threads = 1, rows = 0, width = 0, classes = 0, k = 0;
  bool classesFirst = false;
  std::vector<int> ends;  // m_1 .. m_k
};

// Parses and checks `dims`; false with a pending RangeError naming `op` otherwise.
bool readProblem(napi_env env, napi_value v, const char* op, Problem* p) {
  const int32_t* d = nullptr;
  size_t n = 0;
  const std::string name = std::string("onednn: ") + op;
  if (!int32Array(env, v, &d, &n) || n < kHeader + 1 || d[5] < 1 || n != static_cast<size_t>(kHeader + d[5])) {
    const std::string message =
        name + " dims must be an Int32Array [threads, rows, width, classes, classesFirst, k, m_1..m_k]";
    napi_throw_range_error(env, nullptr, message.c_str());
    return false;
  }
  p->threads = d[0];
  p->rows = d[1];
  p->width = d[2];
  p->classes = d[3];
  p->classesFirst = d[4] != 0;
  p->k = d[5];
  if (p->threads < 1 || p->rows < 0 || p->width < 1 || p->classes < 1 || p->classes > kMaxClasses ||
      (d[4] != 0 && d[4] != 1)) {
    napi_throw_range_error(env, nullptr,
                           (name + ": threads >= 1, rows >= 0, width >= 1, 1 <= classes <= " +
                            std::to_string(kMaxClasses) + " and classesFirst 0 or 1, got " + std::to_string(d[0]) +
                            ", " + std::to_string(d[1]) + ", " + std::to_string(d[2]) + ", " + std::to_string(d[3]) +
                            ", " + std::to_string(d[4]))
                               .c_str());
    return false;
  }
  p->ends.assign(d + kHeader, d + n);
  for (int j = 0; j < p->k; ++j) {
    const int lo = j == 0 ? 0 : p->ends[j - 1];
    if (p->ends[j] <= lo || p->ends[j] > p->width) {
      napi_throw_range_error(env, nullptr, (name + ": nesting dims must ascend within 1..width").c_str());
      return false;
    }
  }
  return true;
}

// Labels: an Int32Array of `rows` values within [0, classes); false with a pending error otherwise.
bool readLabels(napi_env env, napi_value v, const Problem& p, const char* op, const int32_t** labels) {
  size_t n = 0;
  const std::string name = std::string("onednn: ") + op;
  if (!int32Array(env, v, labels, &n) || n != static_cast<size_t>(p.rows)) {
    napi_throw_range_error(env, nullptr, (name + " labels must be an Int32Array of rows values").c_str());
    return false;
  }
  for (int i = 0; i < p.rows; ++i) {
    if ((*labels)[i] < 0 || (*labels)[i] >= p.classes) {
      napi_throw_range_error(env, nullptr,
                             (name + ": label " + std::to_string((*labels)[i]) + " of row " + std::to_string(i) +
                              " is outside [0, " + std::to_string(p.classes) + ")")
                                 .c_str());
      return false;
    }
  }
  return true;
}

typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
constexpr int kLanes = 16;
#define MRL_INLINE inline __attribute__((always_inline))
// load returns a vector by value, but is always inlined into its clone: no call crosses
// the vector ABI that GCC warns about.
#pragma GCC diagnostic ignored "-Wpsabi"
// The loops over the rows, class blocks and classes of a tile are unrolled (`#pragma GCC unroll`)
// so that their accumulators stay in registers: left as loops, GCC keeps them on the stack.

template <typename V = V16>
MRL_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
MRL_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// Blocks of 16 classes a row's logits take.
int classBlocks(const Problem& p) { return (p.classes + kLanes - 1) / kLanes; }

// The table as [D, blocks * 16], classes padded with zeros (row a: W[a, :]), and the bias (zeros
// when there is none) padded alike.
void padTable(const Problem& p, const float* w, const float* bias, std::vector<float>& table,
              std::vector<float>& biasPad) {
  const int64_t D = p.width, C = p.classes, stride = classBlocks(p) * kLanes;
  table.assign(static_cast<size_t>(D * stride), 0.0f);
  biasPad.assign(static_cast<size_t>(stride), 0.0f);
  for (int64_t a = 0; a < D; ++a)
    for (int64_t c = 0; c < C; ++c) table[a * stride + c] = p.classesFirst ? w[c * D + a] : w[a * C + c];
  if (bias != nullptr) std::copy(bias, bias + C, biasPad.begin());
}

// The table as [C, D] (classes first): w itself when it is so laid out, else its transpose.
const float* classesFirstTable(const Problem& p, const float* w, std::vector<float>& scratch) {
  if (p.classesFirst) return w;
  const int64_t D = p.width, C = p.classes;
  scratch.resize(static_cast<size_t>(D * C));
  for (int64_t a = 0; a < D; ++a)
    for (int64_t c = 0; c < C; ++c) scratch[c * D + a] = w[a * C + c];
  return scratch.data();
}

// Softmax of one row's logits (`lanes` of them, the first C real) into out, and its
// cross-entropy at `label`: exps on every lane, sums in double over the real ones, in order.
MRL_INLINE double softmaxRow(const float* logits, int lanes, int C, int32_t label, float* out) {
  float top = logits[0];
  for (int c = 1; c < C; ++c) top = std::max(top, logits[c]);
  float e[kMaxClasses];
#pragma omp simd
  for (int t = 0; t < lanes; ++t) e[t] = expApprox(logits[t] - top);
  double sum = 0;
  for (int c = 0; c < C; ++c) sum += e[c];
  const float inv = static_cast<float>(1.0 / sum);
  for (int c = 0; c < C; ++c) out[c] = e[c] * inv;
  return std::log(sum) + static_cast<double>(top) - static_cast<double>(logits[label]);
}

// Rows [i, i + R) with NB blocks of 16 classes: running-sum logits in registers, each weight
// multiplied and added in embedding order, and each prefix's softmax at the end of its block.
template <int NB, int R>
MRL_INLINE void forwardBlock(const Problem& p, const float* z, const float* table, const float* biasPad,
                             const int32_t* labels, float* probs, double* rowLoss, int64_t i) {
  const int64_t D = p.width, N = p.rows;
  V16 acc[R][NB];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) acc[r][b] = load(biasPad + b * kLanes);
  int64_t a = 0;
  for (int j = 0; j < p.k; ++j) {
    for (; a < p.ends[j]; ++a) {
      V16 wa[NB];
      #pragma GCC unroll 16
      for (int b = 0; b < NB; ++b) wa[b] = load(table + (a * NB + b) * kLanes);
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float x = z[(i + r) * D + a];
        #pragma GCC unroll 16
        for (int b = 0; b < NB; ++b) acc[r][b] += wa[b] * x;
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float logits[NB * kLanes];
      #pragma GCC unroll 16
      for (int b = 0; b < NB; ++b) store(logits + b * kLanes, acc[r][b]);
      const int64_t at = j * N + i + r;
      rowLoss[at] = softmaxRow(logits, NB * kLanes, p.classes, labels[i + r], probs + at * p.classes);
    }
  }
}

template <int NB>
MRL_INLINE void forwardRowsOf(const Problem& p, const float* z, const float* table, const float* biasPad,
                              const int32_t* labels, float* probs, double* rowLoss, int64_t at, int64_t len) {
  constexpr int R = NB == 1 ? 8 : NB == 2 ? 4 : NB <= 4 ? 2 : 1;
  int64_t i = at;
  for (; i + R <= at + len; i += R) forwardBlock<NB, R>(p, z, table, biasPad, labels, probs, rowLoss, i);
  for (; i < at + len; ++i) forwardBlock<NB, 1>(p, z, table, biasPad, labels, probs, rowLoss, i);
}

// Rows [at, at + len): every prefix's probabilities (probs [k, N, C]) and row losses ([k, N]).
MRL_CLONES void forwardRows(const Problem& p, const float* z, const float* table, const float* biasPad,
                            const int32_t* labels, float* probs, double* rowLoss, int64_t at, int64_t len) {
  switch (classBlocks(p)) {
    case 1:
      return forwardRowsOf<1>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 2:
      return forwardRowsOf<2>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 3:
      return forwardRowsOf<3>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 4:
      return forwardRowsOf<4>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 5:
      return forwardRowsOf<5>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 6:
      return forwardRowsOf<6>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    case 7:
      return forwardRowsOf<7>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
    default:
      return forwardRowsOf<8>(p, z, table, biasPad, labels, probs, rowLoss, at, len);
  }
}

// Rows [at, at + len): s[(i * k + j) * C + c] = S_j of row i.
MRL_CLONES void suffixRows(const Problem& p, const float* dy, const float* probs, const int32_t* labels, float* s,
                           int64_t at, int64_t len) {
  const int C = p.classes, k = p.k;
  const int64_t N = p.rows;
  for (int64_t i = at; i < at + len; ++i) {
    for (int j = k - 1; j >= 0; --j) {
      const float factor = dy[j] / static_cast<float>(N);
      const float* pj = probs + (j * N + i) * C;
      float* out = s + (i * k + j) * C;
      const float* next = j == k - 1 ? nullptr : out + C;
      for (int c = 0; c < C; ++c) out[c] = factor * pj[c] + (next == nullptr ? 0.0f : next[c]);
      out[labels[i]] -= factor;
    }
  }
}

// dz[i, a .. a + B * 16) (all in block j): the sum over classes c, in order, of S_j[i, c] W[a, c],
// B independent sums per class.
template <int B>
MRL_INLINE void embeddingGradTile(const Problem& p, const float* sj, const float* wcd, float* dzi, int64_t a) {
  const int64_t D = p.width;
  V16 acc[B] = {};
  for (int c = 0; c < p.classes; ++c) {
    const float g = sj[c];
#pragma GCC unroll 16
    for (int b = 0; b < B; ++b) acc[b] += load(wcd + c * D + a + b * kLanes) * g;
  }
#pragma GCC unroll 16
  for (int b = 0; b < B; ++b) store(dzi + a + b * kLanes, acc[b]);
}

// Rows [at, at + len) of dz [N, D]: column a of block j is the sum over classes c, in order, of
// S_j[i, c] W[a, c]; zero past the last dim. wcd is the table as [C, D].
MRL_CLONES void embeddingGradRows(const Problem& p, const float* s, const float* wcd, float* dz, int64_t at,
                                  int64_t len) {
  const int C = p.classes, k = p.k;
  const int64_t D = p.width;
  for (int64_t i = at; i < at + len; ++i) {
    float* dzi = dz + i * D;
    int64_t a = 0;
    for (int j = 0; j < k; ++j) {
      const float* sj = s + (i * k + j) * C;
      const int64_t end = p.ends[j];
      for (; a + 4 * kLanes <= end; a += 4 * kLanes) embeddingGradTile<4>(p, sj, wcd, dzi, a);
      for (; a + kLanes <= end; a += kLanes) embeddingGradTile<1>(p, sj, wcd, dzi, a);
      if (a + 8 <= end) {
        V8 acc = {};
        for (int c = 0; c < C; ++c) acc += load<V8>(wcd + c * D + a) * sj[c];
        store(dzi + a, acc);
        a += 8;
      }
      for (; a < end; ++a) {
        float acc = 0.0f;
        for (int c = 0; c < C; ++c) acc += wcd[c * D + a] * sj[c];
        dzi[a] = acc;
      }
    }
    std::fill(dzi + a, dzi + D, 0.0f);
  }
}

// dW[c, a] for G classes from c0 and the columns of one vector V from a (all in block j): the
// sum over rows, in order, of S_j[i, c] z[i, a].
template <typename V, int G>
MRL_INLINE void weightGradTile(const Problem& p, const float* s, const float* z, float* dwcd, int j, int c0,
                               int64_t a) {
  const int C = p.classes, k = p.k;
  const int64_t D = p.width, N = p.rows;
  V acc[G] = {};
  for (int64_t i = 0; i < N; ++i) {
    const V zi = load<V>(z + i * D + a);
    const float* si = s + (i * k + j) * C + c0;
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) acc[g] += zi * si[g];
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) store(dwcd + (c0 + g) * D + a, acc[g]);
}

// Every class's tiles at columns [a, a + lanes of V): groups of 8 classes, then 4, 2 and 1, so
// that each pass over the rows carries several independent sums.
template <typename V>
MRL_INLINE void weightGradColumn(const Problem& p, const float* s, const float* z, float* dwcd, int j, int64_t a) {
  const int C = p.classes;
  int c = 0;
  for (; c + 8 <= C; c += 8) weightGradTile<V, 8>(p, s, z, dwcd, j, c, a);
  if (c + 4 <= C) weightGradTile<V, 4>(p, s, z, dwcd, j, c, a), c += 4;
  if (c + 2 <= C) weightGradTile<V, 2>(p, s, z, dwcd, j, c, a), c += 2;
  if (c < C) weightGradTile<V, 1>(p, s, z, dwcd, j, c, a);
}

// Columns [at, at + len) of dW as [C, D] (the caller zeroes it): column a of block j, class c is
// the sum over rows, in order, of S_j[i, c] z[i, a].
MRL_CLONES void weightGradColumns(const Problem& p, const float* s, const float* z, float* dwcd, int64_t at,
                                  int64_t len) {
  const int C = p.classes, k = p.k;
  const int64_t D = p.width, N = p.rows;
  int64_t a0 = 0;
  for (int j = 0; j < k; ++j) {
    const int64_t lo = std::max<int64_t>(a0, at), hi = std::min<int64_t>(p.ends[j], at + len);
    a0 = p.ends[j];
    int64_t a = lo;
    for (; a + kLanes <= hi; a += kLanes) weightGradColumn<V16>(p, s, z, dwcd, j, a);
    if (a + 8 <= hi) weightGradColumn<V8>(p, s, z, dwcd, j, a), a += 8;
    for (; a < hi; ++a)
      for (int c = 0; c < C; ++c) {
        float acc = 0.0f;
        for (int64_t i = 0; i < N; ++i) acc += z[i * D + a] * s[(i * k + j) * C + c];
        dwcd[c * D + a] = acc;
      }
  }
}

int threadsFor(const Problem& p) {
  const int64_t work = static_cast<int64_t>(p.rows) * p.width * p.classes;
  return work < kParallelWork ? 1 : p.threads;
}

// prefixCeFewForward(dims, z [N, D], w, bias [C] or empty, labels Int32Array [N], probs [k, N, C],
// losses [k]): losses[j] = the mean over rows of prefix j's cross-entropy (NaN with no rows).
napi_value Forward(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!exactArgs(env, info, argv, "onednn: prefixCeFewForward takes (dims, z, w, bias, labels, probs, losses)"))
    return nullptr;
  Problem p;
  if (!readProblem(env, argv[0], "prefixCeFewForward", &p)) return nullptr;
  const int64_t N = p.rows, D = p.width, C = p.classes, k = p.k;
  napi_value floats[5] = {argv[1], argv[2], argv[3], argv[5], argv[6]};
  const char* names[5] = {"z", "w", "bias", "probs", "losses"};
  const int64_t want[5] = {N * D, D * C, C, k * N * C, k};
  const bool optional[5] = {false, false, true, false, false};
  float* f[5];
  if (!floatArgsOfLengths(env, floats, 5, names, want, "prefixCeFewForward", f, optional)) return nullptr;
  const int32_t* labels = nullptr;
  if (!readLabels(env, argv[4], p, "prefixCeFewForward", &labels)) return nullptr;
  std::vector<float> table, biasPad;
  padTable(p, f[1], f[2], table, biasPad);
  std::vector<double> rowLoss(static_cast<size_t>(k * N));
  if (N > 0)
    parallelBlocks(threadsFor(p), N, kRowBlock, 0, [&](int64_t at, int64_t len) {
      forwardRows(p, f[0], table.data(), biasPad.data(), labels, f[3], rowLoss.data(), at, len);
    });
  for (int64_t j = 0; j < k; ++j) {
    double total = 0;
    for (int64_t i = 0; i < N; ++i) total += rowLoss[j * N + i];
    f[4][j] = N == 0 ? std::nanf("") : static_cast<float>(total / static_cast<double>(N));
  }
  return nullptr;
}

// prefixCeFewBackward(dims, dy [k], probs [k, N, C], labels, z [N, D], w, dz [N, D], dw (w's
// shape), db [C] or empty): the gradients of sum_j dy_j losses_j.
napi_value Backward(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!exactArgs(env, info, argv, "onednn: prefixCeFewBackward takes (dims, dy, probs, labels, z, w, dz, dw, db)"))
    return nullptr;
  Problem p;
  if (!readProblem(env, argv[0], "prefixCeFewBackward", &p)) return nullptr;
  const int64_t N = p.rows, D = p.width, C = p.classes, k = p.k;
  napi_value floats[7] = {argv[1], argv[2], argv[4], argv[5], argv[6], argv[7], argv[8]};
  const char* names[7] = {"dy", "probs", "z", "w", "dz", "dw", "db"};
  const int64_t want[7] = {k, k * N * C, N * D, D * C, N * D, D * C, C};
  const bool optional[7] = {false, false, false, false, false, false, true};
  float* f[7];
  if (!floatArgsOfLengths(env, floats, 7, names, want, "prefixCeFewBackward", f, optional)) return nullptr;
  const int32_t* labels = nullptr;
  if (!readLabels(env, argv[3], p, "prefixCeFewBackward", &labels)) return nullptr;
  const float *dy = f[0], *probs = f[1], *z = f[2], *w = f[3];
  float *dz = f[4], *dw = f[5], *db = f[6];
  const int threads = threadsFor(p);
  std::vector<float> s(static_cast<size_t>(N * k * C));
  std::vector<float> wScratch;
  const float* wcd = classesFirstTable(p, w, wScratch);
  if (N > 0) {
    parallelBlocks(threads, N, kRowBlock, 0,
                   [&](int64_t at, int64_t len) { suffixRows(p, dy, probs, labels, s.data(), at, len); });
    parallelBlocks(threads, N, kRowBlock, 0,
                   [&](int64_t at, int64_t len) { embeddingGradRows(p, s.data(), wcd, dz, at, len); });
  }
  // dW as [C, D]: written in place when the table is classes first, else transposed after.
  std::vector<float> dwScratch;
  float* dwcd = dw;
  if (!p.classesFirst) {
    dwScratch.resize(static_cast<size_t>(C * D));
    dwcd = dwScratch.data();
  }
  std::fill(dwcd, dwcd + C * D, 0.0f);
  parallelBlocks(threads, p.ends[k - 1], kColumnBlock, 0,
                 [&](int64_t at, int64_t len) { weightGradColumns(p, s.data(), z, dwcd, at, len); });
  if (!p.classesFirst)
    for (int64_t a = 0; a < D; ++a)
      for (int64_t c = 0; c < C; ++c) dw[a * C + c] = dwcd[c * D + a];
  if (db != nullptr)
    for (int64_t c = 0; c < C; ++c) {
      float total = 0;
      for (int64_t i = 0; i < N; ++i) total += s[(i * k) * C + c];
      db[c] = total;
    }
  return nullptr;
}

}  // namespace

napi_value OneDnnPrefixCeFewForward(napi_env env, napi_callback_info info) { return Forward(env, info); }
napi_value OneDnnPrefixCeFewBackward(napi_env env, napi_callback_info info) { return Backward(env, info); }
