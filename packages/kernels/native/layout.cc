// Why: with the products, convolutions and elementwise passes on the addon's threads, the copies
// that move a transformer's tensors between layouts were left on one thread (the wasm backend's
// Transpose, Concat and Slice, and ONNX Runtime's Split, which runs a single-node graph on one
// thread). A 16-thread profile of one ViT-tiny step spent 17 ms in SplitV ([16,9,65,64] -> q, k,
// v), 17 ms in Transpose (the heads in and out of [B,T,H,dh]) and 5 ms in Concat; BERT-mini 10 ms
// in Transpose and 1.5 ms in Slice. Here are the same copies on OpenMP threads, float32 on the
// caller's arrays (views of the wasm heap).
//
// Design: every kernel is a copy of contiguous runs. A transpose first drops size-1 axes and
// merges the input axes that stay side by side in the output ([16,65,9,64] perm [0,2,1,3] is
// [16,65,9,64] with 64-float runs); where the innermost axis stays innermost it copies whole runs
// (memcpy), otherwise it is a batched 2-D transpose done in square tiles. A slice is runs of its
// inner extent; a split along an axis is, for each of the `outer` rows before the axis, one run
// per output, and a concat the same copies the other way. The work is cut into units that depend
// on the shape alone, so the results (copies: the same bits as any other copy) and the work each
// unit does are the same at every thread count.
#include <immintrin.h>
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "float_arg.h"

namespace {

// About 64 KiB of floats per unit of work.
constexpr int64_t kBlock = 16384;
// Side of the square tiles of a transpose that moves the innermost axis (32 floats: two cache lines).
constexpr int64_t kTile = 32;
constexpr int kMaxRank = 8;

// Copies n floats (memcpy measured faster than an inlined vector loop even for a head's 64).
inline void copyRun(float* y, const float* x, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }

// The caller picks the thread count from the size (src/native/onednn_batch_norm.ts: one thread
// per 256K values), so that the tests can run the threaded loops on small arrays.
int threadsFor(int threads, int64_t units) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, units)));
}

// Copies rows of `run` floats: output row r (rows enumerated row-major over `dims`) is y[r * run ..]
// and comes from x[base + sum of index_k * strides[k] ..]. Rows longer than kBlock are cut into
// pieces, so that one long run still spreads over the threads.
void copyRuns(int threads, const float* x, float* y, int64_t run, int64_t base, const std::vector<int64_t>& dims,
              const std::vector<int64_t>& strides) {
  int64_t rows = 1;
  for (int64_t d : dims) rows *= d;
  if (rows == 0 || run == 0) return;
  const int64_t pieces = (run + kBlock - 1) / kBlock;
  const int64_t piece = (run + pieces - 1) / pieces;
  const int64_t rowsPer = pieces > 1 ? 1 : std::max<int64_t>(1, kBlock / run);
  const int64_t rowBlocks = (rows + rowsPer - 1) / rowsPer;
  const int64_t units = rowBlocks * pieces;
  const int rank = static_cast<int>(dims.size());
#pragma omp parallel for num_threads(threadsFor(threads, units)) schedule(static)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t block = u / pieces, p = u % pieces;
    const int64_t r0 = block * rowsPer, r1 = std::min(rows, r0 + rowsPer);
    const int64_t at = p * piece, len = std::min(run, at + piece) - at;
    int64_t index[kMaxRank];
    int64_t offset = base, rest = r0;
    for (int k = rank - 1; k >= 0; --k) {
      index[k] = rest % dims[k];
      rest /= dims[k];
      offset += index[k] * strides[k];
    }
    for (int64_t r = r0; r < r1; ++r) {
      copyRun(y + r * run + at, x + offset + at, len);
      // Next row: an odometer over dims.
      for (int k = rank - 1; k >= 0; --k) {
        offset += strides[k];
        if (++index[k] < dims[k]) break;
        offset -= index[k] * strides[k];
        index[k] = 0;
      }
    }
  }
}

