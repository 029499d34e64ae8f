// AVX-512 per-sample norm kernels, double accumulation throughout.
// GCC 12 flags its own _mm512_undefined_* helpers (used inside the
// conversion and reduction intrinsics) as uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "avx512_masks.h"
#include "norms.h"

namespace dplora {
namespace linalg {
namespace {

// 8 rows of G (g columns pre-converted in gb[t*8+r]) times 16 columns of a.
template <bool MASK>
inline void direct_block(const float *a, int64_t d, const double *gb, int64_t T, __mmask16 mask,
                         int64_t ahead, const float *next, __m512d &sq0, __m512d &sq1) {
#define DPL_DECL(r) __m512d acc##r##0 = _mm512_setzero_pd(), acc##r##1 = _mm512_setzero_pd();
  // clang-format off
  DPL_DECL(0)
  DPL_DECL(1) DPL_DECL(2) DPL_DECL(3) DPL_DECL(4) DPL_DECL(5) DPL_DECL(6) DPL_DECL(7)
  // clang-format on
#undef DPL_DECL
      for (int64_t t = 0; t < T; ++t) {
    if (ahead) _mm_prefetch(reinterpret_cast<const char *>(a + t * d + ahead), _MM_HINT_T0);
    if (next) _mm_prefetch(reinterpret_cast<const char *>(next + t * d), _MM_HINT_T1);
    const __m512 av = MASK ? _mm512_maskz_loadu_ps(mask, a + t * d) : _mm512_loadu_ps(a + t * d);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(av));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(av, 1));
    const double *gr = gb + t * 8;
#define DPL_ROW(r)                                 \
  {                                                \
    const __m512d x = _mm512_set1_pd(gr[r]);       \
    acc##r##0 = _mm512_fmadd_pd(x, lo, acc##r##0); \
    acc##r##1 = _mm512_fmadd_pd(x, hi, acc##r##1); \
  }
    // clang-format off
    DPL_ROW(0) DPL_ROW(1) DPL_ROW(2) DPL_ROW(3) DPL_ROW(4) DPL_ROW(5) DPL_ROW(6) DPL_ROW(7)
    // clang-format on
#undef DPL_ROW
  }
#define DPL_SQ(r)                                   \
  sq0 = _mm512_fmadd_pd(acc##r##0, acc##r##0, sq0); \
  sq1 = _mm512_fmadd_pd(acc##r##1, acc##r##1, sq1);
  // clang-format off
  DPL_SQ(0) DPL_SQ(1) DPL_SQ(2) DPL_SQ(3) DPL_SQ(4) DPL_SQ(5) DPL_SQ(6) DPL_SQ(7)
  // clang-format on
#undef DPL_SQ
}

inline __m512d load8(const float *p, __mmask8 m, bool masked) {
  return _mm512_cvtps_pd(masked ? _mm256_maskz_loadu_ps(m, p) : _mm256_loadu_ps(p));
}

// Dot products of 4 rows with 4 rows (length n), in double.
inline void dot_block(const float *const *tr, const float *const *sr, int64_t n, double out[4][4]) {
  __m512d acc[4][4];
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm512_setzero_pd();
  for (int64_t k = 0; k < n; k += 8) {
    const bool masked = k + 8 > n;
    const __mmask8 m = mask8(n - k);
    const __m512d s0 = load8(sr[0] + k, m, masked), s1 = load8(sr[1] + k, m, masked);
    const __m512d s2 = load8(sr[2] + k, m, masked), s3 = load8(sr[3] + k, m, masked);
    for (int r = 0; r < 4; ++r) {
      const __m512d x = load8(tr[r] + k, m, masked);
      acc[r][0] = _mm512_fmadd_pd(x, s0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_pd(x, s1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_pd(x, s2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_pd(x, s3, acc[r][3]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) out[r][q] = _mm512_reduce_add_pd(acc[r][q]);
}

}  // namespace

double sumsq_avx512(const float *x, int64_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 u = _mm512_loadu_ps(x + i), v = _mm512_loadu_ps(x + i + 16);
    const __m512d u0 = _mm512_cvtps_pd(_mm512_castps512_ps256(u));
    const __m512d u1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(u, 1));
    const __m512d v0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d v1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    s0 = _mm512_fmadd_pd(u0, u0, s0);
    s1 = _mm512_fmadd_pd(u1, u1, s1);
    s2 = _mm512_fmadd_pd(v0, v0, s2);
    s3 = _mm512_fmadd_pd(v1, v1, s3);
  }
  for (; i < n; i += 8) {
    const __m512d u = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask8(n - i), x + i));
    s0 = _mm512_fmadd_pd(u, u, s0);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

double norm_direct_avx512(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                          double *gbuf, const float *pf, int64_t pf_n) {
  __m512d sq0 = _mm512_setzero_pd(), sq1 = _mm512_setzero_pd();
  direct_norm_loop<8, 16>(
      a, g, T, d, p, gbuf, pf, pf_n,
      [&](const float *ak, const double *gb, int64_t cols, int64_t ahead, const float *next) {
        if (cols == 16) {
          direct_block<false>(ak, d, gb, T, 0, ahead, next, sq0, sq1);
        } else {
          direct_block<true>(ak, d, gb, T, mask16(cols), ahead, next, sq0, sq1);
        }
      });
  return _mm512_reduce_add_pd(_mm512_add_pd(sq0, sq1));
}

double norm_ghost_avx512(const float *a, const float *g, int64_t T, int64_t d, int64_t p, double *,
                         const float *, int64_t) {
  return ghost_norm_loop<4>(a, g, T, d, p,
                            [](const float *const *x, const float *const *y, int64_t n,
                               double(&out)[4][4]) { dot_block(x, y, n, out); });
}

}  // namespace linalg
}  // namespace dplora
