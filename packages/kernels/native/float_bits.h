// A float32's bits and back, for the kernels that reproduce XNNPACK's exponentials bit for bit
// (batch_norm.cc's sigmoid, layer_norm.cc's softmax): 2^n is built from its exponent bits there.
#pragma once

#include <cstdint>
#include <cstring>

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t floatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
