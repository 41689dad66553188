// Why: PyTorch's CPU convolutions are oneDNN's direct kernels (JIT-generated AVX2/AVX-512 code
// over channel-blocked filters), and ONNX Runtime runs a trained filter through im2col + SGEMM
// (its direct NCHWc kernels only for the forward pass and the stride-1 input gradient, the filter
// gradient never). Debian ships oneDNN as libdnnl-dev, so this small Node-API addon links it and
// runs the three NHWC float32 convolutions of a training step on arrays the caller owns (views of
// the wasm heap: nothing is copied on the way in or out).
//
// Data stays NHWC (oneDNN's `nhwc` tag); the filter is TF.js's [fh, fw, Cin, Cout] (`hwio`). The
// primitives ask for the filter layout they like best (`format_tag::any`), so the filter (or the
// filter gradient) goes through one reorder per call, cached with the primitive. Primitives are
// created once per shape and geometry and kept for the life of the process.
//
// Threads: this oneDNN is built on OpenMP (libgomp); `setThreads` sets the OpenMP thread count of
// the calling thread (the main thread, or a worker thread for its own calls), where the primitives run.
#include <node_api.h>
#include <omp.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "float_arg.h"
#include "oneapi/dnnl/dnnl.hpp"

// Products (onednn_matmul.cc).
napi_value OneDnnMatMul(napi_env env, napi_callback_info info);
napi_value OneDnnMatMulImpl(napi_env env, napi_callback_info info);
// The chunked Matryoshka softmax cross-entropy (onednn_prefix_ce.cc).
napi_value OneDnnPrefixCeForward(napi_env env, napi_callback_info info);
napi_value OneDnnPrefixCeBackward(napi_env env, napi_callback_info info);
// Training-mode batch normalisation on OpenMP threads (batch_norm.cc).
napi_value OneDnnBatchNorm(napi_env env, napi_callback_info info);
napi_value OneDnnBatchNormGrad(napi_env env, napi_callback_info info);
napi_value OneDnnAddRelu(napi_env env, napi_callback_info info);
napi_value OneDnnReluGrad(napi_env env, napi_callback_info info);
napi_value OneDnnAdd(napi_env env, napi_callback_info info);
napi_value OneDnnAddRows(napi_env env, napi_callback_info info);
napi_value OneDnnGelu(napi_env env, napi_callback_info info);
napi_value OneDnnGeluGrad(napi_env env, napi_callback_info info);
// Multiply, Sub and Add broadcasts, and sums over any axes, on OpenMP threads (binary.cc).
napi_value OneDnnBroadcastBinary(napi_env env, napi_callback_info info);
napi_value OneDnnSumLeading(napi_env env, napi_callback_info info);
napi_value OneDnnSumLast(napi_env env, napi_callback_info info);
napi_value OneDnnSumMiddle(napi_env env, napi_callback_info info);
napi_value OneDnnSumAll(napi_env env, napi_callback_info info);
// The SGD-momentum update on OpenMP threads (sgd_update.cc).
napi_value OneDnnSgdMomentum(napi_env env, napi_callback_info info);
// The AdamW update on OpenMP threads (adamw_update.cc).
napi_value OneDnnAdamW(napi_env env, napi_callback_info info);
// The Matryoshka softmax cross-entropy of a head with few classes, forward and backward (prefix_ce_few.cc).
napi_value OneDnnPrefixCeFewForward(napi_env env, napi_callback_info info);
napi_value OneDnnPrefixCeFewBackward(napi_env env, napi_callback_info info);
// Dropout masks from Philox4x32-10 on OpenMP threads (dropout.cc).
napi_value OneDnnDropoutMultiplier(napi_env env, napi_callback_info info);
// Transpose, Slice, SplitV and Concat copies on OpenMP threads (layout.cc).
napi_value OneDnnTranspose(napi_env env, napi_callback_info info);
napi_value OneDnnSlice(napi_env env, napi_callback_info info);
napi_value OneDnnSplitRows(napi_env env, napi_callback_info info);
napi_value OneDnnConcatRows(napi_env env, napi_callback_info info);
// Fused multi-head attention, forward and backward, on OpenMP threads (attention.cc).
napi_value OneDnnAttention(napi_env env, napi_callback_info info);
napi_value OneDnnAttentionGrad(napi_env env, napi_callback_info info);
// Layer norm, its gradient and the last-axis softmax on OpenMP threads (layer_norm.cc).
napi_value OneDnnLayerNorm(napi_env env, napi_callback_info info);
napi_value OneDnnLayerNormGrad(napi_env env, napi_callback_info info);
napi_value OneDnnSoftmax(napi_env env, napi_callback_info info);

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// Geometry of one call: N, H, W, C, fh, fw, Cout, Ho, Wo, sh, sw, dh, dw, pt, pl (dilations as
// TF.js counts them: 1 is none).
constexpr int kDims = 15;

