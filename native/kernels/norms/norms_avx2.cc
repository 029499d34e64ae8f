// AVX2 + FMA per-sample norm kernels, double accumulation throughout
// (float products are exact in double, so cancelling tokens stay accurate).
#include <immintrin.h>

#include <algorithm>

#include "norms.h"

namespace dplora {
namespace linalg {
namespace {

inline double hsum(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(lo) + _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo));
}

// Mask with the first `n` (0..8) 32-bit lanes set.
inline __m256i lane_mask8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}
inline __m128i lane_mask4(int64_t n) {
  const __m128i idx = _mm_setr_epi32(0, 1, 2, 3);
  return _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(n)), idx);
}

// One t step of a 4 x 8 tile of G (ri0/ri1: row i, the low/high 4 of the 8
// columns): widens the 8 floats av of a to double and adds gr[i] * av to row i.
// Registers by reference so that, inlined, the tile stays in registers.
inline void tile_step(__m256 av, const double *gr, __m256d &r00, __m256d &r01, __m256d &r10,
                      __m256d &r11, __m256d &r20, __m256d &r21, __m256d &r30, __m256d &r31) {
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(av));
  const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(av, 1));
  __m256d x = _mm256_broadcast_sd(gr + 0);
  r00 = _mm256_fmadd_pd(x, lo, r00);
  r01 = _mm256_fmadd_pd(x, hi, r01);
  x = _mm256_broadcast_sd(gr + 1);
  r10 = _mm256_fmadd_pd(x, lo, r10);
  r11 = _mm256_fmadd_pd(x, hi, r11);
  x = _mm256_broadcast_sd(gr + 2);
  r20 = _mm256_fmadd_pd(x, lo, r20);
  r21 = _mm256_fmadd_pd(x, hi, r21);
  x = _mm256_broadcast_sd(gr + 3);
  r30 = _mm256_fmadd_pd(x, lo, r30);
  r31 = _mm256_fmadd_pd(x, hi, r31);
}

// 4 rows of G (g columns j0..j0+3, pre-converted to double in gb[t*4+r])
// times 8 columns of a starting at `a`; adds the squares to sq0/sq1.
template <bool MASK>
inline void direct_block(const float *a, int64_t d, const double *gb, int64_t T, __m256i mask,
                         int64_t ahead, const float *next, __m256d &sq0, __m256d &sq1) {
  __m256d r00 = _mm256_setzero_pd(), r01 = _mm256_setzero_pd();
  __m256d r10 = _mm256_setzero_pd(), r11 = _mm256_setzero_pd();
  __m256d r20 = _mm256_setzero_pd(), r21 = _mm256_setzero_pd();
  __m256d r30 = _mm256_setzero_pd(), r31 = _mm256_setzero_pd();
  for (int64_t t = 0; t < T; ++t) {
    if (ahead) _mm_prefetch(reinterpret_cast<const char *>(a + t * d + ahead), _MM_HINT_T0);
    if (next) _mm_prefetch(reinterpret_cast<const char *>(next + t * d), _MM_HINT_T1);
    const __m256 av = MASK ? _mm256_maskload_ps(a + t * d, mask) : _mm256_loadu_ps(a + t * d);
    tile_step(av, gb + t * 4, r00, r01, r10, r11, r20, r21, r30, r31);
  }
  sq0 = _mm256_fmadd_pd(r00, r00, sq0);
  sq1 = _mm256_fmadd_pd(r01, r01, sq1);
  sq0 = _mm256_fmadd_pd(r10, r10, sq0);
  sq1 = _mm256_fmadd_pd(r11, r11, sq1);
  sq0 = _mm256_fmadd_pd(r20, r20, sq0);
  sq1 = _mm256_fmadd_pd(r21, r21, sq1);
  sq0 = _mm256_fmadd_pd(r30, r30, sq0);
  sq1 = _mm256_fmadd_pd(r31, r31, sq1);
}

