// Why: with the products, convolutions, GELU and the bias adds on the addon's threads, a
// transformer step's elementwise products and differences and its bias-gradient sums still ran on
// one thread: in a 16-thread ViT-tiny step Multiply (scalar, same-shape and the softmax gradient's
// column broadcast) took 9.2 ms, Sub 2.3 ms and Sum over rows 12.8 ms; in BERT-mini's, Multiply
// 15.3 ms, Sum 6.9 ms and the Adds of a scalar or an attention mask 7.3 ms. Here they run on
// OpenMP threads over the caller's arrays (views of the wasm heap).
//
// Broadcasts: every case the transformers use is one pattern, y[o, m, i] = a[o, m, i] op b[o, i]
// (b broadcast over the middle axis): the same shape is O = M = 1; a scalar O = I = 1; a row
// vector O = 1; the softmax gradient's column [..., r, 1] I = 1; an attention mask [b, 1, 1, n]
// against [b, h, r, n] all three. Each value is one float operation, rounded once: the same bits
// as the wasm kernels (and as any IEEE float32 arithmetic). Values are split between threads in
// fixed blocks (blocks.h), so the thread count changes nothing.
//
// Sums: over the leading axes (a bias gradient, [rows, n] -> [n]) the rows are cut into chunks of
// about kChunkValues values (at least kChunkRows rows), a function of the shape alone; each
// chunk's rows are added in order into a float partial vector (vectorised across columns), and
// the partials are added in chunk order in double, one rounding at the end. Over the last axis
// ([r, n] -> [r]) each row is added into 16 fixed float lanes, the lanes then in order in double.
// Either way the result is the same bits at every thread count and on every CPU (the lanes are
// explicit, not the vectoriser's).
//
// Every other axis set runs here too (../src/wasm/native_binary.ts cuts it into steps): ONNX
// Runtime's ReduceSum, which ran them before, rounds differently with the array's address in the
// wasm heap (a sum over all axes of [8, 128, 256], or over axes [0, 2], gave two different results
// at 17 heap addresses: test/native_sum_heap.test.ts), so a gradient-norm clip, and every parameter
// after it, depended on the process's allocation history. Over a middle axis ([outer, m, inner] -> [outer, inner]) each
// outer slice is summed exactly as sumLeading sums [m, inner] (the slices' chunks shared between
// threads); over all values, fixed blocks of kAllBlock values each go into 16 fixed float lanes,
// the lanes in order in double, and the blocks' sums in order in double, one rounding at the end.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "blocks.h"
#include "float_arg.h"

namespace {

// Elementwise values per block, and the size below which a call stays on the calling thread (as
// batch_norm.cc: waking a thread costs more than it saves).
constexpr int64_t kBlock = 16384;
constexpr int64_t kParallelValues = 65536;
// Rows per chunk in the leading-axis sum: kChunkValues values, at least kChunkRows rows (so that
// wide rows do not make a partial vector per handful of rows).
constexpr int64_t kChunkValues = 8192;
constexpr int64_t kChunkRows = 32;
// Fixed accumulators per row in the last-axis sum (and per block in the sum of all values).
constexpr int kLanes = 16;
// Values per block of the sum of all values: 256 per float lane (a float32 relative error of
// about 256 * 2^-24 at worst before the blocks meet in double).
constexpr int64_t kAllBlock = 4096;

#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

enum Op : int32_t { kAdd = 0, kSub = 1, kMul = 2, kSubReversed = 3 };  // kSubReversed: y = b - a

// y = a op b over n values (b a vector), or y = a op s (s one value).
#define MRL_BINARY_LOOPS(NAME, EXPR)                                                   \
  MRL_CLONES void NAME##Vector(const float* a, const float* b, int64_t n, float* y) { \
    _Pragma("omp simd") for (int64_t i = 0; i < n; ++i) {                              \
      const float u = a[i], v = b[i];                                                  \
      y[i] = EXPR;                                                                     \
    }                                                                                  \
  }                                                                                    \
  MRL_CLONES void NAME##Scalar(const float* a, float v, int64_t n, float* y) {         \
    _Pragma("omp simd") for (int64_t i = 0; i < n; ++i) {                              \
      const float u = a[i];                                                            \
      y[i] = EXPR;                                                                     \
    }                                                                                  \
  }

MRL_BINARY_LOOPS(add, u + v)
MRL_BINARY_LOOPS(sub, u - v)
MRL_BINARY_LOOPS(mul, u * v)
MRL_BINARY_LOOPS(subReversed, v - u)

