// Helpers shared by the same-process microbenchmarks (bench_*_micro.cc): thread CPU time,
// the median of the rounds, and reproducible input data. Not part of the library.
#pragma once

#include <stdint.h>
#include <time.h>

#include <algorithm>
#include <vector>

namespace bench_micro {

// Seconds of CPU time used by the calling thread.
inline double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Median of the values (mean of the middle two for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// n values in [-1, 1) from a linear congruential sequence seeded with s.
inline std::vector<float> filled(size_t n, uint32_t s) {
  std::vector<float> x(n);
  for (auto &v : x) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(s / 2147483648.0 - 1.0);
  }
  return x;
}

}  // namespace bench_micro
