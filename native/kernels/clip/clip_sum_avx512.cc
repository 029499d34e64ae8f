// AVX-512 clipped-sum kernel (see clip_sum.h): float reads converted to
// double, fused multiply-adds into register blocks (8 narrow rows x 16
// columns, or 64 columns when np == 1), one addition into `out` per block.
// Every element sees the same arithmetic whether it falls in a full or a
// masked block, so results do not depend on q0, q1 (the thread split).
// GCC 12 flags its own _mm512_undefined_* helpers as uninitialized: a false
// positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "clip_sum.h"

namespace dplora {
namespace clip {
namespace {

inline __mmask16 mask16(int64_t n) {
  return n <= 0    ? 0
         : n >= 16 ? static_cast<__mmask16>(0xFFFF)
                   : static_cast<__mmask16>((1u << n) - 1u);
}
inline __mmask8 mask8(int64_t n) {
  return n <= 0 ? 0 : n >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << n) - 1u);
}

// out[q * qs] += acc (8 doubles at column k) for the first n of them.
inline void add_out(double *out, int64_t k, int64_t qs, __m512d acc, int64_t n) {
  if (n <= 0) return;
  if (qs == 1) {
    const __mmask8 m = mask8(n);
    double *o = out + k;
    _mm512_mask_storeu_pd(o, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, o), acc));
    return;
  }
  alignas(64) double t[8];
  _mm512_store_pd(t, acc);
  for (int64_t q = 0; q < n && q < 8; ++q) out[(k + q) * qs] += t[q];
}

void one_row(const double *nar, const float *wide, int64_t nw, const int64_t *rows, int64_t m,
             int64_t q0, int64_t q1, double *out, int64_t qs) {
  for (int64_t k0 = q0; k0 < q1; k0 += 64) {
    __mmask16 mk[4];
    for (int v = 0; v < 4; ++v) mk[v] = mask16(q1 - k0 - 16 * v);
    __m512d acc[8];
    for (int v = 0; v < 8; ++v) acc[v] = _mm512_setzero_pd();
    for (int64_t i = 0; i < m; ++i) {
      const float *w = wide + rows[i] * nw + k0;
      const __m512d c = _mm512_set1_pd(nar[i]);
      for (int v = 0; v < 4; ++v) {
        const __m512 x = _mm512_maskz_loadu_ps(mk[v], w + 16 * v);
        acc[2 * v] = _mm512_fmadd_pd(c, _mm512_cvtps_pd(_mm512_castps512_ps256(x)), acc[2 * v]);
        acc[2 * v + 1] =
            _mm512_fmadd_pd(c, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)), acc[2 * v + 1]);
      }
    }
    for (int v = 0; v < 8; ++v) add_out(out, k0 + 8 * v, qs, acc[v], q1 - k0 - 8 * v);
  }
}

}  // namespace

void outer_sum_avx512(const double *nar, int64_t np, int64_t ns, const float *wide, int64_t nw,
                      const int64_t *rows, int64_t m, int64_t q0, int64_t q1, double *out,
                      int64_t ps, int64_t qs) {
  if (np == 1) {
    one_row(nar, wide, nw, rows, m, q0, q1, out, qs);
    return;
  }
  for (int64_t k0 = q0; k0 < q1; k0 += 16) {
    const __mmask16 mk = mask16(q1 - k0);
    for (int64_t p0 = 0; p0 < np; p0 += 8) {
      __m512d lo[8], hi[8];
      for (int p = 0; p < 8; ++p) lo[p] = hi[p] = _mm512_setzero_pd();
      for (int64_t i = 0; i < m; ++i) {
        const __m512 x = _mm512_maskz_loadu_ps(mk, wide + rows[i] * nw + k0);
        const __m512d xl = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
        const __m512d xh = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
        const double *c = nar + i * ns + p0;
        for (int p = 0; p < 8; ++p) {
          const __m512d b = _mm512_set1_pd(c[p]);
          lo[p] = _mm512_fmadd_pd(b, xl, lo[p]);
          hi[p] = _mm512_fmadd_pd(b, xh, hi[p]);
        }
      }
      const int64_t pc = np - p0 < 8 ? np - p0 : 8;
      for (int64_t p = 0; p < pc; ++p) {
        double *o = out + (p0 + p) * ps;
        add_out(o, k0, qs, lo[p], q1 - k0);
        add_out(o, k0 + 8, qs, hi[p], q1 - k0 - 8);
      }
    }
  }
}

}  // namespace clip
}  // namespace dplora