void vectorOp(Op op, const float* a, const float* b, int64_t n, float* y) {
  switch (op) {
    case kAdd: return addVector(a, b, n, y);
    case kSub: return subVector(a, b, n, y);
    case kMul: return mulVector(a, b, n, y);
    case kSubReversed: return subReversedVector(a, b, n, y);
  }
}

void scalarOp(Op op, const float* a, float s, int64_t n, float* y) {
  switch (op) {
    case kAdd: return addScalar(a, s, n, y);
    case kSub: return subScalar(a, s, n, y);
    case kMul: return mulScalar(a, s, n, y);
    case kSubReversed: return subReversedScalar(a, s, n, y);
  }
}

// Values [at, at + len) of y = a op b, a [o, m, i], b [o, i]: runs of one b value (i == 1) or of
// consecutive b values (within one row of i).
void broadcastBlock(Op op, const float* a, const float* b, float* y, int64_t m, int64_t inner, int64_t at,
                    int64_t len) {
  const int64_t end = at + len;
  for (int64_t j = at; j < end;) {
    if (inner == 1) {
      const int64_t o = j / m;
      const int64_t stop = std::min(end, (o + 1) * m);
      scalarOp(op, a + j, b[o], stop - j, y + j);
      j = stop;
    } else {
      const int64_t o = j / (m * inner), i = j % inner;
      const int64_t stop = std::min(end, j + (inner - i));
      vectorOp(op, a + j, b + o * inner + i, stop - j, y + j);
      j = stop;
    }
  }
}

// Partial sums of rows [r0, r1) of x [rows, n] into acc [n].
MRL_CLONES void chunkColumnSums(const float* x, int64_t r0, int64_t r1, int64_t n, float* acc) {
  std::fill(acc, acc + n, 0.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * n;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) acc[i] += row[i];
  }
}

// Columns per block of the final pass over the partial sums.
constexpr int64_t kColumnBlock = 256;

// y[c] = sum over chunks k (in order, in double) of partial[k, c], columns [c0, c1) (at most
// kColumnBlock of them).
MRL_CLONES void addPartials(const float* partial, int64_t chunks, int64_t n, int64_t c0, int64_t c1, float* y) {
  double acc[kColumnBlock] = {};
  const int64_t w = c1 - c0;
  for (int64_t k = 0; k < chunks; ++k) {
    const float* p = partial + k * n + c0;
#pragma omp simd
    for (int64_t i = 0; i < w; ++i) acc[i] += p[i];
  }
  for (int64_t i = 0; i < w; ++i) y[c0 + i] = static_cast<float>(acc[i]);
}

// y[r] = the sum of row r of x [rows, n], rows [r0, r1): 16 float lanes, then the lanes in double.
MRL_CLONES void rowSums(const float* x, int64_t r0, int64_t r1, int64_t n, float* y) {
  const int64_t full = n - n % kLanes;
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * n;
    float lane[kLanes] = {};
    for (int64_t i = 0; i < full; i += kLanes) {
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) lane[j] += row[i + j];
    }
    for (int64_t i = full; i < n; ++i) lane[i - full] += row[i];
    double s = 0;
    for (int j = 0; j < kLanes; ++j) s += lane[j];
    y[r] = static_cast<float>(s);
  }
}

// The sum of x [0, n) in kLanes float lanes (value i into lane i % kLanes), the lanes then in
// order in double.
MRL_CLONES double blockSum(const float* x, int64_t n) {
  const int64_t full = n - n % kLanes;
  float lane[kLanes] = {};
  for (int64_t i = 0; i < full; i += kLanes) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) lane[j] += x[i + j];
  }
  for (int64_t i = full; i < n; ++i) lane[i - full] += x[i];
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  return s;
}

// --- Node-API glue ---------------------------------------------------------------------------