struct Geometry {
  memory::dim n, h, w, c, fh, fw, cout, ho, wo, sh, sw, dh, dw, pt, pl;
  memory::dims src() const { return {n, c, h, w}; }
  memory::dims dst() const { return {n, cout, ho, wo}; }
  memory::dims weights() const { return {cout, c, fh, fw}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims padL() const { return {pt, pl}; }
  // What oneDNN checks: (src - reach + pad_l + pad_r) / stride + 1 == dst, so the right pad follows
  // from the shapes (negative, above -stride, when the last rows or columns are never read).
  memory::dims padR() const {
    return {(ho - 1) * sh + (fh - 1) * dh + 1 - h - pt, (wo - 1) * sw + (fw - 1) * dw + 1 - w - pl};
  }
};

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

Context& context() {
  static Context ctx;
  return ctx;
}

// One cached convolution: the primitive, the user-layout memories whose handles are set per call,
// and the reorder between the user's filter layout and the primitive's (absent when they agree).
struct Entry {
  dnnl::primitive conv;
  std::string impl;
  int kind = 0;  // 0 forward, 1 backward data, 2 backward weights
  memory a, b, out;  // user memories: forward x, w, y; data dy, w, dx; weights x, dy, dw
  memory wUser, wPrim;  // the filter (or its gradient) in the user's and the primitive's layouts
  bool reorderW = false;
  dnnl::reorder wReorder;
};

std::unordered_map<std::string, std::unique_ptr<Entry>> cache;
// The cache and its entries' memories are shared by every Node thread that loads the addon
// (worker threads included): one convolution at a time.
std::mutex cacheMutex;

memory::desc nhwc(const memory::dims& d) { return memory::desc(d, dt::f32, tag::nhwc); }

dnnl::convolution_forward::primitive_desc forwardPd(const Geometry& g) {
  auto& ctx = context();
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                    nhwc(g.src()), memory::desc(g.weights(), dt::f32, tag::any), nhwc(g.dst()),
                                    g.strides(), g.dilates(), g.padL(), g.padR());
  return dnnl::convolution_forward::primitive_desc(d, ctx.engine);
}

