// Helpers shared by the same-process microbenchmarks (bench_*_micro.cc, bench_gemm_blocks.cc):
// thread CPU time, the median of the rounds, reproducible input data and one round of the FMA
// peak probes. Not part of the library.
#pragma once

#include <stdint.h>
#include <time.h>

#include <algorithm>
#include <vector>

#include "roofline.h"

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

#if defined(__x86_64__) || defined(_M_X64)
// One round of the FMA peak probes, AVX-512 then AVX2, in thread CPU time: each peak (FLOP/s)
// appended to pk512 and pk2.
inline void probe_fma_peaks(std::vector<double> *pk512, std::vector<double> *pk2) {
  namespace L = dplora::linalg;
  volatile double sink = 0;
  const double t0 = cpu_now();
  sink = sink + L::fma_probe_avx512(200000);
  const double t1 = cpu_now();
  sink = sink + L::fma_probe_avx2(400000);
  const double t2 = cpu_now();
  pk512->push_back(200000 * L::kFmaProbeFlopsAvx512 / (t1 - t0));
  pk2->push_back(400000 * L::kFmaProbeFlopsAvx2 / (t2 - t1));
}
#endif

}  // namespace bench_micro