// Reads (threads, dims, arrays...) with dims an Int32Array of `count` values; false with a
// pending error otherwise.
template <int N>
bool readArgs(napi_env env, napi_callback_info info, const char* usage, size_t count, const char* const names[N],
              int* threads, const int32_t** dims, float* p[N], size_t lengths[N]) {
  size_t argc = N + 2;
  napi_value argv[N + 2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t t = 0;
  size_t n = 0;
  if (argc != N + 2 || napi_get_value_int32(env, argv[0], &t) != napi_ok || t < 1 ||
      !int32Array(env, argv[1], dims, &n) || n != count) {
    napi_throw_type_error(env, nullptr, usage);
    return false;
  }
  for (int i = 0; i < N; ++i) {
    if (!floatArg(env, argv[2 + i], &p[i], &lengths[i], names[i])) return false;
  }
  *threads = t;
  return true;
}

bool lengthIs(napi_env env, const char* kernel, const char* what, size_t length, int64_t want) {
  if (static_cast<int64_t>(length) == want) return true;
  const std::string message = std::string("onednn: ") + kernel + " " + what + " has " + std::to_string(length) +
                              " values, expected " + std::to_string(want);
  napi_throw_range_error(env, nullptr, message.c_str());
  return false;
}

const char* const kBinaryNames[3] = {"a", "b", "y"};
const char* const kSumNames[2] = {"x", "y"};

// broadcastBinary(threads, Int32Array [op, outer, middle, inner], a, b, y): y = a op b, a and y
// [outer, middle, inner], b [outer, inner]; op 0 add, 1 a - b, 2 multiply, 3 b - a.
napi_value BroadcastBinary(napi_env env, napi_callback_info info) {
  const char* usage = "onednn: broadcastBinary takes (threads >= 1, Int32Array [op, outer, middle, inner], a, b, y)";
  int threads;
  const int32_t* d;
  float* p[3];
  size_t lengths[3];
  if (!readArgs<3>(env, info, usage, 4, kBinaryNames, &threads, &d, p, lengths)) return nullptr;
  if (d[0] < kAdd || d[0] > kSubReversed || d[1] < 1 || d[2] < 1 || d[3] < 1) {
    napi_throw_range_error(env, nullptr, "onednn: broadcastBinary op must be 0-3 and outer, middle, inner positive");
    return nullptr;
  }
  const Op op = static_cast<Op>(d[0]);
  const int64_t outer = d[1], middle = d[2], inner = d[3], total = outer * middle * inner;
  if (!lengthIs(env, "broadcastBinary", "a", lengths[0], total) ||
      !lengthIs(env, "broadcastBinary", "b", lengths[1], outer * inner) ||
      !lengthIs(env, "broadcastBinary", "y", lengths[2], total)) {
    return nullptr;
  }
  const float *a = p[0], *b = p[1];
  float* y = p[2];
  parallelBlocks(threads, total, kBlock, kParallelValues,
                 [&](int64_t at, int64_t len) { broadcastBlock(op, a, b, y, middle, inner, at, len); });
  return nullptr;
}

// The shape of a sum's arguments: the names of its dims as the messages give them, and which dim
// is summed (y holds the product of the others).
struct SumShape {
  const char* dims;      // "[rows, n]"
  const char* positive;  // "rows and n"
  size_t count;
  size_t reduced;
};

// The arguments of every sum, (threads, Int32Array of the shape's dims, x, y): the dims positive, x
// of their product, y of the product of all but the reduced one; false with a pending exception.
bool readSumArgs(napi_env env, napi_callback_info info, const char* kernel, const SumShape& shape, int* threads,
                 int64_t* dims, const float** x, float** y) {
  const std::string usage =
      std::string("onednn: ") + kernel + " takes (threads >= 1, Int32Array " + shape.dims + ", x, y)";
  const int32_t* d;
  float* p[2];
  size_t lengths[2];
  if (!readArgs<2>(env, info, usage.c_str(), shape.count, kSumNames, threads, &d, p, lengths)) return false;
  int64_t all = 1, kept = 1;
  for (size_t k = 0; k < shape.count; ++k) {
    if (d[k] < 1) {
      napi_throw_range_error(
          env, nullptr, (std::string("onednn: ") + kernel + " " + shape.positive + " must be positive").c_str());
      return false;
    }
    dims[k] = d[k];
    all *= d[k];
    if (k != shape.reduced) kept *= d[k];
  }
  if (!lengthIs(env, kernel, "x", lengths[0], all) || !lengthIs(env, kernel, "y", lengths[1], kept)) return false;
  *x = p[0];
  *y = p[1];
  return true;
}

constexpr SumShape kLeading{"[rows, n]", "rows and n", 2, 0};
constexpr SumShape kLast{"[rows, n]", "rows and n", 2, 1};
constexpr SumShape kMiddle{"[outer, m, inner]", "outer, m and inner", 3, 1};
constexpr SumShape kAll{"[n]", "n", 1, 0};

// y [outer, n] = x [outer, m, n] summed over m: each outer slice's rows cut into chunks of about
// kChunkValues values (at least kChunkRows rows), a function of the shape alone; each chunk's rows
// added in order into a float partial vector, the partials added in chunk order in double. The
// slices' chunks and column blocks are shared between threads: the same bits at every count.
void sliceSums(int threads, int64_t outer, int64_t m, int64_t n, const float* x, float* y) {
  const int64_t rowsPerChunk = std::max<int64_t>(kChunkRows, kChunkValues / n);
  const int64_t chunks = (m + rowsPerChunk - 1) / rowsPerChunk;
  // Kept between calls (per calling thread: worker threads may call at once): a fresh vector of
  // a few hundred KiB is fresh pages, faulted in on every call.
  thread_local std::vector<float> kept;
  if (kept.size() < static_cast<size_t>(outer * chunks * n)) kept.resize(static_cast<size_t>(outer * chunks * n));
  float* partial = kept.data();  // the calling thread's buffer, shared with the team below
  const int64_t columnBlocks = (n + kColumnBlock - 1) / kColumnBlock;
  const int use =
      outer * m * n < kParallelValues ? 1 : static_cast<int>(std::min<int64_t>(threads, outer * chunks));
#pragma omp parallel num_threads(use)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * chunks; ++t) {
      const int64_t o = t / chunks, k = t % chunks;
      chunkColumnSums(x + o * m * n, k * rowsPerChunk, std::min(m, (k + 1) * rowsPerChunk), n, &partial[t * n]);
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * columnBlocks; ++t) {
      const int64_t o = t / columnBlocks, c = t % columnBlocks;
      addPartials(&partial[o * chunks * n], chunks, n, c * kColumnBlock, std::min(n, (c + 1) * kColumnBlock),
                  y + o * n);
    }
  }
}

