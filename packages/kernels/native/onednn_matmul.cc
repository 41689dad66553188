// Why: about 70% of a ViT-tiny training step is products on ONNX Runtime's MLAS SGEMM, and
// PyTorch runs them on MKL/oneDNN. This file adds oneDNN's matmul primitive (brgemm kernels on
// AVX-512/AVX2) to the same addon as the convolutions (onednn.cc), with the semantics of the
// native kernels' `matMul`: `y = op(a) @ op(b)`, op transposing the last two axes, numpy
// broadcasting over the leading (batch) axes. Transposes are strides of the memory descriptors
// (nothing is copied), and so is broadcasting: oneDNN takes a batch axis of 1 on either side.
// Primitives are created once per shape, transposes and thread count, and kept (up to
// kMaxCached of them); the caller's arrays (views of the wasm heap) are set as handles per call.
//
// Threads: oneDNN here runs on OpenMP. Each call sets the calling thread's OpenMP thread count to
// its own and restores the previous one, so the convolutions' setting is left as it was.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>

#include "float_arg.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using dt = memory::data_type;

// dims: [threads, transposeA, transposeB, rank, aShape (rank), bShape (rank)], both shapes padded
// with leading 1s to the same rank (>= 2, <= 12: oneDNN's limit).
constexpr int kHeader = 4;
constexpr int kMaxRank = 12;
// Shapes that change from call to call (a last, shorter batch; sequences of many lengths) would
// otherwise grow the cache without end: past this many primitives it starts again.
constexpr size_t kMaxCached = 1024;

struct MatMulEntry {
  dnnl::matmul prim;
  std::string impl;
  memory a, b, y;
  size_t aSize = 0, bSize = 0, ySize = 0;
};

struct MatMulContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::unordered_map<std::string, std::unique_ptr<MatMulEntry>> cache;
};

MatMulContext& matmulContext() {
  static MatMulContext ctx;
  return ctx;
}

// Row-major strides of a stored [..., rows, cols] array, reported for the logical [..., r, c]
// axes: a transposed operand stores [..., c, r], so its last two strides swap.
memory::dims stridesOf(const memory::dims& logical, bool transposed) {
  const size_t rank = logical.size();
  memory::dims stored = logical;
  if (transposed) std::swap(stored[rank - 1], stored[rank - 2]);
  memory::dims s(rank);
  memory::dim step = 1;
  for (size_t i = rank; i-- > 0;) {
    s[i] = step;
    step *= stored[i];
  }
  if (transposed) std::swap(s[rank - 1], s[rank - 2]);
  return s;
}

memory::dim product(const memory::dims& d) {
  memory::dim p = 1;
  for (auto v : d) p *= v;
  return p;
}

// Parses dims; an empty string when they are valid, else what is wrong.
std::string parse(const int32_t* d, size_t count, int* threads, bool* ta, bool* tb, memory::dims* aDims,
                  memory::dims* bDims, memory::dims* yDims) {
  if (count < kHeader) return "dims is too short";
  const int rank = d[3];
  if (rank < 2 || rank > kMaxRank || count != static_cast<size_t>(kHeader + 2 * rank)) {
    return "dims must be [threads, transposeA, transposeB, rank (2 to 12), aShape, bShape]";
  }
  if (d[0] < 1) return "threads must be positive";
  *threads = d[0];
  *ta = d[1] != 0;
  *tb = d[2] != 0;
  aDims->assign(d + kHeader, d + kHeader + rank);
  bDims->assign(d + kHeader + rank, d + kHeader + 2 * rank);
  for (int i = 0; i < rank; ++i) {
    if ((*aDims)[i] < 1 || (*bDims)[i] < 1) return "every axis must be at least 1 (empty products stay in the caller)";
  }
  // The logical (untransposed) operands: a [..., M, K], b [..., K, N].
  if (*ta) std::swap((*aDims)[rank - 1], (*aDims)[rank - 2]);
  if (*tb) std::swap((*bDims)[rank - 1], (*bDims)[rank - 2]);
  if ((*aDims)[rank - 1] != (*bDims)[rank - 2]) return "the inner dims of a and b differ";
  yDims->assign(rank, 1);
  for (int i = 0; i < rank - 2; ++i) {
    const auto x = (*aDims)[i], y = (*bDims)[i];
    if (x != y && x != 1 && y != 1) return "the batch axes of a and b do not broadcast";
    (*yDims)[i] = std::max(x, y);
  }
  (*yDims)[rank - 2] = (*aDims)[rank - 2];
  (*yDims)[rank - 1] = (*bDims)[rank - 1];
  return "";
}

