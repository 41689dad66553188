// Why: the chunked Matryoshka softmax cross-entropy (src/wasm/native_chunked_prefix_softmax.ts)
// streams the vocabulary in chunks through every nesting prefix. On ONNX Runtime each chunk is
// one graph whose products run on MLAS, and its per-prefix work (a LogSoftmax forward; Sub, Exp,
// Add backward) goes through separate [N, chunk] passes, one op at a time; for BERT-mini's six
// dims that made the Matryoshka head 1.14x a plain one once the rest of the model ran on oneDNN.
// This file runs the same algorithm in the oneDNN addon:
//   - the products on oneDNN's matmul primitive, reading the nesting blocks of the embedding and
//     of the table in place (strides, nothing copied), writing the weight gradient's blocks in
//     place and adding the embedding gradient's blocks in place (a `sum` post-op);
//   - the per-prefix work fused into one pass per row that stays in L1: running sums of the
//     block products, each prefix's row max and sum of exponentials (merged across chunks in an
//     online log-sum-exp, in double), and backward G_j = sign_j exp(L_j - A_j) and the suffix sums
//     S_j = S_{j+1} + G_j, with a vectorised exp (GCC target clones for AVX-512, AVX2 and SSE2).
// Rows are split between the threads; each row's sums run in one thread in a fixed order, and the
// column sums of the bias gradient run over rows in order, so a fixed thread count gives the same
// bits every run.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "float_arg.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using dt = memory::data_type;

// dims: [threads, rows N, width D, classes C, chunk, k, m_1 .. m_k] (ascending nesting dims).
constexpr int kHeader = 6;
// Primitives per (shape, strides, threads); a new chunk size or batch size adds 6k of them.
constexpr size_t kMaxCached = 512;

struct Problem {
  int threads = 1, rows = 0, width = 0, classes = 0, chunk = 0, k = 0;
  std::vector<int> starts, widths;
};

std::string parse(napi_env env, napi_value value, Problem* p) {
  bool isTyped = false;
  napi_is_typedarray(env, value, &isTyped);
  napi_typedarray_type type;
  size_t count = 0;
  void* raw = nullptr;
  if (!isTyped || napi_get_typedarray_info(env, value, &type, &count, &raw, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array) {
    return "dims must be an Int32Array";
  }
  const int32_t* d = static_cast<const int32_t*>(raw);
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

struct Product {
  dnnl::matmul prim;
  memory a, b, y;
};

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::unordered_map<std::string, std::unique_ptr<Product>> cache;
  std::mutex mutex;  // one call at a time: the cached memories' handles are set per call
  // The chunk's k [N, chunk] planes, kept between calls (unset: no page faults or zeroing per call).
  std::unique_ptr<float[]> blocks;
  size_t blockSize = 0;
  float* blocksFor(size_t size) {
    if (size > blockSize) {
      blocks.reset(new float[size]);
      blockSize = size;
    }
    return blocks.get();
  }
};

Context& context() {
  static Context ctx;
  return ctx;
}

// y [m, n] (+)= a [m, kk] @ b [kk, n], each operand a strided view (strides in elements, for the
// logical row-major axes), on the calling thread's OpenMP thread count.
Product& product(memory::dim m, memory::dim kk, memory::dim n, const memory::dims& aStrides,
                 const memory::dims& bStrides, const memory::dims& yStrides, bool accumulate, int threads) {
  auto& ctx = context();
  const int64_t parts[] = {m,           kk,          n,           aStrides[0], aStrides[1], bStrides[0],
                           bStrides[1], yStrides[0], yStrides[1], accumulate,  threads};
  std::string key(reinterpret_cast<const char*>(parts), sizeof(parts));
  auto it = ctx.cache.find(key);
  if (it != ctx.cache.end()) return *it->second;
  if (ctx.cache.size() >= kMaxCached) ctx.cache.clear();
  memory::desc aMd({m, kk}, dt::f32, aStrides);
  memory::desc bMd({kk, n}, dt::f32, bStrides);
  memory::desc yMd({m, n}, dt::f32, yStrides);
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aMd, bMd, yMd), attr, ctx.engine);
  auto p = std::make_unique<Product>();
  p->prim = dnnl::matmul(pd);
  p->a = memory(aMd, ctx.engine, DNNL_MEMORY_NONE);
  p->b = memory(bMd, ctx.engine, DNNL_MEMORY_NONE);
  p->y = memory(yMd, ctx.engine, DNNL_MEMORY_NONE);
  return *ctx.cache.emplace(key, std::move(p)).first->second;
}

void run(Product& p, const float* a, const float* b, float* y) {
  auto& ctx = context();
  p.a.set_data_handle(const_cast<float*>(a));
  p.b.set_data_handle(const_cast<float*>(b));
  p.y.set_data_handle(y);
  p.prim.execute(ctx.stream, {{DNNL_ARG_SRC, p.a}, {DNNL_ARG_WEIGHTS, p.b}, {DNNL_ARG_DST, p.y}});
  ctx.stream.wait();
}

// P_j [N, n] = z[:, block j] @ W[c0 : c0 + n, block j]^T for every block, in `blocks` (k planes).
void blockLogits(const Problem& p, const float* z, const float* w, int c0, int n, float* blocks) {
  const memory::dim D = p.width, N = p.rows;
  for (int j = 0; j < p.k; ++j) {
    Product& f = product(N, p.widths[j], n, {D, 1}, {1, D}, {n, 1}, false, p.threads);
    run(f, z + p.starts[j], w + static_cast<size_t>(c0) * D + p.starts[j], blocks + static_cast<size_t>(j) * N * n);
  }
}

