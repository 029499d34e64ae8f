// AVX2 clipped-sum kernel (see clip_sum.h): float reads converted to double,
// fused multiply-adds into register blocks (4 narrow rows x 8 columns, or 32
// columns when np == 1), one addition into `out` per block.  Tail columns
// are read through a zero-filled copy and get the same arithmetic as full
// blocks, so results do not depend on q0, q1 (the thread split).
#include <immintrin.h>

#include "clip_sum.h"

namespace dplora {
namespace clip {
namespace {

// 8 floats of w (n of them valid, the rest read as 0), as two double vectors.
inline void load8(const float *w, int64_t n, __m256d &lo, __m256d &hi) {
  __m256 x;
  if (n >= 8) {
    x = _mm256_loadu_ps(w);
  } else {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 0 ? 0 : n)), idx);
    x = _mm256_maskload_ps(w, mk);
  }
  lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
  hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
}

// out[q * qs] += acc (4 doubles at column k) for the first n of them.
inline void add_out(double *out, int64_t k, int64_t qs, __m256d acc, int64_t n) {
  if (n <= 0) return;
  if (qs == 1 && n >= 4) {
    double *o = out + k;
    _mm256_storeu_pd(o, _mm256_add_pd(_mm256_loadu_pd(o), acc));
    return;
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, acc);
  for (int64_t q = 0; q < n && q < 4; ++q) out[(k + q) * qs] += t[q];
}

// The accumulators are named variables (an array of vectors indexed after
// the loop would be kept in memory, one store per multiply-add).
void one_row(const double *nar, const float *wide, int64_t nw, const int64_t *rows, int64_t m,
             int64_t q0, int64_t q1, double *out, int64_t qs) {
  for (int64_t k0 = q0; k0 < q1; k0 += 32) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t i = 0; i < m; ++i) {
      const float *w = wide + rows[i] * nw + k0;
      const __m256d c = _mm256_set1_pd(nar[i]);
      // The rows are strided: fetch this row's next block ahead of use.
      _mm_prefetch(reinterpret_cast<const char *>(w + 32), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char *>(w + 48), _MM_HINT_T0);
#define DPL_STEP(v, lo, hi)                    \
  {                                            \
    __m256d xl, xh;                            \
    load8(w + 8 * v, q1 - k0 - 8 * v, xl, xh); \
    lo = _mm256_fmadd_pd(c, xl, lo);           \
    hi = _mm256_fmadd_pd(c, xh, hi);           \
  }
      DPL_STEP(0, a0, a1)
      DPL_STEP(1, a2, a3)
      DPL_STEP(2, a4, a5)
      DPL_STEP(3, a6, a7)
#undef DPL_STEP
    }
    const __m256d acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int v = 0; v < 8; ++v) add_out(out, k0 + 4 * v, qs, acc[v], q1 - k0 - 4 * v);
  }
}

}  // namespace

void outer_sum_avx2(const double *nar, int64_t np, int64_t ns, const float *wide, int64_t nw,
                    const int64_t *rows, int64_t m, int64_t q0, int64_t q1, double *out, int64_t ps,
                    int64_t qs) {
  if (np == 1) {
    one_row(nar, wide, nw, rows, m, q0, q1, out, qs);
    return;
  }
  for (int64_t k0 = q0; k0 < q1; k0 += 8) {
    const int64_t n = q1 - k0;
    for (int64_t p0 = 0; p0 < np; p0 += 4) {
      __m256d l0 = _mm256_setzero_pd(), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0,
              h3 = l0;
      for (int64_t i = 0; i < m; ++i) {
        __m256d xl, xh;
        const float *w = wide + rows[i] * nw + k0;
        // The rows are strided: fetch this row's line eight blocks ahead.
        if (p0 == 0 && (k0 & 15) == 0)
          _mm_prefetch(reinterpret_cast<const char *>(w + 64), _MM_HINT_T0);
        load8(w, n, xl, xh);
        const double *c = nar + i * ns + p0;
#define DPL_ROW(p)                                \
  {                                               \
    const __m256d b = _mm256_broadcast_sd(c + p); \
    l##p = _mm256_fmadd_pd(b, xl, l##p);          \
    h##p = _mm256_fmadd_pd(b, xh, h##p);          \
  }
        DPL_ROW(0) DPL_ROW(1) DPL_ROW(2) DPL_ROW(3)
#undef DPL_ROW
      }
      const __m256d lo[4] = {l0, l1, l2, l3};
      const __m256d hi[4] = {h0, h1, h2, h3};
      const int64_t pc = np - p0 < 4 ? np - p0 : 4;
      for (int64_t p = 0; p < pc; ++p) {
        double *o = out + (p0 + p) * ps;
        add_out(o, k0, qs, lo[p], n);
        add_out(o, k0 + 4, qs, hi[p], n - 4);
      }
    }
  }
}

}  // namespace clip
}  // namespace dplora