// out[b * outStride + a] = in[a * inStride + b] for an 8x8 block: eight rows loaded, transposed in
// AVX registers (unpack, shuffle, permute), stored as eight rows.
const bool kAvx = (__builtin_cpu_init(), __builtin_cpu_supports("avx"));
__attribute__((target("avx"))) void block8(const float* in, int64_t is, float* out, int64_t os) {
  __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + is), r2 = _mm256_loadu_ps(in + 2 * is),
         r3 = _mm256_loadu_ps(in + 3 * is), r4 = _mm256_loadu_ps(in + 4 * is), r5 = _mm256_loadu_ps(in + 5 * is),
         r6 = _mm256_loadu_ps(in + 6 * is), r7 = _mm256_loadu_ps(in + 7 * is);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
               s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
               s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
               s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
               s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
               s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
               s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
               s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(out + os, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(out + 2 * os, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(out + 3 * os, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(out + 4 * os, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(out + 5 * os, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(out + 6 * os, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(out + 7 * os, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// The batched 2-D transpose: y[o + n * outStrideN + m] = x[i + m * inStrideM + n] for m < M (the
// output's innermost axis), n < N (the input's), over the outer axes `dims` with their output and
// input strides, in kTile x kTile tiles (whole ones as 8x8 AVX blocks: 2.5x the scalar loop here).
void transposeTiles(int threads, const float* x, float* y, int64_t M, int64_t N, int64_t inStrideM, int64_t outStrideN,
                    const std::vector<int64_t>& dims, const std::vector<int64_t>& outStrides,
                    const std::vector<int64_t>& inStrides) {
  int64_t outer = 1;
  for (int64_t d : dims) outer *= d;
  const int64_t tilesM = (M + kTile - 1) / kTile, tilesN = (N + kTile - 1) / kTile;
  const int64_t units = outer * tilesM * tilesN;
  const int rank = static_cast<int>(dims.size());
#pragma omp parallel for num_threads(threadsFor(threads, units)) schedule(static)
  for (int64_t u = 0; u < units; ++u) {
    int64_t rest = u / (tilesM * tilesN);
    const int64_t tile = u % (tilesM * tilesN);
    const int64_t m0 = (tile / tilesN) * kTile, n0 = (tile % tilesN) * kTile;
    const int64_t m1 = std::min(M, m0 + kTile), n1 = std::min(N, n0 + kTile);
    int64_t o = 0, i = 0;
    for (int k = rank - 1; k >= 0; --k) {
      const int64_t idx = rest % dims[k];
      rest /= dims[k];
      o += idx * outStrides[k];
      i += idx * inStrides[k];
    }
    if (kAvx && m1 - m0 == kTile && n1 - n0 == kTile) {
      for (int64_t mb = m0; mb < m1; mb += 8) {
        for (int64_t nb = n0; nb < n1; nb += 8) {
          block8(x + i + mb * inStrideM + nb, inStrideM, y + o + nb * outStrideN + mb, outStrideN);
        }
      }
      continue;
    }
    for (int64_t n = n0; n < n1; ++n) {
      float* out = y + o + n * outStrideN;
      const float* in = x + i + n;
      for (int64_t m = m0; m < m1; ++m) out[m] = in[m * inStrideM];
    }
  }
}

// y = x transposed by perm (output axis k is input axis perm[k]).
void transpose(int threads, const float* x, float* y, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& perm) {
  const int n = static_cast<int>(shape.size());
  // Size-1 axes dropped: keep[a] is axis a's new number, or -1.
  std::vector<int> keep(n, -1);
  std::vector<int64_t> s;
  for (int a = 0; a < n; ++a) {
    if (shape[a] != 1) {
      keep[a] = static_cast<int>(s.size());
      s.push_back(shape[a]);
    }
  }
  std::vector<int> p;
  for (int k = 0; k < n; ++k) {
    if (keep[perm[k]] >= 0) p.push_back(keep[perm[k]]);
  }
  // Runs of output axes that are consecutive input axes become one axis: groups[g] = first and
  // last input axis, in output order.
  std::vector<std::pair<int, int>> groups;
  for (int k = 0; k < static_cast<int>(p.size()); ++k) {
    if (!groups.empty() && p[k] == groups.back().second + 1) {
      groups.back().second = p[k];
    } else {
      groups.emplace_back(p[k], p[k]);
    }
  }
  const int r = static_cast<int>(groups.size());
  // The merged input: its axes are the groups in input order.
  std::vector<int> order(r);
  for (int g = 0; g < r; ++g) order[g] = g;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return groups[a].first < groups[b].first; });
  std::vector<int64_t> inShape(r);
  std::vector<int> P(r);  // output axis k is merged input axis P[k]
  for (int j = 0; j < r; ++j) {
    const auto& g = groups[order[j]];
    int64_t size = 1;
    for (int a = g.first; a <= g.second; ++a) size *= s[a];
    inShape[j] = size;
    P[order[j]] = j;
  }
  std::vector<int64_t> inStride(r, 1);
  for (int j = r - 2; j >= 0; --j) inStride[j] = inStride[j + 1] * inShape[j + 1];
  int64_t total = 1;
  for (int64_t d : inShape) total *= d;
  if (r <= 1) {
    copyRuns(threads, x, y, total, 0, {}, {});
    return;
  }
  if (P[r - 1] == r - 1) {
    // The innermost axis stays: whole runs.
    std::vector<int64_t> dims, strides;
    for (int k = 0; k < r - 1; ++k) {
      dims.push_back(inShape[P[k]]);
      strides.push_back(inStride[P[k]]);
    }
    copyRuns(threads, x, y, inShape[r - 1], 0, dims, strides);
    return;
  }
  std::vector<int64_t> outStride(r, 1);
  for (int k = r - 2; k >= 0; --k) outStride[k] = outStride[k + 1] * inShape[P[k + 1]];
  int j = 0;  // the output axis that is the input's innermost
  while (P[j] != r - 1) ++j;
  std::vector<int64_t> dims, outs, ins;
  for (int k = 0; k < r - 1; ++k) {
    if (k == j) continue;
    dims.push_back(inShape[P[k]]);
    outs.push_back(outStride[k]);
    ins.push_back(inStride[P[k]]);
  }
  transposeTiles(threads, x, y, inShape[P[r - 1]], inShape[r - 1], inStride[P[r - 1]], outStride[j], dims, outs, ins);
}

// y = x[begin : begin + size] (per axis).
void slice(int threads, const float* x, float* y, const std::vector<int64_t>& shape, const std::vector<int64_t>& begin,
           const std::vector<int64_t>& size) {
  const int n = static_cast<int>(shape.size());
  std::vector<int64_t> stride(n, 1);
  for (int a = n - 2; a >= 0; --a) stride[a] = stride[a + 1] * shape[a + 1];
  int64_t base = 0;
  for (int a = 0; a < n; ++a) base += begin[a] * stride[a];
  // Inner axes taken whole join the run of the axis before them.
  int k = n - 1;
  int64_t run = size[k];
  while (k > 0 && size[k] == shape[k]) run *= size[--k];
  std::vector<int64_t> dims, strides;
  for (int a = 0; a < k; ++a) {
    if (size[a] == 1) continue;
    dims.push_back(size[a]);
    strides.push_back(stride[a]);
  }
  copyRuns(threads, x, y, run, base, dims, strides);
}

// Split (toParts) or concat of [outer, sum widths] and its parts [outer, widths[k]]: each part's
// run of every row, in units of rows (short rows) or of pieces of a run (long ones).
void splitOrConcat(int threads, bool toParts, float* whole, const std::vector<float*>& parts,
                   const std::vector<int64_t>& widths, int64_t outer) {
  int64_t width = 0;
  for (int64_t w : widths) width += w;
  if (outer == 0 || width == 0) return;
  struct Piece {
    size_t part;
    int64_t at, len, wholeAt;
  };
  std::vector<Piece> pieces;
  int64_t wholeAt = 0;
  for (size_t k = 0; k < widths.size(); ++k) {
    const int64_t w = widths[k];
    const int64_t count = width > kBlock ? (w + kBlock - 1) / kBlock : (w > 0 ? 1 : 0);
    for (int64_t c = 0; c < count; ++c) {
      const int64_t at = c * kBlock;
      pieces.push_back({k, at, std::min(w, at + kBlock) - at, wholeAt + at});
    }
    wholeAt += w;
  }
  const int64_t rowsPer = width > kBlock ? 1 : std::max<int64_t>(1, kBlock / width);
  const int64_t rowBlocks = (outer + rowsPer - 1) / rowsPer;
  const int64_t count = static_cast<int64_t>(pieces.size());
  const int64_t units = rowBlocks * count;
#pragma omp parallel for num_threads(threadsFor(threads, units)) schedule(static)
  for (int64_t u = 0; u < units; ++u) {
    const Piece& p = pieces[u % count];
    const int64_t r0 = (u / count) * rowsPer, r1 = std::min(outer, r0 + rowsPer);
    const int64_t w = widths[p.part];
    for (int64_t r = r0; r < r1; ++r) {
      float* a = whole + r * width + p.wholeAt;
      float* b = parts[p.part] + r * w + p.at;
      if (toParts) {
        copyRun(b, a, p.len);
      } else {
        copyRun(a, b, p.len);
      }
    }
  }
}

// --- Node-API glue ---------------------------------------------------------------------------

bool fail(napi_env env, const std::string& message, bool range = true) {
  if (range) {
    napi_throw_range_error(env, nullptr, ("onednn: " + message).c_str());
  } else {
    napi_throw_type_error(env, nullptr, ("onednn: " + message).c_str());
  }
  return false;
}

// An Int32Array argument of `count` non-negative values (any count when count < 0).
bool intsArg(napi_env env, napi_value v, int count, const char* op, const char* what, std::vector<int64_t>* out) {
  const int32_t* d = nullptr;
  size_t length = 0;
  if (!int32Array(env, v, &d, &length)) {
    return fail(env, std::string(op) + " " + what + " must be an Int32Array", false);
  }
  if (count >= 0 && static_cast<int>(length) != count) {
    return fail(env, std::string(op) + " " + what + " has " + std::to_string(length) + " values, expected " +
                         std::to_string(count));
  }
  out->assign(d, d + length);
  for (int64_t value : *out) {
    if (value < 0) return fail(env, std::string(op) + " " + what + " has a negative value");
  }
  return true;
}

bool threadsArg(napi_env env, napi_value v, const char* usage, int* threads) {
  int32_t t = 0;
  if (napi_get_value_int32(env, v, &t) != napi_ok || t < 1) return fail(env, usage, false);
  *threads = t;
  return true;
}

bool lengthIs(napi_env env, size_t length, int64_t want, const char* op, const char* what) {
  if (static_cast<int64_t>(length) == want) return true;
  return fail(env, std::string(op) + " " + what + " has " + std::to_string(length) + " values, expected " +
                       std::to_string(want));
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

// transpose(threads, x, shape, perm, y)
napi_value Transpose(napi_env env, napi_callback_info info) {
  const char* usage = "transpose takes (threads >= 1, x, shape, perm, y)";
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int threads;
  if (argc != 5) return fail(env, usage, false), nullptr;
  if (!threadsArg(env, argv[0], usage, &threads)) return nullptr;
  std::vector<int64_t> shape, perm;
  if (!intsArg(env, argv[2], -1, "transpose", "shape", &shape)) return nullptr;
  const int n = static_cast<int>(shape.size());
  if (n > kMaxRank) return fail(env, "transpose shape has rank " + std::to_string(n) + ", at most 8"), nullptr;
  if (!intsArg(env, argv[3], n, "transpose", "perm", &perm)) return nullptr;
  std::vector<bool> seen(n, false);
  for (int64_t a : perm) {
    if (a >= n || seen[a]) return fail(env, "transpose perm is not a permutation of the shape's axes"), nullptr;
    seen[a] = true;
  }
  float *x, *y;
  size_t nx, ny;
  if (!floatArg(env, argv[1], &x, &nx, "transpose x") || !floatArg(env, argv[4], &y, &ny, "transpose y")) {
    return nullptr;
  }
  const int64_t total = product(shape);
  if (!lengthIs(env, nx, total, "transpose", "x") || !lengthIs(env, ny, total, "transpose", "y")) return nullptr;
  if (total > 0) transpose(threads, x, y, shape, perm);
  return nullptr;
}

// slice(threads, x, shape, begin, size, y)
napi_value Slice(napi_env env, napi_callback_info info) {
  const char* usage = "slice takes (threads >= 1, x, shape, begin, size, y)";
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int threads;
  if (argc != 6) return fail(env, usage, false), nullptr;
  if (!threadsArg(env, argv[0], usage, &threads)) return nullptr;
  std::vector<int64_t> shape, begin, size;
  if (!intsArg(env, argv[2], -1, "slice", "shape", &shape)) return nullptr;
  const int n = static_cast<int>(shape.size());
  if (n < 1 || n > kMaxRank) return fail(env, "slice shape has rank " + std::to_string(n) + ", 1 to 8"), nullptr;
  if (!intsArg(env, argv[3], n, "slice", "begin", &begin) || !intsArg(env, argv[4], n, "slice", "size", &size)) {
    return nullptr;
  }
  for (int a = 0; a < n; ++a) {
    if (begin[a] + size[a] > shape[a]) {
      return fail(env, "slice axis " + std::to_string(a) + " takes " + std::to_string(begin[a]) + " + " +
                           std::to_string(size[a]) + " of " + std::to_string(shape[a]) + " values"),
             nullptr;
    }
  }
  float *x, *y;
  size_t nx, ny;
  if (!floatArg(env, argv[1], &x, &nx, "slice x") || !floatArg(env, argv[5], &y, &ny, "slice y")) return nullptr;
  if (!lengthIs(env, nx, product(shape), "slice", "x") || !lengthIs(env, ny, product(size), "slice", "y")) {
    return nullptr;
  }
  if (product(size) > 0) slice(threads, x, y, shape, begin, size);
  return nullptr;
}

// splitRows(threads, x, outer, parts) / concatRows(threads, parts, outer, y): x or y [outer, W],
// parts[k] [outer, w_k] with the w_k summing to W (each part's length a multiple of outer).
napi_value SplitOrConcat(napi_env env, napi_callback_info info, bool toParts) {
  const char* op = toParts ? "splitRows" : "concatRows";
  const std::string usage = std::string(op) + (toParts ? " takes (threads >= 1, x, outer >= 1, parts[])"
                                                       : " takes (threads >= 1, parts[], outer >= 1, y)");
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int threads;
  int64_t outer = 0;
  bool isArray = false;
  if (argc != 4) return fail(env, usage, false), nullptr;
  if (!threadsArg(env, argv[0], usage.c_str(), &threads)) return nullptr;
  if (napi_get_value_int64(env, argv[2], &outer) != napi_ok || outer < 1 ||
      napi_is_array(env, argv[toParts ? 3 : 1], &isArray) != napi_ok || !isArray) {
    return fail(env, usage, false), nullptr;
  }
  napi_value list = argv[toParts ? 3 : 1];
  uint32_t count = 0;
  napi_get_array_length(env, list, &count);
  std::vector<float*> parts(count);
  std::vector<int64_t> widths(count);
  int64_t width = 0;
  for (uint32_t k = 0; k < count; ++k) {
    napi_value element;
    size_t length = 0;
    if (napi_get_element(env, list, k, &element) != napi_ok ||
        !floatArg(env, element, &parts[k], &length, std::string(op) + " part " + std::to_string(k))) {
      return nullptr;
    }
    if (static_cast<int64_t>(length) % outer != 0) {
      return fail(env, std::string(op) + " part " + std::to_string(k) + " has " + std::to_string(length) +
                           " values, not a multiple of outer " + std::to_string(outer)),
             nullptr;
    }
    widths[k] = static_cast<int64_t>(length) / outer;
    width += widths[k];
  }
  float* whole;
  size_t length = 0;
  if (!floatArg(env, argv[toParts ? 1 : 3], &whole, &length, std::string(op) + (toParts ? " x" : " y"))) return nullptr;
  if (!lengthIs(env, length, outer * width, op, toParts ? "x" : "y")) return nullptr;
  splitOrConcat(threads, toParts, whole, parts, widths, outer);
  return nullptr;
}

}  // namespace

napi_value OneDnnTranspose(napi_env env, napi_callback_info info) { return Transpose(env, info); }
napi_value OneDnnSlice(napi_env env, napi_callback_info info) { return Slice(env, info); }
napi_value OneDnnSplitRows(napi_env env, napi_callback_info info) { return SplitOrConcat(env, info, true); }
napi_value OneDnnConcatRows(napi_env env, napi_callback_info info) { return SplitOrConcat(env, info, false); }
