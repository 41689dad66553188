// The products of native/attention.cc's fused attention (packages/kernels), per (batch, head)
// pair on one thread: its register-blocked loops (4 x 16 accumulators, no FMA) against oneDNN's
// matmul primitive created for one thread with strided descriptors (q, k, v read in place from
// the qkv layout [T, 9 heads, 64]), for ViT-tiny (T 65, 48 pairs) and a BERT-like T 128 (32
// pairs); the forward's two products per pair (S = q k^T scale, O = P v), three repetitions
// (the first pays oneDNN's JIT).
// Build and run: g++ -O2 -ffp-contract=off -std=c++17 -fopenmp bench/attention-onednn-probe.cc \
//   -o /tmp/attention-probe -ldnnl && /tmp/attention-probe 65 48 && /tmp/attention-probe 128 32
// Measured (2-core container, AVX-512, loaded): T 65: loops 0.74 ms, oneDNN 0.71 ms; T 128:
// loops 1.64-1.76 ms, oneDNN 1.32 ms. The loops stay: equal at ViT's shape, their results are the
// same bits on every CPU (oneDNN's FMA kernels differ between AVX2 and AVX-512), and they need no
// primitive cache.
#include <omp.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <algorithm>
#include "oneapi/dnnl/dnnl.hpp"
#define MRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
typedef float V16 __attribute__((vector_size(64)));
MRL_CLONES void product(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m, int64_t n, int64_t depth,
                        float alpha, float* c, int64_t ldc) {
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    const float* a0 = a + i0 * lda; const float* a1 = a0 + lda; const float* a2 = a1 + lda; const float* a3 = a2 + lda;
    const int64_t rows = std::min<int64_t>(4, m - i0);
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
      V16 c0 = {}, c1 = {}, c2 = {}, c3 = {};
      const float* bk = b + j0;
      for (int64_t k = 0; k < depth; ++k, bk += ldb) {
        V16 bv; std::memcpy(&bv, bk, sizeof bv);
        c0 += a0[k] * bv; c1 += a1[k] * bv; c2 += a2[k] * bv; c3 += a3[k] * bv;
      }
      const V16 acc[4] = {c0 * alpha, c1 * alpha, c2 * alpha, c3 * alpha};
      const int64_t cols = std::min<int64_t>(16, n - j0);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(c + (i0 + r) * ldc + j0, &acc[r], cols * sizeof(float));
    }
  }
}
using namespace dnnl;
using dims = memory::dims;
int main(int argc, char** argv) {
  int T = atoi(argv[1]), dh = 64, pairs = atoi(argv[2]);
  int tr = (T + 3) / 4 * 4, tc = (T + 15) / 16 * 16, dc = 64;
  std::vector<float> A(tr * tc, 0.5f), B(tc * tc, 0.25f), C(tr * tc);
  // loops: S = Q K^T (A [T,dh] lda dc, B kT [dh, tc]); O = P V (A [T,T] lda tc, B [T, dc]) x 3 for backward-like
  omp_set_num_threads(1);
  engine eng(engine::kind::cpu, 0); stream st(eng);
  auto md = [](dims d, dims s) { return memory::desc(d, memory::data_type::f32, s); };
  // S = Q K^T : src [T, dh] strides {rs,1}, wei [dh, T] strides {1, rs} (k read in place), dst [T,T] {T,1}
  int rs = 9 * 64;
  std::vector<float> qkv(T * rs, 0.1f), P(T * T), O(T * rs);
  matmul::primitive_desc pd1(matmul::desc(md({T, dh}, {rs, 1}), md({dh, T}, {1, rs}), md({T, T}, {T, 1})), eng);
  matmul::primitive_desc pd2(matmul::desc(md({T, T}, {T, 1}), md({T, dh}, {rs, 1}), md({T, dh}, {rs, 1})), eng);
  matmul m1(pd1), m2(pd2);
  memory q(pd1.src_desc(), eng, qkv.data()), k(pd1.weights_desc(), eng, qkv.data() + 64), s(pd1.dst_desc(), eng, P.data());
  memory p2(pd2.src_desc(), eng, P.data()), v(pd2.weights_desc(), eng, qkv.data() + 128), o(pd2.dst_desc(), eng, O.data());
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (int p = 0; p < pairs; ++p) {
      product(A.data(), dc, B.data(), tc, T, T, dh, 0.125f, C.data(), tc);
      product(A.data(), tc, B.data(), dc, T, dh, T, 1.0f, C.data(), tc);
    }
    auto t1 = std::chrono::steady_clock::now();
    for (int p = 0; p < pairs; ++p) {
      q.set_data_handle(qkv.data()); k.set_data_handle(qkv.data() + 64);
      m1.execute(st, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, k}, {DNNL_ARG_DST, s}});
      m2.execute(st, {{DNNL_ARG_SRC, p2}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
    }
    st.wait();
    auto t2 = std::chrono::steady_clock::now();
    printf("T %d, %d pairs, 2 products each: loops %.2f ms, oneDNN %.2f ms (%s)\n", T, pairs,
           std::chrono::duration<double, std::milli>(t1 - t0).count(), std::chrono::duration<double, std::milli>(t2 - t1).count(), pd1.impl_info_str());
  }
}
