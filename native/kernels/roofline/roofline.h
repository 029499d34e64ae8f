// Roofline probes used by the benchmarks (read bandwidth, FMA throughput).
#pragma once
#include <cstdint>

namespace dplora {
namespace linalg {

// Roofline probes: a float sum-of-squares read loop, and an FMA loop with
// enough independent accumulators to saturate the FMA units.
using ReadProbeFn = float (*)(const float *x, int64_t n);
using FmaProbeFn = double (*)(int64_t iters);

// Per-ISA kernels (the *_scalar.cc, *_avx2.cc, *_avx512.cc and *_neon.cc files).
float read_probe_scalar(const float *, int64_t);
double fma_probe_scalar(int64_t);
// 32 independent float multiply-adds per iteration (2 flops each).
constexpr double kFmaProbeFlopsScalar = 64.0;

#if defined(__x86_64__) || defined(_M_X64)
float read_probe_avx2(const float *, int64_t);
double fma_probe_avx2(int64_t);
// 12 ymm FMAs per iteration: 12 * 8 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx2 = 192.0;

float read_probe_avx512(const float *, int64_t);
double fma_probe_avx512(int64_t);
// 24 zmm FMAs per iteration: 24 * 16 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx512 = 768.0;
#endif

#if defined(__aarch64__)
float read_probe_neon(const float *, int64_t);
double fma_probe_neon(int64_t);
// 16 q-register FMAs per iteration: 16 * 4 lanes * 2 flops.
constexpr double kFmaProbeFlopsNeon = 128.0;
#endif

}  // namespace linalg
}  // namespace dplora