std::unique_ptr<MatMulEntry> createMatMul(bool ta, bool tb, const memory::dims& aDims, const memory::dims& bDims,
                                          const memory::dims& yDims) {
  auto& ctx = matmulContext();
  memory::desc aMd(aDims, dt::f32, stridesOf(aDims, ta));
  memory::desc bMd(bDims, dt::f32, stridesOf(bDims, tb));
  memory::desc yMd(yDims, dt::f32, stridesOf(yDims, false));
  dnnl::matmul::desc desc(aMd, bMd, yMd);
  dnnl::matmul::primitive_desc pd(desc, ctx.engine);
  auto e = std::make_unique<MatMulEntry>();
  e->prim = dnnl::matmul(pd);
  e->impl = pd.impl_info_str();
  e->a = memory(aMd, ctx.engine, DNNL_MEMORY_NONE);
  e->b = memory(bMd, ctx.engine, DNNL_MEMORY_NONE);
  e->y = memory(yMd, ctx.engine, DNNL_MEMORY_NONE);
  e->aSize = static_cast<size_t>(product(aDims));
  e->bSize = static_cast<size_t>(product(bDims));
  e->ySize = static_cast<size_t>(product(yDims));
  return e;
}

// The cached entry for dims (created on first use, on `threads` threads), or null with a pending
// exception.
MatMulEntry* entryFor(napi_env env, napi_value dimsValue, int* threads) {
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, dimsValue, &d, &count)) {
    napi_throw_type_error(env, nullptr, "onednn: matmul dims must be an Int32Array");
    return nullptr;
  }
  bool ta = false, tb = false;
  memory::dims aDims, bDims, yDims;
  const std::string problem = parse(d, count, threads, &ta, &tb, &aDims, &bDims, &yDims);
  if (!problem.empty()) {
    napi_throw_range_error(env, nullptr, ("onednn: matmul " + problem).c_str());
    return nullptr;
  }
  auto& cache = matmulContext().cache;
  std::string key(reinterpret_cast<const char*>(d), sizeof(int32_t) * count);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= kMaxCached) cache.clear();
    const int previous = omp_get_max_threads();
    omp_set_num_threads(*threads);  // oneDNN sizes its partition of the work by it when it creates
    try {
      it = cache.emplace(key, createMatMul(ta, tb, aDims, bDims, yDims)).first;
    } catch (const dnnl::error& err) {
      omp_set_num_threads(previous);
      napi_throw_error(env, nullptr, (std::string("onednn: matmul: ") + err.what()).c_str());
      return nullptr;
    }
    omp_set_num_threads(previous);
  }
  return it->second.get();
}


}  // namespace

// matmul(dims: Int32Array, a: Float32Array, b: Float32Array, y: Float32Array): y = op(a) @ op(b).
napi_value OneDnnMatMul(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!exactArgs(env, info, argv, "onednn: matmul takes (dims, a, b, y)")) return nullptr;
  int threads = 1;
  MatMulEntry* e = entryFor(env, argv[0], &threads);
  if (e == nullptr) return nullptr;
  float *a, *b, *y;
  size_t la, lb, ly;
  if (!floatArg(env, argv[1], &a, &la, "matmul a") || !floatArg(env, argv[2], &b, &lb, "matmul b") ||
      !floatArg(env, argv[3], &y, &ly, "matmul y"))
    return nullptr;
  if (la != e->aSize || lb != e->bSize || ly != e->ySize) {
    napi_throw_range_error(env, nullptr, "onednn: matmul an array's length does not match its shape");
    return nullptr;
  }
  auto& ctx = matmulContext();
  const int previous = omp_get_max_threads();
  if (previous != threads) omp_set_num_threads(threads);
  try {
    e->a.set_data_handle(a);
    e->b.set_data_handle(b);
    e->y.set_data_handle(y);
    e->prim.execute(ctx.stream, {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->y}});
    ctx.stream.wait();
  } catch (const dnnl::error& err) {
    if (previous != threads) omp_set_num_threads(previous);
    napi_throw_error(env, nullptr, (std::string("onednn: matmul: ") + err.what()).c_str());
    return nullptr;
  }
  if (previous != threads) omp_set_num_threads(previous);
  return nullptr;
}

// matmulImpl(dims): the implementation oneDNN chose for that product (creates it if needed).
napi_value OneDnnMatMulImpl(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!exactArgs(env, info, argv, "onednn: matmulImpl takes (dims)")) return nullptr;
  int threads = 1;
  MatMulEntry* e = entryFor(env, argv[0], &threads);
  if (e == nullptr) return nullptr;
  napi_value result;
  napi_create_string_utf8(env, e->impl.c_str(), NAPI_AUTO_LENGTH, &result);
  return result;
}
