// Why: the chunked Matryoshka softmax cross-entropy (src/wasm/native_chunked_prefix_softmax.ts)
// streams the vocabulary in chunks through every nesting prefix. On ONNX Runtime each chunk is
// one graph whose products run on MLAS, and its per-prefix work (a LogSoftmax forward; Sub, Exp,
// Add backward) goes through separate [N, chunk] passes, one op at a time; for BERT-mini's six
// dims that made the Matryoshka head 1.14x a plain one once the rest of the model ran on oneDNN.
// This file runs the same algorithm in the oneDNN addon:
//   - the products on oneDNN's matmul primitive, reading the nesting blocks of the embedding and
//     of the table in place (strides, nothing copied), writing the weight gradient's blocks in
//     place and adding the embedding gradient's blocks in place (a `sum` post-op); with AVX-512,
//     the narrow blocks' gradient products run in loops of our own instead (below);
//   - the per-prefix work fused into one pass per row that stays in L1: running sums of the
//     block products, each prefix's row max and sum of exponentials (merged across chunks in an
//     online log-sum-exp, in double), and backward G_j = sign_j exp(L_j - A_j) and the suffix sums
//     S_j = S_{j+1} + G_j, with a vectorised exp of fused multiply-adds (GCC target clones for
//     AVX-512, AVX2 with FMA, and plain x86-64). The exps are what six dims cost over one: with
//     separate multiplies and adds they were 37 ms of BERT-mini's 142 ms head step at one thread,
//     27 ms fused.
// Threads: the chunks are split between them (static schedule), each chunk's products and passes
// on one thread, so a step opens one parallel region per pass instead of one per product (at 2
// threads on a loaded machine the per-product regions made the head slower than on 1). The
// forward's per-chunk (max, sum) are merged in chunk order afterwards: the same bits on any thread
// count. Backward, thread t > 0 adds its chunks' embedding gradient into its own [N, D], summed
// in thread order at the end: the same bits every run at a fixed thread count.
#include <node_api.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "exp_approx.h"
#include "float_arg.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using dt = memory::data_type;

// dims: [threads, rows N, width D, classes C, chunk, k, m_1 .. m_k] (ascending nesting dims).
constexpr int kHeader = 6;
// Primitives per shape and strides: each new row count (masked tokens per batch) or chunk size
// adds up to 8k of them (k forward and 3k backward, for the full and the last chunk's width).
// Past this many the cache starts again, at the start of a call (pointers into it are held
// during one).
constexpr size_t kMaxCached = 1024;

struct Problem {
  int threads = 1, rows = 0, width = 0, classes = 0, chunk = 0, k = 0;
  std::vector<int> starts, widths;
};

std::string parse(napi_env env, napi_value value, Problem* p) {
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, value, &d, &count)) return "dims must be an Int32Array";
  if (count < kHeader + 1 || count != static_cast<size_t>(kHeader + d[5])) {
    return "dims must be [threads, rows, width, classes, chunk, k, dim_1 .. dim_k] with k >= 1";
  }
  p->threads = d[0];
  p->rows = d[1];
  p->width = d[2];
  p->classes = d[3];
  p->chunk = d[4];
  p->k = d[5];
  if (p->threads < 1 || p->rows < 1 || p->width < 1 || p->classes < 1 || p->chunk < 1) {
    return "threads, rows, width, classes and chunk must be positive (empty problems stay in the caller)";
  }
  int previous = 0;
  for (int j = 0; j < p->k; ++j) {
    const int m = d[kHeader + j];
    if (m <= previous || m > p->width) return "dims must ascend within 1..width";
    p->starts.push_back(previous);
    p->widths.push_back(m - previous);
    previous = m;
  }
  return "";
}

// A Float64Array argument, as floatArg.
bool doubleArg(napi_env env, napi_value v, double** data, size_t* length, const char* what) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  napi_typedarray_type type;
  void* raw = nullptr;
  if (isTyped && napi_get_typedarray_info(env, v, &type, length, &raw, nullptr, nullptr) == napi_ok &&
      type == napi_float64_array) {
    *data = static_cast<double*>(raw);
    return true;
  }
  napi_throw_type_error(env, nullptr, (std::string("onednn: ") + what + " must be a Float64Array").c_str());
  return false;
}

// ---- products ---------------------------------------------------------------------------------

