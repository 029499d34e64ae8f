// Roofline probes for the benchmarks: read bandwidth of a sum-of-squares
// loop and the FMA throughput, both over all pool threads and timed here.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

extern "C" double dplora_bench_read_bandwidth(const float *x, int64_t n, int repeats,
                                              double *checksum) {
  if (x == nullptr || n <= 0 || repeats <= 0) return 0.0;
  const auto &K = dplora::kernels();
  std::mutex mu;
  double sum = 0;
  const int64_t grain = std::max<int64_t>(4096, n / (4 * std::max(1, dplora_num_threads())));
  const double t0 = now_s();
  for (int r = 0; r < repeats; ++r) {
    dplora::parallel_for(n, grain, [&](int64_t b, int64_t e) {
      const double v = K.read_probe(x + b, e - b);
      std::lock_guard<std::mutex> lk(mu);
      sum += v;
    });
  }
  const double dt = now_s() - t0;
  if (checksum) *checksum = sum;
  return dt > 0 ? static_cast<double>(n) * sizeof(float) * repeats / dt : 0.0;
}

extern "C" double dplora_bench_fma_peak(int64_t iters, double *checksum) {
  if (iters <= 0) return 0.0;
  const auto &K = dplora::kernels();
  const int threads = dplora_num_threads();
  std::mutex mu;
  double sum = 0;
  const double t0 = now_s();
  dplora::parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double v = K.fma_probe(iters);
      std::lock_guard<std::mutex> lk(mu);
      sum += v;
    }
  });
  const double dt = now_s() - t0;
  if (checksum) *checksum = sum;
  return dt > 0 ? K.fma_flops_per_iter * static_cast<double>(iters) * threads / dt : 0.0;
}