// Dot products of rows t0..t0+3 with rows s0, s0+1 (length n), in double.
inline void dot_block(const float *const *tr, const float *const *sr, int64_t n, double out[4][2]) {
  __m256d a00 = _mm256_setzero_pd(), a01 = _mm256_setzero_pd();
  __m256d a10 = _mm256_setzero_pd(), a11 = _mm256_setzero_pd();
  __m256d a20 = _mm256_setzero_pd(), a21 = _mm256_setzero_pd();
  __m256d a30 = _mm256_setzero_pd(), a31 = _mm256_setzero_pd();
  int64_t k = 0;
  auto step = [&](__m256d s0, __m256d s1, __m256d x0, __m256d x1, __m256d x2, __m256d x3) {
    a00 = _mm256_fmadd_pd(x0, s0, a00);
    a01 = _mm256_fmadd_pd(x0, s1, a01);
    a10 = _mm256_fmadd_pd(x1, s0, a10);
    a11 = _mm256_fmadd_pd(x1, s1, a11);
    a20 = _mm256_fmadd_pd(x2, s0, a20);
    a21 = _mm256_fmadd_pd(x2, s1, a21);
    a30 = _mm256_fmadd_pd(x3, s0, a30);
    a31 = _mm256_fmadd_pd(x3, s1, a31);
  };
  for (; k + 4 <= n; k += 4) {
    step(_mm256_cvtps_pd(_mm_loadu_ps(sr[0] + k)), _mm256_cvtps_pd(_mm_loadu_ps(sr[1] + k)),
         _mm256_cvtps_pd(_mm_loadu_ps(tr[0] + k)), _mm256_cvtps_pd(_mm_loadu_ps(tr[1] + k)),
         _mm256_cvtps_pd(_mm_loadu_ps(tr[2] + k)), _mm256_cvtps_pd(_mm_loadu_ps(tr[3] + k)));
  }
  if (k < n) {
    const __m128i m = lane_mask4(n - k);
    step(_mm256_cvtps_pd(_mm_maskload_ps(sr[0] + k, m)),
         _mm256_cvtps_pd(_mm_maskload_ps(sr[1] + k, m)),
         _mm256_cvtps_pd(_mm_maskload_ps(tr[0] + k, m)),
         _mm256_cvtps_pd(_mm_maskload_ps(tr[1] + k, m)),
         _mm256_cvtps_pd(_mm_maskload_ps(tr[2] + k, m)),
         _mm256_cvtps_pd(_mm_maskload_ps(tr[3] + k, m)));
  }
  out[0][0] = hsum(a00);
  out[0][1] = hsum(a01);
  out[1][0] = hsum(a10);
  out[1][1] = hsum(a11);
  out[2][0] = hsum(a20);
  out[2][1] = hsum(a21);
  out[3][0] = hsum(a30);
  out[3][1] = hsum(a31);
}