std::unique_ptr<Entry> create(int kind, const Geometry& g) {
  auto& ctx = context();
  auto e = std::make_unique<Entry>();
  e->kind = kind;
  memory::desc wUserMd(g.weights(), dt::f32, tag::hwio);
  memory::desc wPrimMd;
  auto fwd = forwardPd(g);
  if (kind == 0) {
    e->conv = dnnl::convolution_forward(fwd);
    e->impl = fwd.impl_info_str();
    wPrimMd = fwd.weights_desc();
    e->a = memory(fwd.src_desc(), ctx.engine, DNNL_MEMORY_NONE);
    e->out = memory(fwd.dst_desc(), ctx.engine, DNNL_MEMORY_NONE);
  } else if (kind == 1) {
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, nhwc(g.src()),
                                            memory::desc(g.weights(), dt::f32, tag::any), nhwc(g.dst()),
                                            g.strides(), g.dilates(), g.padL(), g.padR());
    dnnl::convolution_backward_data::primitive_desc pd(d, ctx.engine, fwd);
    e->conv = dnnl::convolution_backward_data(pd);
    e->impl = pd.impl_info_str();
    wPrimMd = pd.weights_desc();
    e->a = memory(pd.diff_dst_desc(), ctx.engine, DNNL_MEMORY_NONE);
    e->out = memory(pd.diff_src_desc(), ctx.engine, DNNL_MEMORY_NONE);
  } else {
    dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, nhwc(g.src()),
                                               memory::desc(g.weights(), dt::f32, tag::any), nhwc(g.dst()),
                                               g.strides(), g.dilates(), g.padL(), g.padR());
    dnnl::convolution_backward_weights::primitive_desc pd(d, ctx.engine, fwd);
    e->conv = dnnl::convolution_backward_weights(pd);
    e->impl = pd.impl_info_str();
    wPrimMd = pd.diff_weights_desc();
    e->a = memory(pd.src_desc(), ctx.engine, DNNL_MEMORY_NONE);
    e->b = memory(pd.diff_dst_desc(), ctx.engine, DNNL_MEMORY_NONE);
  }
  e->wUser = memory(wUserMd, ctx.engine, DNNL_MEMORY_NONE);
  e->reorderW = wPrimMd != wUserMd;
  if (e->reorderW) {
    e->wPrim = memory(wPrimMd, ctx.engine);  // owned by oneDNN, reused every call
    e->wReorder = kind == 2 ? dnnl::reorder(e->wPrim, e->wUser) : dnnl::reorder(e->wUser, e->wPrim);
  }
  return e;
}

// Runs one convolution; a, b, out are the caller's arrays in the order of Entry's fields.
void execute(Entry& e, float* a, float* b, float* out) {
  auto& s = context().stream;
  memory& w = e.reorderW ? e.wPrim : e.wUser;
  if (e.kind == 0) {
    e.a.set_data_handle(a);
    e.wUser.set_data_handle(b);
    e.out.set_data_handle(out);
    if (e.reorderW) e.wReorder.execute(s, e.wUser, e.wPrim);
    e.conv.execute(s, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, e.out}});
  } else if (e.kind == 1) {
    e.a.set_data_handle(a);
    e.wUser.set_data_handle(b);
    e.out.set_data_handle(out);
    if (e.reorderW) e.wReorder.execute(s, e.wUser, e.wPrim);
    e.conv.execute(s, {{DNNL_ARG_DIFF_DST, e.a}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, e.out}});
  } else {
    e.a.set_data_handle(a);
    e.b.set_data_handle(b);
    e.wUser.set_data_handle(out);
    e.conv.execute(s, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_DIFF_DST, e.b}, {DNNL_ARG_DIFF_WEIGHTS, w}});
    if (e.reorderW) e.wReorder.execute(s, e.wPrim, e.wUser);
  }
  s.wait();
}

// --- Node-API glue ---------------------------------------------------------------------------

bool check(napi_env env, napi_status status, const char* what) {
  if (status == napi_ok) return true;
  napi_throw_error(env, nullptr, what);
  return false;
}


// conv(kind, dims: Int32Array(15), a, b, out): see Entry for what a, b and out are per kind.
napi_value Conv(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (!check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "onednn: bad arguments")) return nullptr;
  if (argc != 5) {
    napi_throw_type_error(env, nullptr, "onednn: conv takes (kind, dims, a, b, out)");
    return nullptr;
  }
  int32_t kind = 0;
  if (napi_get_value_int32(env, argv[0], &kind) != napi_ok || kind < 0 || kind > 2) {
    napi_throw_range_error(env, nullptr, "onednn: kind must be 0 (forward), 1 (data) or 2 (weights)");
    return nullptr;
  }
  const int32_t* d = nullptr;
  size_t count = 0;
  if (!int32Array(env, argv[1], &d, &count) || count != kDims) {
    napi_throw_type_error(env, nullptr, "onednn: dims must be an Int32Array of 15");
    return nullptr;
  }
  for (int i = 0; i < kDims; ++i) {
    if (d[i] < (i >= 13 ? 0 : 1)) {
      napi_throw_range_error(env, nullptr, "onednn: dims must be positive (pads non-negative)");
      return nullptr;
    }
  }
  Geometry g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  float *a, *b, *out;
  size_t la, lb, lo;
  if (!floatArg(env, argv[2], &a, &la, "a") || !floatArg(env, argv[3], &b, &lb, "b") ||
      !floatArg(env, argv[4], &out, &lo, "out"))
    return nullptr;
  const size_t xs = g.n * g.h * g.w * g.c, ys = g.n * g.ho * g.wo * g.cout, ws = g.fh * g.fw * g.c * g.cout;
  const size_t want[3][3] = {{xs, ws, ys}, {ys, ws, xs}, {xs, ys, ws}};
  if (la != want[kind][0] || lb != want[kind][1] || lo != want[kind][2]) {
    napi_throw_range_error(env, nullptr, "onednn: an array's length does not match dims");
    return nullptr;
  }
  std::string key(reinterpret_cast<const char*>(d), sizeof(int32_t) * kDims);
  key.push_back(static_cast<char>(kind));
  try {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, create(kind, g)).first;
    execute(*it->second, a, b, out);
  } catch (const dnnl::error& err) {
    std::string message = std::string("onednn: ") + err.what();
    napi_throw_error(env, nullptr, message.c_str());
    return nullptr;
  }
  return nullptr;
}