// One product's primitive, planned for one thread, with a memory (and scratchpad) per thread slot:
// the chunks run in parallel, each on one thread, so one primitive runs on several at once.
struct Product {
  dnnl::matmul prim;
  memory::desc aMd, bMd, yMd, padMd;
  struct Slot {
    memory a, b, y, pad;
  };
  std::vector<Slot> slots;
};

// Per thread slot: the chunk's k [N, chunk] planes, a row of `chunk` floats and (backward, slots
// after the first) a [N, D] embedding gradient; kept between calls (no page faults or zeroing).
struct Buffers {
  std::unique_ptr<float[]> data;
  size_t size = 0;
  float* reserve(size_t n) {
    if (n > size) {
      data.reset(new float[n]);
      size = n;
    }
    return data.get();
  }
};

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::vector<dnnl::stream> streams;  // one per thread slot
  std::unordered_map<std::string, std::unique_ptr<Product>> cache;
  std::vector<Buffers> buffers;
  std::mutex mutex;  // one call at a time: slots and buffers are shared between calls
  void reserveSlots(int threads) {
    while (static_cast<int>(streams.size()) < threads) streams.emplace_back(engine);
    if (static_cast<int>(buffers.size()) < threads) buffers.resize(threads);
  }
};

Context& context() {
  static Context ctx;
  return ctx;
}

// y [m, n] (+)= a [m, kk] @ b [kk, n], each operand a strided view (strides in elements, for the
// logical row-major axes), created on the main thread (once per shape and strides) with `threads`
// slots.
Product* product(memory::dim m, memory::dim kk, memory::dim n, const memory::dims& aStrides,
                 const memory::dims& bStrides, const memory::dims& yStrides, bool accumulate, int threads) {
  auto& ctx = context();
  const int64_t parts[] = {m,           kk,          n,           aStrides[0], aStrides[1],
                           bStrides[0], bStrides[1], yStrides[0], yStrides[1], accumulate};
  std::string key(reinterpret_cast<const char*>(parts), sizeof(parts));
  auto it = ctx.cache.find(key);
  if (it == ctx.cache.end()) {
    auto p = std::make_unique<Product>();
    p->aMd = memory::desc({m, kk}, dt::f32, aStrides);
    p->bMd = memory::desc({kk, n}, dt::f32, bStrides);
    p->yMd = memory::desc({m, n}, dt::f32, yStrides);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    const int previous = omp_get_max_threads();
    omp_set_num_threads(1);  // each product runs on one thread
    try {
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p->aMd, p->bMd, p->yMd), attr, ctx.engine);
      p->prim = dnnl::matmul(pd);
      p->padMd = pd.scratchpad_desc();
    } catch (...) {
      omp_set_num_threads(previous);
      throw;
    }
    omp_set_num_threads(previous);
    it = ctx.cache.emplace(key, std::move(p)).first;
  }
  Product* p = it->second.get();
  while (static_cast<int>(p->slots.size()) < threads) {
    Product::Slot slot{memory(p->aMd, ctx.engine, DNNL_MEMORY_NONE), memory(p->bMd, ctx.engine, DNNL_MEMORY_NONE),
                       memory(p->yMd, ctx.engine, DNNL_MEMORY_NONE), memory(p->padMd, ctx.engine)};
    p->slots.push_back(std::move(slot));
  }
  return p;
}

// Runs `p` on the calling thread (slot `t`): inside a parallel region oneDNN runs it sequentially.
void run(Product* p, int t, const float* a, const float* b, float* y) {
  auto& slot = p->slots[t];
  slot.a.set_data_handle(const_cast<float*>(a));
  slot.b.set_data_handle(const_cast<float*>(b));
  slot.y.set_data_handle(y);
  auto& stream = context().streams[t];
  p->prim.execute(stream, {{DNNL_ARG_SRC, slot.a},
                           {DNNL_ARG_WEIGHTS, slot.b},
                           {DNNL_ARG_DST, slot.y},
                           {DNNL_ARG_SCRATCHPAD, slot.pad}});
  stream.wait();
}

// The products of one chunk width n, per block j: the logits P_j = z_j W_j^T, and backward
// dW_j = S_j^T z_j (written in place) and dz_j += S_j W_j (added in place).
struct ChunkProducts {
  std::vector<Product*> logits, dW, dz;
};