// Narrow G (p <= 8, the LoRA case): a is streamed in blocks of 16 rows, all
// 8-column blocks of a row block in turn, so memory is read almost
// sequentially (16 row streams) instead of one column chunk at a time; the
// partial G (p x d, double) lives in scratch, one 4 x 8 tile per j-block and
// column block.  Same products and the same t order as the chunked loop.
double direct_narrow(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                     double *gbuf) {
  constexpr int64_t TB = 16;
  const int64_t nblk = (p + 3) / 4;
  const int64_t ncb = (d + 7) / 8;
  for (int64_t b = 0; b < nblk; ++b) g_block_to_double<4>(g, T, p, b * 4, gbuf + b * T * 4);
  double *G = gbuf + T * 8;
  for (int64_t x = 0; x < nblk * ncb * 32; ++x) G[x] = 0.0;
  for (int64_t t0 = 0; t0 < T; t0 += TB) {
    const int64_t t1 = std::min(T, t0 + TB);
    for (int64_t cb = 0; cb < ncb; ++cb) {
      const int64_t k = cb * 8;
      const bool masked = k + 8 > d;
      const __m256i mask = lane_mask8(d - k);
      for (int64_t b = 0; b < nblk; ++b) {
        double *tile = G + (b * ncb + cb) * 32;
        __m256d r00 = _mm256_loadu_pd(tile), r01 = _mm256_loadu_pd(tile + 4);
        __m256d r10 = _mm256_loadu_pd(tile + 8), r11 = _mm256_loadu_pd(tile + 12);
        __m256d r20 = _mm256_loadu_pd(tile + 16), r21 = _mm256_loadu_pd(tile + 20);
        __m256d r30 = _mm256_loadu_pd(tile + 24), r31 = _mm256_loadu_pd(tile + 28);
        const double *gb = gbuf + b * T * 4;
        // Hardware prefetchers do not keep up with 16 row streams: fetch the
        // same line of the next row block into L2 (once per line, first
        // j-block; past the last block that is the next sample's first rows,
        // which follow in memory, and prefetches never fault).
        const bool pf = b == 0 && (cb & 1) == 0;
        for (int64_t t = t0; t < t1; ++t) {
          const float *ar = a + t * d + k;
          if (pf) _mm_prefetch(reinterpret_cast<const char *>(ar + TB * d), _MM_HINT_T1);
          const __m256 av = masked ? _mm256_maskload_ps(ar, mask) : _mm256_loadu_ps(ar);
          tile_step(av, gb + t * 4, r00, r01, r10, r11, r20, r21, r30, r31);
        }
        _mm256_storeu_pd(tile, r00);
        _mm256_storeu_pd(tile + 4, r01);
        _mm256_storeu_pd(tile + 8, r10);
        _mm256_storeu_pd(tile + 12, r11);
        _mm256_storeu_pd(tile + 16, r20);
        _mm256_storeu_pd(tile + 20, r21);
        _mm256_storeu_pd(tile + 24, r30);
        _mm256_storeu_pd(tile + 28, r31);
      }
    }
  }
  __m256d sq0 = _mm256_setzero_pd(), sq1 = _mm256_setzero_pd();
  for (int64_t x = 0; x < nblk * ncb * 32; x += 8) {
    const __m256d u = _mm256_loadu_pd(G + x), v = _mm256_loadu_pd(G + x + 4);
    sq0 = _mm256_fmadd_pd(u, u, sq0);
    sq1 = _mm256_fmadd_pd(v, v, sq1);
  }
  return hsum(_mm256_add_pd(sq0, sq1));
}

}  // namespace

double sumsq_avx2(const float *x, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 u = _mm256_loadu_ps(x + i), v = _mm256_loadu_ps(x + i + 8);
    const __m256d u0 = _mm256_cvtps_pd(_mm256_castps256_ps128(u));
    const __m256d u1 = _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1));
    const __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(u0, u0, s0);
    s1 = _mm256_fmadd_pd(u1, u1, s1);
    s2 = _mm256_fmadd_pd(v0, v0, s2);
    s3 = _mm256_fmadd_pd(v1, v1, s3);
  }
  for (; i < n; i += 4) {
    const __m256d u = _mm256_cvtps_pd(_mm_maskload_ps(x + i, lane_mask4(n - i)));
    s0 = _mm256_fmadd_pd(u, u, s0);
  }
  return hsum(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
}

double norm_direct_avx2(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                        double *gbuf, const float *pf, int64_t pf_n) {
  if (p <= 8) return direct_narrow(a, g, T, d, p, gbuf);
  __m256d sq0 = _mm256_setzero_pd(), sq1 = _mm256_setzero_pd();
  direct_norm_loop<4, 8>(
      a, g, T, d, p, gbuf, pf, pf_n,
      [&](const float *ak, const double *gb, int64_t cols, int64_t ahead, const float *next) {
        // 8 columns a block: prefetch each 16-float line once.
        if (((ak - a) & 15) != 0) next = nullptr;
        if (cols == 8) {
          direct_block<false>(ak, d, gb, T, _mm256_setzero_si256(), ahead, next, sq0, sq1);
        } else {
          direct_block<true>(ak, d, gb, T, lane_mask8(cols), ahead, next, sq0, sq1);
        }
      });
  return hsum(_mm256_add_pd(sq0, sq1));
}

double norm_ghost_avx2(const float *a, const float *g, int64_t T, int64_t d, int64_t p, double *,
                       const float *, int64_t) {
  return ghost_norm_loop<2>(a, g, T, d, p,
                            [](const float *const *x, const float *const *y, int64_t n,
                               double(&out)[4][2]) { dot_block(x, y, n, out); });
}

}  // namespace linalg
}  // namespace dplora