// ---- the fused per-row passes ------------------------------------------------------------------

// exp(x) for float32 (Cephes' expf: a degree-6 polynomial on [-ln2/2, ln2/2] times 2^n; about one
// ulp), written so that GCC vectorises it: n is rounded by adding and subtracting 1.5 * 2^23 (no
// floor call), 2^n is built from its bits, and the clamps are selects. NaN stays NaN; anything
// below -87.34 gives about 1e-38, above 88.38 the largest power.
inline __attribute__((always_inline)) float expApprox(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  const float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(fx) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
}

// The row passes, compiled for AVX-512, AVX2 and plain x86-64 and picked at load time; without
// trapping math the clamps above become vector selects instead of branches.
#define ROW_PASS __attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-trapping-math")))

// Forward, row i of one chunk: the running sums L_j = bias + P_0 + .. + P_j of the row (in acc),
// each prefix's max and sum of exp(L_j - max) merged into (hi, total) [k * N].
ROW_PASS void forwardRow(
    int i, int n, int k, int rows, const float* bias, const float* blocks, float* acc, double* hi, double* total) {
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
    for (int t = 0; t < n; ++t) s += expApprox(acc[t] - m);
    double& h = hi[static_cast<size_t>(j) * rows + i];
    double& sum = total[static_cast<size_t>(j) * rows + i];
    if (std::isnan(s) || std::isnan(m)) {
      sum = std::numeric_limits<double>::quiet_NaN();
    } else if (m > h) {
      sum = sum * std::exp(h - m) + s;
      h = m;
    } else {
      sum += s * std::exp(static_cast<double>(m) - h);
    }
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
      if (first) {
        for (int t = 0; t < n; ++t) acc[t] = 0.0f;
      }
    } else if (first) {
#pragma omp simd
      for (int t = 0; t < n; ++t) acc[t] = sg * expApprox(pj[t] - a);
    } else {
#pragma omp simd
      for (int t = 0; t < n; ++t) acc[t] += sg * expApprox(pj[t] - a);
    }
    first = false;
#pragma omp simd
    for (int t = 0; t < n; ++t) pj[t] = acc[t];
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
  const int chunk = std::min(p.chunk, p.classes);
  auto& ctx = context();
  std::lock_guard<std::mutex> lock(ctx.mutex);
  Threads threads(p.threads);
  try {
    float* blocks = ctx.blocksFor(k * N * chunk);
    std::vector<double> hi(k * N, -std::numeric_limits<double>::infinity()), total(k * N, 0.0);
    for (int c0 = 0; c0 < p.classes; c0 += chunk) {
      const int n = std::min(chunk, p.classes - c0);
      blockLogits(p, z, w, c0, n, blocks);
#pragma omp parallel num_threads(p.threads)
      {
        std::vector<float> acc(n);
#pragma omp for schedule(static)
        for (int i = 0; i < p.rows; ++i) {
          forwardRow(i, n, p.k, p.rows, bias == nullptr ? nullptr : bias + c0, blocks, acc.data(), hi.data(),
                     total.data());
        }
      }
    }
    for (size_t i = 0; i < k * N; ++i) lse[i] = hi[i] + std::log(total[i]);
  } catch (const dnnl::error& err) {
    napi_throw_error(env, nullptr, (std::string("onednn: prefixCeForward: ") + err.what()).c_str());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: prefixCeForward: out of memory for the chunk's logits");
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
  const int chunk = std::min(p.chunk, p.classes);
  auto& ctx = context();
  std::lock_guard<std::mutex> lock(ctx.mutex);
  Threads threads(p.threads);
  try {
    float* blocks = ctx.blocksFor(k * N * chunk);
    const memory::dim Dd = p.width, Nd = p.rows;
    for (int c0 = 0; c0 < p.classes; c0 += chunk) {
      const int n = std::min(chunk, p.classes - c0);
      float* S = blocks;
      blockLogits(p, z, w, c0, n, S);
#pragma omp parallel num_threads(p.threads)
      {
        std::vector<float> acc(n);
#pragma omp for schedule(static)
        for (int i = 0; i < p.rows; ++i) {
          backwardRow(i, n, p.k, p.rows, bias == nullptr ? nullptr : bias + c0, S, shift, sign, acc.data());
        }
      }
      if (db != nullptr) {
        float* out = db + c0;
        for (int t = 0; t < n; ++t) out[t] = 0.0f;
        for (size_t i = 0; i < N; ++i) {
          const float* row = S + i * n;
#pragma omp simd
          for (int t = 0; t < n; ++t) out[t] += row[t];
        }
      }
      for (int j = 0; j < p.k; ++j) {
        const float* Sj = S + static_cast<size_t>(j) * N * n;
        const float* wj = w + static_cast<size_t>(c0) * D + p.starts[j];
        // dW[c0 : c0 + n, block j] = S_j^T z_j: S_j read transposed through its strides.
        Product& gw = product(n, Nd, p.widths[j], {1, n}, {Dd, 1}, {Dd, 1}, false, p.threads);
        run(gw, Sj, z + p.starts[j], dw + static_cast<size_t>(c0) * D + p.starts[j]);
        // dz[:, block j] += S_j W[c0 : c0 + n, block j].
        Product& gz = product(Nd, n, p.widths[j], {n, 1}, {Dd, 1}, {Dd, 1}, true, p.threads);
        run(gz, Sj, wj, dz + p.starts[j]);
      }
    }
  } catch (const dnnl::error& err) {
    napi_throw_error(env, nullptr, (std::string("onednn: prefixCeBackward: ") + err.what()).c_str());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "onednn: prefixCeBackward: out of memory for the chunk's logits");
  }
  return nullptr;
}