ChunkProducts productsFor(const Problem& p, int n, bool backward) {
  const memory::dim D = p.width, N = p.rows, nd = n;
  ChunkProducts out;
  for (int j = 0; j < p.k; ++j) {
    const memory::dim w = p.widths[j];
    out.logits.push_back(product(N, w, nd, {D, 1}, {1, D}, {nd, 1}, false, p.threads));
    if (!backward) continue;
    // S_j [N, n] read transposed through its strides.
    out.dW.push_back(product(nd, N, w, {1, nd}, {D, 1}, {D, 1}, false, p.threads));
    out.dz.push_back(product(N, nd, w, {nd, 1}, {D, 1}, {D, 1}, true, p.threads));
  }
  return out;
}

// P_j [N, n] = z[:, block j] @ W[c0 : c0 + n, block j]^T for every block, in `blocks` (k planes).
void blockLogits(const Problem& p, const ChunkProducts& f, int t, const float* z, const float* w, int c0, int n,
                 float* blocks) {
  for (int j = 0; j < p.k; ++j) {
    run(f.logits[j], t, z + p.starts[j], w + static_cast<size_t>(c0) * p.width + p.starts[j],
        blocks + static_cast<size_t>(j) * p.rows * n);
  }
}

// ---- the fused per-row passes ------------------------------------------------------------------

// The row passes, compiled for AVX-512, for AVX2 with FMA (x86-64-v3) and for plain x86-64, and
// picked at load time; without trapping math the clamps of expApprox (exp_approx.h) become vector
// selects instead of branches.
#define ROW_PASS \
  __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"), optimize("no-trapping-math")))

// Forward, row i of one chunk: the running sums L_j = bias + P_0 + .. + P_j of the row (in acc),
// each prefix's max and sum of exp(L_j - max) into (hi, total) [k * N].
ROW_PASS void forwardRow(int i, int n, int k, int rows, const float* bias, const float* blocks, float* acc, float* hi,
                         float* total) {
  if (bias == nullptr) {
    std::fill(acc, acc + n, 0.0f);
  } else {
    std::copy(bias, bias + n, acc);
  }
  for (int j = 0; j < k; ++j) {
    const float* pj = blocks + (static_cast<size_t>(j) * rows + i) * n;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int t = 0; t < n; ++t) {
      acc[t] += pj[t];
      m = acc[t] > m ? acc[t] : m;
    }
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int t = 0; t < n; ++t) s += expApprox<false>(acc[t] - m);
    hi[static_cast<size_t>(j) * rows + i] = m;
    total[static_cast<size_t>(j) * rows + i] = s;
  }
}

// Merges a chunk's (max, sum of exp(x - max)) into the running (hi, total), in double.
inline void merge(float m, float s, double* hi, double* total) {
  if (std::isnan(s) || std::isnan(m)) {
    *total = std::numeric_limits<double>::quiet_NaN();
  } else if (m > *hi) {
    *total = *total * std::exp(*hi - m) + s;
    *hi = m;
  } else {
    *total += s * std::exp(static_cast<double>(m) - *hi);
  }
}

// Backward, row i of one chunk: the blocks become S_j = sum_{j' >= j} sign_j' exp(L_j' - A_j')
// in place (A_j' = +inf: the row counts for nothing in prefix j').
ROW_PASS void backwardRow(
    int i, int n, int k, int rows, const float* bias, float* blocks, const float* shift, const float* sign,
    float* acc) {
  if (bias == nullptr) {
    std::fill(acc, acc + n, 0.0f);
  } else {
    std::copy(bias, bias + n, acc);
  }
  for (int j = 0; j < k; ++j) {
    float* pj = blocks + (static_cast<size_t>(j) * rows + i) * n;
#pragma omp simd
    for (int t = 0; t < n; ++t) {
      acc[t] += pj[t];
      pj[t] = acc[t];
    }
  }
  bool first = true;  // S_{k-1} = G_{k-1}, as the graph computes it (no zero added)
  for (int j = k - 1; j >= 0; --j) {
    float* pj = blocks + (static_cast<size_t>(j) * rows + i) * n;
    const float a = shift[static_cast<size_t>(j) * rows + i];
    const float sg = sign[static_cast<size_t>(j) * rows + i];
    if (a == std::numeric_limits<float>::infinity()) {
      if (first) std::fill(acc, acc + n, 0.0f);
#pragma omp simd
      for (int t = 0; t < n; ++t) pj[t] = acc[t];
    } else if (first) {
#pragma omp simd
      for (int t = 0; t < n; ++t) pj[t] = acc[t] = sg * expApprox(pj[t] - a);
    } else {
#pragma omp simd
      for (int t = 0; t < n; ++t) pj[t] = acc[t] = acc[t] + sg * expApprox(pj[t] - a);
    }
    first = false;
  }
}

