// AVX-512 kernel for products with few output columns (n <= 16) and op(A)
// read in place: C[i, j] = alpha * x_i . yt_j (+ beta C[i, j]), yt = op(B)^T
// (n x k, contiguous).  A tile of R = 16 / n rows of x (whole n columns)
// keeps R * n <= 16 dot products in zmm accumulators over the whole of k, so
// x streams through once without packing; the 16 accumulators are then
// reduced together by one shuffle tree (about 2 shuffles and 1 add per
// accumulator, against 8 instructions each for a lane-by-lane reduction) into
// one vector holding every sum of the tile.  Each sum's lanes are added in the
// same order whatever its place in the tile, so a row's result does not
// depend on which rows share its tile (nor on the thread split).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "avx512_masks.h"
#include "gemm.h"

namespace dplora {
namespace linalg {
namespace {

// Lane p of the result is the sum of the 16 lanes of v[4 * (p % 4) + p / 4].
inline __m512 reduce16(const __m512 (&v)[16]) {
  __m512 w[8], u[4];
  for (int p = 0; p < 8; ++p) {
    const __m512 a = v[2 * p], b = v[2 * p + 1];
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 a = w[2 * q], b = w[2 * q + 1];
    u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
  }
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3]));
  return _mm512_add_ps(_mm512_shuffle_ps(s01, s23, 0x44), _mm512_shuffle_ps(s01, s23, 0xEE));
}

// rows (<= R) rows of C from x (row stride ldx), NJ columns from yt (row stride ldy).
template <int NJ>
void tile(int64_t rows, int64_t k, float alpha, const float *x, int64_t ldx, const float *yt,
          int64_t ldy, float beta, float *c, int64_t ldc) {
  constexpr int R = 16 / NJ;
  const float *xr[R];
  for (int i = 0; i < R; ++i) xr[i] = x + (i < rows ? i : 0) * ldx;
  __m512 acc[R * NJ];
  for (int q = 0; q < R * NJ; ++q) acc[q] = _mm512_setzero_ps();
  const int64_t kfull = k / 16 * 16;
  for (int64_t kk = 0; kk < kfull; kk += 16) {
    __m512 xv[R];
    for (int i = 0; i < R; ++i) {
      // The next tile's rows, at the same k: a software stream per row of x
      // (1.4x at 8192 x 768 x 8 against the hardware prefetchers alone).
      _mm_prefetch(reinterpret_cast<const char *>(xr[i] + R * ldx + kk), _MM_HINT_T0);
      xv[i] = _mm512_loadu_ps(xr[i] + kk);
    }
    for (int j = 0; j < NJ; ++j) {
      const __m512 y = _mm512_loadu_ps(yt + j * ldy + kk);
      for (int i = 0; i < R; ++i) acc[i * NJ + j] = _mm512_fmadd_ps(xv[i], y, acc[i * NJ + j]);
    }
  }
  if (kfull < k) {
    const __mmask16 mk = mask16(k - kfull);
    __m512 xv[R];
    for (int i = 0; i < R; ++i) xv[i] = _mm512_maskz_loadu_ps(mk, xr[i] + kfull);
    for (int j = 0; j < NJ; ++j) {
      const __m512 y = _mm512_maskz_loadu_ps(mk, yt + j * ldy + kfull);
      for (int i = 0; i < R; ++i) acc[i * NJ + j] = _mm512_fmadd_ps(xv[i], y, acc[i * NJ + j]);
    }
  }
  // Accumulator q = i * NJ + j goes to lane q of the reduced vector.
  __m512 v[16];
  for (int s = 0; s < 16; ++s) {
    const int q = 4 * (s % 4) + s / 4;
    v[s] = q < R * NJ ? acc[q] : _mm512_setzero_ps();
  }
  const __m512 z = _mm512_mul_ps(_mm512_set1_ps(alpha), reduce16(v));
  const __mmask16 mj = mask16(NJ);
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int i = 0; i < R; ++i) {
    if (i >= rows) break;
    const __m512 s =
        i == 0 ? z : _mm512_permutexvar_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(i * NJ)), z);
    float *ci = c + i * ldc;
    if (beta == 0.0f) {
      _mm512_mask_storeu_ps(ci, mj, s);
    } else {
      const __m512 old = _mm512_maskz_loadu_ps(mj, ci);
      _mm512_mask_storeu_ps(ci, mj, _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(beta), old)));
    }
  }
}

using TileFn = void (*)(int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);
constexpr TileFn kTiles[17] = {nullptr,  tile<1>,  tile<2>,  tile<3>,  tile<4>,  tile<5>,
                               tile<6>,  tile<7>,  tile<8>,  tile<9>,  tile<10>, tile<11>,
                               tile<12>, tile<13>, tile<14>, tile<15>, tile<16>};

}  // namespace

void gemm_skinny_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *x, int64_t ldx,
                        const float *yt, int64_t ldy, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const TileFn fn = kTiles[std::min<int64_t>(n, kSkinnyMaxN)];
  const int64_t rt = 16 / n;
  for (int64_t i = 0; i < m; i += rt) {
    fn(std::min(rt, m - i), k, alpha, x + i * ldx, ldx, yt, ldy, beta, c + i * ldc, ldc);
  }
}

}  // namespace linalg
}  // namespace dplora