// impl(kind, dims): the implementation oneDNN chose for that convolution (creates it if needed).
napi_value Impl(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t kind = 0;
  napi_get_value_int32(env, argv[0], &kind);
  const int32_t* d = nullptr;
  size_t count = 0;
  if (argc != 2 || kind < 0 || kind > 2 || !int32Array(env, argv[1], &d, &count) || count != kDims) {
    napi_throw_type_error(env, nullptr, "onednn: impl takes (kind, dims: Int32Array of 15)");
    return nullptr;
  }
  Geometry g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  std::string key(reinterpret_cast<const char*>(d), sizeof(int32_t) * kDims);
  key.push_back(static_cast<char>(kind));
  try {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, create(kind, g)).first;
    napi_value result;
    napi_create_string_utf8(env, it->second->impl.c_str(), NAPI_AUTO_LENGTH, &result);
    return result;
  } catch (const dnnl::error& err) {
    std::string message = std::string("onednn: ") + err.what();
    napi_throw_error(env, nullptr, message.c_str());
    return nullptr;
  }
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, nullptr, "onednn: setThreads takes a positive integer");
    return nullptr;
  }
  omp_set_num_threads(n);
  return nullptr;
}

napi_value Version(napi_env env, napi_callback_info) {
  const dnnl_version_t* v = dnnl_version();
  std::string s = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  napi_value result;
  napi_create_string_utf8(env, s.c_str(), NAPI_AUTO_LENGTH, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv", nullptr, Conv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"impl", nullptr, Impl, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, OneDnnMatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmulImpl", nullptr, OneDnnMatMulImpl, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"prefixCeForward", nullptr, OneDnnPrefixCeForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"prefixCeBackward", nullptr, OneDnnPrefixCeBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"prefixCeFewForward", nullptr, OneDnnPrefixCeFewForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"prefixCeFewBackward", nullptr, OneDnnPrefixCeFewBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, OneDnnBatchNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormGrad", nullptr, OneDnnBatchNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addRelu", nullptr, OneDnnAddRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reluGrad", nullptr, OneDnnReluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"add", nullptr, OneDnnAdd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addRows", nullptr, OneDnnAddRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, OneDnnGelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, OneDnnGeluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"broadcastBinary", nullptr, OneDnnBroadcastBinary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumLeading", nullptr, OneDnnSumLeading, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumLast", nullptr, OneDnnSumLast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumMiddle", nullptr, OneDnnSumMiddle, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumAll", nullptr, OneDnnSumAll, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgdMomentum", nullptr, OneDnnSgdMomentum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamW", nullptr, OneDnnAdamW, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"transpose", nullptr, OneDnnTranspose, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"slice", nullptr, OneDnnSlice, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"splitRows", nullptr, OneDnnSplitRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"concatRows", nullptr, OneDnnConcatRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, OneDnnAttention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, OneDnnAttentionGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, OneDnnLayerNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, OneDnnLayerNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, OneDnnSoftmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dropoutMultiplier", nullptr, OneDnnDropoutMultiplier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