// ---- the narrow blocks' gradient products -------------------------------------------------------

// oneDNN 2.6.3 runs the gradient products of a block 8 wide (dW_j = S_j^T z_j [n, 8] and
// dz_j += S_j W_j [N, 8] per chunk) and the weight gradient of a block 16 wide on `gemm:jit` at
// 33-40 us a call for BERT-mini's chunk of 512 classes (36 GFLOP/s, against 100-110 for the wide
// blocks). With AVX-512 these loops keep their accumulators in registers (`GCC unroll`: without it
// the accumulator arrays stayed in memory and the loops were no faster than oneDNN) and take
// 15-25 us: dW 8 wide 14.6 us, dz 8 wide 16.9, dW 16 wide 24.5 (dz 16 wide took 38, oneDNN 32,
// so it stays there). Other CPUs keep oneDNN for every block.

// Whether this CPU runs the loops below.
bool narrowLoops() {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
}

// dw[c D + d] = sum over i of S[i n + c] z[i D + d], for c < n, d < kW (dw and z at the block).
template <int kW>
__attribute__((target("avx512f"))) void narrowWeightGrad(const float* S, int rows, int n, const float* z, int D,
                                                         float* dw) {
  int c0 = 0;
  for (; c0 + 16 <= n; c0 += 16) {
    __m512 acc[kW];
#pragma GCC unroll 16
    for (int d = 0; d < kW; ++d) acc[d] = _mm512_setzero_ps();
    const float* s = S + c0;
    const float* zi = z;
    for (int i = 0; i < rows; ++i, s += n, zi += D) {
      const __m512 sv = _mm512_loadu_ps(s);
#pragma GCC unroll 16
      for (int d = 0; d < kW; ++d) acc[d] = _mm512_fmadd_ps(_mm512_set1_ps(zi[d]), sv, acc[d]);
    }
    alignas(64) float out[kW][16];
#pragma GCC unroll 16
    for (int d = 0; d < kW; ++d) _mm512_store_ps(out[d], acc[d]);
    for (int c = 0; c < 16; ++c) {
      float* row = dw + static_cast<size_t>(c0 + c) * D;
      for (int d = 0; d < kW; ++d) row[d] = out[d][c];
    }
  }
  for (int c = c0; c < n; ++c) {  // the last chunk's columns past a multiple of 16
    float acc[kW] = {};
    for (int i = 0; i < rows; ++i) {
      const float sc = S[static_cast<size_t>(i) * n + c];
      for (int d = 0; d < kW; ++d) acc[d] = std::fma(sc, z[static_cast<size_t>(i) * D + d], acc[d]);
    }
    for (int d = 0; d < kW; ++d) dw[static_cast<size_t>(c) * D + d] = acc[d];
  }
}

// dz[i D + d] += sum over c of S[i n + c] w[c D + d], for d < kW (dz and w at the block); wt is
// scratch for w's block transposed, kW x roundUp(n, 16) floats.
template <int kW>
__attribute__((target("avx512f"))) void narrowEmbeddingGrad(const float* S, int rows, int n, const float* w, int D,
                                                            float* dz, float* wt) {
  const int np = (n + 15) / 16 * 16;
  for (int c = 0; c < np; ++c) {
    for (int d = 0; d < kW; ++d) wt[d * np + c] = c < n ? w[static_cast<size_t>(c) * D + d] : 0.0f;
  }
  const int full = n / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1);
  for (int i = 0; i < rows; ++i) {
    const float* s = S + static_cast<size_t>(i) * n;
    __m512 acc[kW];
#pragma GCC unroll 16
    for (int d = 0; d < kW; ++d) acc[d] = _mm512_setzero_ps();
    int c = 0;
    for (; c < full; c += 16) {
      const __m512 sv = _mm512_loadu_ps(s + c);
#pragma GCC unroll 16
      for (int d = 0; d < kW; ++d) acc[d] = _mm512_fmadd_ps(sv, _mm512_loadu_ps(wt + d * np + c), acc[d]);
    }
    if (tail != 0) {
      const __m512 sv = _mm512_maskz_loadu_ps(tail, s + c);
#pragma GCC unroll 16
      for (int d = 0; d < kW; ++d) acc[d] = _mm512_fmadd_ps(sv, _mm512_loadu_ps(wt + d * np + c), acc[d]);
    }
    float* out = dz + static_cast<size_t>(i) * D;
#pragma GCC unroll 16
    for (int d = 0; d < kW; ++d) out[d] += _mm512_reduce_add_ps(acc[d]);
  }
}

