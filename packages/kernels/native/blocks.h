// The one way the addon's elementwise and update loops split their values between threads.
#pragma once

#include <algorithm>
#include <cstdint>

// Calls f(at, len) for consecutive blocks of `block` values covering [0, n), on up to `threads`
// OpenMP threads with a static schedule, or on one thread below `minParallel` values. Each value
// is handled by one call whatever the thread count, so results do not depend on it.
template <typename F>
void parallelBlocks(int threads, int64_t n, int64_t block, int64_t minParallel, F f) {
  const int64_t count = (n + block - 1) / block;
  const int use = n < minParallel ? 1 : static_cast<int>(std::min<int64_t>(threads, count));
#pragma omp parallel for num_threads(use) schedule(static)
  for (int64_t k = 0; k < count; ++k) f(k * block, std::min(block, n - k * block));
}
