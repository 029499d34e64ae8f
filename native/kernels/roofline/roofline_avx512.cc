// AVX-512 roofline probes.
// GCC 12 flags its own _mm512_undefined_* helpers (used inside the
// conversion and reduction intrinsics) as uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "roofline.h"

namespace dplora {
namespace linalg {

float read_probe_avx512(const float *x, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(),
         s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 u0 = _mm512_loadu_ps(x + i), u1 = _mm512_loadu_ps(x + i + 16);
    const __m512 u2 = _mm512_loadu_ps(x + i + 32), u3 = _mm512_loadu_ps(x + i + 48);
    s0 = _mm512_fmadd_ps(u0, u0, s0);
    s1 = _mm512_fmadd_ps(u1, u1, s1);
    s2 = _mm512_fmadd_ps(u2, u2, s2);
    s3 = _mm512_fmadd_ps(u3, u3, s3);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

double fma_probe_avx512(int64_t iters) {
  const __m512 m = _mm512_set1_ps(0.9999f), add = _mm512_set1_ps(1e-3f);
  __m512 v[24];
  for (int q = 0; q < 24; ++q) v[q] = _mm512_set1_ps(static_cast<float>(q + 1));
  for (int64_t i = 0; i < iters; ++i) {
#define DPL_F(q) v[q] = _mm512_fmadd_ps(v[q], m, add);
    // clang-format off
    DPL_F(0)
    DPL_F(1) DPL_F(2) DPL_F(3) DPL_F(4) DPL_F(5) DPL_F(6) DPL_F(7) DPL_F(8) DPL_F(9) DPL_F(10)
        DPL_F(11) DPL_F(12) DPL_F(13) DPL_F(14) DPL_F(15) DPL_F(16) DPL_F(17) DPL_F(18) DPL_F(19)
            DPL_F(20) DPL_F(21) DPL_F(22) DPL_F(23)
    // clang-format on
#undef DPL_F
  }
  __m512 s = v[0];
  for (int q = 1; q < 24; ++q) s = _mm512_add_ps(s, v[q]);
  return static_cast<double>(_mm512_reduce_add_ps(s));
}

}  // namespace linalg
}  // namespace dplora
