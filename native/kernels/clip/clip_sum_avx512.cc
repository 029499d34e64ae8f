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

#include "avx512_masks.h"
#include "clip_sum.h"

namespace dplora {
namespace clip {
namespace {

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

// The accumulators are named variables (an array of vectors indexed after
// the loop would be kept in memory, one store per multiply-add).
void one_row(const double *nar, const float *wide, int64_t nw, const int64_t *rows, int64_t m,
             int64_t q0, int64_t q1, double *out, int64_t qs) {
  for (int64_t k0 = q0; k0 < q1; k0 += 64) {
    const __mmask16 m0 = mask16(q1 - k0), m1 = mask16(q1 - k0 - 16);
    const __mmask16 m2 = mask16(q1 - k0 - 32), m3 = mask16(q1 - k0 - 48);
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t i = 0; i < m; ++i) {
      const float *w = wide + rows[i] * nw + k0;
      const __m512d c = _mm512_set1_pd(nar[i]);
      // The rows are strided: fetch this row's next block ahead of use.
      for (int l = 4; l < 8; ++l)
        _mm_prefetch(reinterpret_cast<const char *>(w + 16 * l), _MM_HINT_T0);
#define DPL_STEP(v, mk, lo, hi)                                                 \
  {                                                                             \
    const __m512 x = _mm512_maskz_loadu_ps(mk, w + 16 * v);                     \
    lo = _mm512_fmadd_pd(c, _mm512_cvtps_pd(_mm512_castps512_ps256(x)), lo);    \
    hi = _mm512_fmadd_pd(c, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)), hi); \
  }
      DPL_STEP(0, m0, a0, a1)
      DPL_STEP(1, m1, a2, a3)
      DPL_STEP(2, m2, a4, a5)
      DPL_STEP(3, m3, a6, a7)
#undef DPL_STEP
    }
    const __m512d acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
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
      __m512d l0 = _mm512_setzero_pd(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0, l6 = l0,
              l7 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0, h4 = l0, h5 = l0, h6 = l0, h7 = l0;
      for (int64_t i = 0; i < m; ++i) {
        const float *w = wide + rows[i] * nw + k0;
        // The rows are strided: fetch this row four blocks ahead of use.
        _mm_prefetch(reinterpret_cast<const char *>(w + 64), _MM_HINT_T0);
        const __m512 x = _mm512_maskz_loadu_ps(mk, w);
        const __m512d xl = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
        const __m512d xh = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
        const double *c = nar + i * ns + p0;
#define DPL_ROW(p)                          \
  {                                         \
    const __m512d b = _mm512_set1_pd(c[p]); \
    l##p = _mm512_fmadd_pd(b, xl, l##p);    \
    h##p = _mm512_fmadd_pd(b, xh, h##p);    \
  }
        DPL_ROW(0) DPL_ROW(1) DPL_ROW(2) DPL_ROW(3) DPL_ROW(4) DPL_ROW(5) DPL_ROW(6) DPL_ROW(7)
#undef DPL_ROW
      }
      const __m512d lo[8] = {l0, l1, l2, l3, l4, l5, l6, l7};
      const __m512d hi[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
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
