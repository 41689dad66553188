// The vectorisable float32 exp the addon's softmax cross-entropy kernels share
// (onednn_prefix_ce.cc, prefix_ce_few.cc).
#pragma once

#include <cstdint>

// exp(x) for float32 (Cephes' expf: a degree-6 polynomial on [-ln2/2, ln2/2] times 2^n; about one
// ulp), written so that GCC vectorises it: n is rounded by adding and subtracting 1.5 * 2^23 (no
// floor call), 2^n is built from its bits, and the clamps are selects. The reduction and the
// polynomial are fused multiply-adds, spelled out (the build has -ffp-contract=off), so every
// clone rounds alike: the AVX-512 and AVX2 clones in one instruction each, the baseline one
// through libm's correctly rounded fmaf (slow, and only for CPUs from before 2013). NaN stays
// NaN; anything below -87.34 gives about 1e-38, above 88.38 the largest power. `kUpper` false
// drops the upper clamp where the caller knows x <= 0 (x - max of its row).
template <bool kUpper = true>
inline __attribute__((always_inline)) float expApprox(float x) {
  if (kUpper) x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  const float fx = __builtin_fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
  float r = __builtin_fmaf(fx, -0.693359375f, x);
  r = __builtin_fmaf(fx, 2.12194440e-4f, r);
  float y = 1.9875691500e-4f;
  y = __builtin_fmaf(y, r, 1.3981999507e-3f);
  y = __builtin_fmaf(y, r, 8.3334519073e-3f);
  y = __builtin_fmaf(y, r, 4.1665795894e-2f);
  y = __builtin_fmaf(y, r, 1.6666665459e-1f);
  y = __builtin_fmaf(y, r, 5.0000001201e-1f);
  y = __builtin_fmaf(y, r * r, r + 1.0f);
  const int32_t bits = (static_cast<int32_t>(fx) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
}