// sumLeading(threads, Int32Array [rows, n], x, y): y [n] = the sum of the rows of x [rows, n].
napi_value SumLeading(napi_env env, napi_callback_info info) {
  int threads;
  int64_t d[2];
  const float* x;
  float* y;
  if (!readSumArgs(env, info, "sumLeading", kLeading, &threads, d, &x, &y)) return nullptr;
  sliceSums(threads, 1, d[0], d[1], x, y);
  return nullptr;
}

// sumLast(threads, Int32Array [rows, n], x, y): y [rows] = the sum of each row of x [rows, n].
napi_value SumLast(napi_env env, napi_callback_info info) {
  int threads;
  int64_t d[2];
  const float* x;
  float* y;
  if (!readSumArgs(env, info, "sumLast", kLast, &threads, d, &x, &y)) return nullptr;
  const int64_t rows = d[0], n = d[1];
  const int64_t rowsPerBlock = std::max<int64_t>(1, kBlock / n);
  parallelBlocks(threads, rows, rowsPerBlock, std::max<int64_t>(1, kParallelValues / n),
                 [&](int64_t at, int64_t len) { rowSums(x, at, at + len, n, y); });
  return nullptr;
}

// sumMiddle(threads, Int32Array [outer, m, inner], x, y): y [outer, inner] = x [outer, m, inner]
// summed over m, each outer slice exactly as sumLeading sums [m, inner] (the same chunks, the
// same order), its chunks and column blocks shared between threads with the other slices'.
napi_value SumMiddle(napi_env env, napi_callback_info info) {
  int threads;
  int64_t d[3];
  const float* x;
  float* y;
  if (!readSumArgs(env, info, "sumMiddle", kMiddle, &threads, d, &x, &y)) return nullptr;
  sliceSums(threads, d[0], d[1], d[2], x, y);
  return nullptr;
}

// sumAll(threads, Int32Array [n], x, y): y [1] = the sum of the n values of x: blocks of kAllBlock
// values (blockSum), their sums added in block order in double.
napi_value SumAll(napi_env env, napi_callback_info info) {
  int threads;
  int64_t d[1];
  const float* x;
  float* y;
  if (!readSumArgs(env, info, "sumAll", kAll, &threads, d, &x, &y)) return nullptr;
  const int64_t n = d[0];
  const int64_t blocks = (n + kAllBlock - 1) / kAllBlock;
  thread_local std::vector<double> kept;
  if (kept.size() < static_cast<size_t>(blocks)) kept.resize(static_cast<size_t>(blocks));
  double* partial = kept.data();
  parallelBlocks(threads, blocks, 1, std::max<int64_t>(1, kParallelValues / kAllBlock), [&](int64_t k, int64_t) {
    partial[k] = blockSum(x + k * kAllBlock, std::min(kAllBlock, n - k * kAllBlock));
  });
  double s = 0;
  for (int64_t k = 0; k < blocks; ++k) s += partial[k];
  y[0] = static_cast<float>(s);
  return nullptr;
}

}  // namespace

napi_value OneDnnBroadcastBinary(napi_env env, napi_callback_info info) { return BroadcastBinary(env, info); }
napi_value OneDnnSumLeading(napi_env env, napi_callback_info info) { return SumLeading(env, info); }
napi_value OneDnnSumLast(napi_env env, napi_callback_info info) { return SumLast(env, info); }
napi_value OneDnnSumMiddle(napi_env env, napi_callback_info info) { return SumMiddle(env, info); }
napi_value OneDnnSumAll(napi_env env, napi_callback_info info) { return SumAll(env, info); }