// Restores the calling thread's OpenMP thread count on the way out.
class Threads {
 public:
  explicit Threads(int threads) : previous_(omp_get_max_threads()) {
    if (previous_ != threads) omp_set_num_threads(threads);
    threads_ = threads;
  }
  ~Threads() {
    if (previous_ != threads_) omp_set_num_threads(previous_);
  }

 private:
  int previous_;
  int threads_ = 1;
};

struct Args {
  Problem p;
  std::vector<float*> f;
  std::vector<size_t> len;
};

// Parses (dims, then `count` float arrays); false with a pending exception.
bool args(napi_env env, napi_callback_info info, size_t count, const char* name, const char* const* names, Args* out,
          napi_value* extra) {
  size_t argc = 12;
  napi_value argv[12];
  const size_t wanted = 1 + count + (extra == nullptr ? 0 : 1);
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != wanted) {
    napi_throw_type_error(env, nullptr, (std::string("onednn: ") + name + " takes " + std::to_string(wanted) +
                                         " arguments").c_str());
    return false;
  }
  const std::string problem = parse(env, argv[0], &out->p);
  if (!problem.empty()) {
    napi_throw_range_error(env, nullptr, (std::string("onednn: ") + name + " " + problem).c_str());
    return false;
  }
  out->f.resize(count);
  out->len.resize(count);
  for (size_t a = 0; a < count; ++a) {
    if (!floatArg(env, argv[1 + a], &out->f[a], &out->len[a], std::string(name) + " " + names[a])) return false;
  }
  if (extra != nullptr) *extra = argv[1 + count];
  return true;
}

// How a pass splits the vocabulary: chunks of `chunk` classes (the last `tailWidth` wide), on
// T threads (no more than there are chunks), and the products of a full and of the last chunk.
// Reserves the threads' slots and starts the primitive cache again when this call could
// overflow it (pointers into it are held only during one call).
struct ChunkPlan {
  int chunk, chunks, T, tailWidth;
  ChunkProducts full, tail;
  const ChunkProducts& productsOf(int n) const { return n == chunk ? full : tail; }
};

ChunkPlan planChunks(Context& ctx, const Problem& p, bool backward) {
  ChunkPlan plan;
  plan.chunk = std::min(p.chunk, p.classes);
  plan.chunks = (p.classes + plan.chunk - 1) / plan.chunk;
  plan.T = std::min(p.threads, plan.chunks);
  plan.tailWidth = p.classes - (plan.chunks - 1) * plan.chunk;
  ctx.reserveSlots(plan.T);
  if (ctx.cache.size() + 8 * p.k > kMaxCached) ctx.cache.clear();
  plan.full = productsFor(p, plan.chunk, backward);
  plan.tail = plan.tailWidth == plan.chunk ? plan.full : productsFor(p, plan.tailWidth, backward);
  return plan;
}

bool lengthIs(napi_env env, size_t got, size_t want, const char* name, const char* what) {
  if (got == want) return true;
  napi_throw_range_error(env, nullptr,
                         (std::string("onednn: ") + name + " " + what + " has " + std::to_string(got) +
                          " entries, not " + std::to_string(want))
                             .c_str());
  return false;
}

}  // namespace

