// AVX2 + FMA roofline probes.
#include <immintrin.h>

#include "roofline.h"

namespace dplora {
namespace linalg {

float read_probe_avx2(const float *x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
         s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 u0 = _mm256_loadu_ps(x + i), u1 = _mm256_loadu_ps(x + i + 8);
    const __m256 u2 = _mm256_loadu_ps(x + i + 16), u3 = _mm256_loadu_ps(x + i + 24);
    s0 = _mm256_fmadd_ps(u0, u0, s0);
    s1 = _mm256_fmadd_ps(u1, u1, s1);
    s2 = _mm256_fmadd_ps(u2, u2, s2);
    s3 = _mm256_fmadd_ps(u3, u3, s3);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  float s = 0;
  for (float v : lanes) s += v;
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

double fma_probe_avx2(int64_t iters) {
  const __m256 m = _mm256_set1_ps(0.9999f), add = _mm256_set1_ps(1e-3f);
  __m256 v[12];
  for (int q = 0; q < 12; ++q) v[q] = _mm256_set1_ps(static_cast<float>(q + 1));
  for (int64_t i = 0; i < iters; ++i) {
    v[0] = _mm256_fmadd_ps(v[0], m, add);
    v[1] = _mm256_fmadd_ps(v[1], m, add);
    v[2] = _mm256_fmadd_ps(v[2], m, add);
    v[3] = _mm256_fmadd_ps(v[3], m, add);
    v[4] = _mm256_fmadd_ps(v[4], m, add);
    v[5] = _mm256_fmadd_ps(v[5], m, add);
    v[6] = _mm256_fmadd_ps(v[6], m, add);
    v[7] = _mm256_fmadd_ps(v[7], m, add);
    v[8] = _mm256_fmadd_ps(v[8], m, add);
    v[9] = _mm256_fmadd_ps(v[9], m, add);
    v[10] = _mm256_fmadd_ps(v[10], m, add);
    v[11] = _mm256_fmadd_ps(v[11], m, add);
  }
  __m256 s = v[0];
  for (int q = 1; q < 12; ++q) s = _mm256_add_ps(s, v[q]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  double r = 0;
  for (float x : lanes) r += x;
  return r;
}

}  // namespace linalg
}  // namespace dplora