// prefixCeForward(dims, z [N*D], w [C*D], bias [C] or [], lse: Float64Array [k*N]): each
// prefix's log-sum-exp over all classes, per row.
napi_value OneDnnPrefixCeForward(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"z", "w", "bias"};
  Args in;
  napi_value lseValue;
  if (!args(env, info, 3, "prefixCeForward", names, &in, &lseValue)) return nullptr;
  const Problem& p = in.p;
  const size_t N = p.rows, D = p.width, C = p.classes, k = p.k;
  double* lse = nullptr;
  size_t lseLength = 0;
  if (!doubleArg(env, lseValue, &lse, &lseLength, "prefixCeForward lse")) return nullptr;
  if (!lengthIs(env, in.len[0], N * D, "prefixCeForward", "z") ||
      !lengthIs(env, in.len[1], C * D, "prefixCeForward", "w") ||
      (in.len[2] != 0 && !lengthIs(env, in.len[2], C, "prefixCeForward", "bias")) ||
      !lengthIs(env, lseLength, k * N, "prefixCeForward", "lse"))
    return nullptr;
  const float* z = in.f[0];
  const float* w = in.f[1];
  const float* bias = in.len[2] == 0 ? nullptr : in.f[2];
  auto& ctx = context();
  std::lock_guard<std::mutex> lock(ctx.mutex);
  Threads threads(1);  // each chunk's products run on the thread that has the chunk
  try {
    const ChunkPlan plan = planChunks(ctx, p, false);
    const int chunk = plan.chunk, chunks = plan.chunks, T = plan.T;
    for (int t = 0; t < T; ++t) ctx.buffers[t].reserve(k * N * chunk + chunk);
    // Each chunk's (max, sum) per prefix and row, merged in chunk order afterwards: the same
    // numbers on any thread count.
    std::vector<float> partHi(static_cast<size_t>(chunks) * k * N), partTotal(partHi.size());
    std::string failure;
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num();
      float* blocks = ctx.buffers[t].data.get();
      float* acc = blocks + k * N * chunk;
#pragma omp for schedule(static)
      for (int c = 0; c < chunks; ++c) {
        const int c0 = c * chunk;
        const int n = std::min(chunk, p.classes - c0);
        try {
          blockLogits(p, plan.productsOf(n), t, z, w, c0, n, blocks);
          float* hi = partHi.data() + static_cast<size_t>(c) * k * N;
          float* total = partTotal.data() + static_cast<size_t>(c) * k * N;
          for (int i = 0; i < p.rows; ++i) {
            forwardRow(i, n, p.k, p.rows, bias == nullptr ? nullptr : bias + c0, blocks, acc, hi, total);
          }
        } catch (const dnnl::error& err) {
#pragma omp critical(prefix_ce_failure)
          failure = err.what();
        }
      }
    }
    if (!failure.empty()) throw std::runtime_error(failure);
    std::vector<double> hi(k * N, -std::numeric_limits<double>::infinity()), total(k * N, 0.0);
    for (int c = 0; c < chunks; ++c) {
      const size_t at = static_cast<size_t>(c) * k * N;
      for (size_t i = 0; i < k * N; ++i) merge(partHi[at + i], partTotal[at + i], &hi[i], &total[i]);
    }
    for (size_t i = 0; i < k * N; ++i) lse[i] = hi[i] + std::log(total[i]);
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: prefixCeForward: out of memory for the chunks' logits");
  } catch (const std::exception& err) {
    napi_throw_error(env, nullptr, (std::string("onednn: prefixCeForward: ") + err.what()).c_str());
  }
  return nullptr;
}

// prefixCeBackward(dims, z, w, bias [C] or [], shift [k*N], sign [k*N], dz [N*D], dw [C*D],
// db [C] or []): adds S_j W_j into dz's block j (the caller zeroes dz), writes S_j^T z_j into
// dw's block j for every class (columns past the last dim are left as they are) and colsum(S_0)
// into db. shift_j = lse_j - log|c_j| per row (+inf for rows that count for nothing), sign_j =
// sign(c_j); c_j is the row's weight in prefix j's loss.
napi_value OneDnnPrefixCeBackward(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"z", "w", "bias", "shift", "sign", "dz", "dw", "db"};
  Args in;
  if (!args(env, info, 8, "prefixCeBackward", names, &in, nullptr)) return nullptr;
  const Problem& p = in.p;
  const size_t N = p.rows, D = p.width, C = p.classes, k = p.k;
  const char* fn = "prefixCeBackward";
  if (!lengthIs(env, in.len[0], N * D, fn, "z") || !lengthIs(env, in.len[1], C * D, fn, "w") ||
      (in.len[2] != 0 && !lengthIs(env, in.len[2], C, fn, "bias")) || !lengthIs(env, in.len[3], k * N, fn, "shift") ||
      !lengthIs(env, in.len[4], k * N, fn, "sign") || !lengthIs(env, in.len[5], N * D, fn, "dz") ||
      !lengthIs(env, in.len[6], C * D, fn, "dw") || (in.len[7] != 0 && !lengthIs(env, in.len[7], C, fn, "db")))
    return nullptr;
  const float* z = in.f[0];
  const float* w = in.f[1];
  const float* bias = in.len[2] == 0 ? nullptr : in.f[2];
  const float* shift = in.f[3];
  const float* sign = in.f[4];
  float* dz = in.f[5];
  float* dw = in.f[6];
  float* db = in.len[7] == 0 ? nullptr : in.f[7];
  auto& ctx = context();
  std::lock_guard<std::mutex> lock(ctx.mutex);
  Threads threads(1);  // each chunk's products run on the thread that has the chunk
  try {
    const ChunkPlan plan = planChunks(ctx, p, true);
    const int chunk = plan.chunk, chunks = plan.chunks, T = plan.T;
    // Thread t > 0 adds its chunks' dz into its own [N, D], summed into dz in thread order after.
    // Per thread: the k planes, a row, and w's 8-wide block transposed for narrowEmbeddingGrad.
    const bool narrow = narrowLoops();
    const size_t transposedSize = narrow ? 8 * static_cast<size_t>((chunk + 15) / 16 * 16) : 0;
    const size_t own = k * N * chunk + chunk + transposedSize;
    for (int t = 0; t < T; ++t) {
      float* buffer = ctx.buffers[t].reserve(own + (t == 0 ? 0 : N * D));
      if (t > 0) std::fill(buffer + own, buffer + own + N * D, 0.0f);
    }
    std::string failure;
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num();
      float* S = ctx.buffers[t].data.get();
      float* acc = S + k * N * chunk;
      float* transposed = acc + chunk;
      float* dzt = t == 0 ? dz : S + own;
#pragma omp for schedule(static)
      for (int c = 0; c < chunks; ++c) {
        const int c0 = c * chunk;
        const int n = std::min(chunk, p.classes - c0);
        const ChunkProducts& f = plan.productsOf(n);
        try {
          blockLogits(p, f, t, z, w, c0, n, S);
          for (int i = 0; i < p.rows; ++i) {
            backwardRow(i, n, p.k, p.rows, bias == nullptr ? nullptr : bias + c0, S, shift, sign, acc);
          }
          if (db != nullptr) {
            float* out = db + c0;
            std::fill(out, out + n, 0.0f);
            for (size_t i = 0; i < N; ++i) {
              const float* row = S + i * n;
#pragma omp simd
              for (int x = 0; x < n; ++x) out[x] += row[x];
            }
          }
          for (int j = 0; j < p.k; ++j) {
            const float* Sj = S + static_cast<size_t>(j) * N * n;
            float* dwj = dw + static_cast<size_t>(c0) * D + p.starts[j];
            const float* wj = w + static_cast<size_t>(c0) * D + p.starts[j];
            const int width = p.widths[j];
            if (narrow && width == 8) {
              narrowWeightGrad<8>(Sj, p.rows, n, z + p.starts[j], p.width, dwj);
              narrowEmbeddingGrad<8>(Sj, p.rows, n, wj, p.width, dzt + p.starts[j], transposed);
            } else if (narrow && width == 16) {
              narrowWeightGrad<16>(Sj, p.rows, n, z + p.starts[j], p.width, dwj);
              run(f.dz[j], t, Sj, wj, dzt + p.starts[j]);
            } else {
              run(f.dW[j], t, Sj, z + p.starts[j], dwj);
              run(f.dz[j], t, Sj, wj, dzt + p.starts[j]);
            }
          }
        } catch (const dnnl::error& err) {
#pragma omp critical(prefix_ce_failure)
          failure = err.what();
        }
      }
    }
    if (!failure.empty()) throw std::runtime_error(failure);
    for (int t = 1; t < T; ++t) {
      const float* part = ctx.buffers[t].data.get() + own;
      for (size_t i = 0; i < N * D; ++i) dz[i] += part[i];
    }
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: prefixCeBackward: out of memory for the chunks' logits");
  } catch (const std::exception& err) {
    napi_throw_error(env, nullptr, (std::string("onednn: prefixCeBackward: ") + err.what()).c_str());
  }
  return nullptr;
}
