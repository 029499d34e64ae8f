// AVX2 + FMA SGEMM micro-kernels: a 6 x 16 tile in 12 ymm accumulators, op(A) packed or read
// in place.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "gemm.h"

namespace dplora {
namespace linalg {

namespace {

// The 6 x 16 tile over kc steps.  kInPlace: row r of op(A) is read in place at a + r lda
// (k contiguous; full 6-row tiles only), else a is the packed panel (kc steps of 6 values).
// Each accumulator sums its products in k order either way, so both give the same bits.
template <bool kInPlace>
inline void micro_tile(int64_t kc, const float *a, int64_t lda, const float *bp, int64_t ldbp,
                       float *c, int64_t ldc, int64_t m, int64_t n, float alpha) {
  constexpr int MR = 6, NR = 16;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // In place: rows 0-3 and 4-5 from two pointers at offsets 0, lda, 2 lda, 3 lda.
  const float *a0 = a, *a4 = a + 4 * lda;
  const int64_t l1 = lda, l2 = 2 * lda, l3 = 3 * lda;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    __m256 x = _mm256_broadcast_ss(kInPlace ? a0 : a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(kInPlace ? a0 + l1 : a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(kInPlace ? a0 + l2 : a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(kInPlace ? a0 + l3 : a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(kInPlace ? a4 : a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(kInPlace ? a4 + l1 : a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    if (kInPlace) {
      ++a0;
      ++a4;
    } else {
      a += MR;
    }
    bp += ldbp;
  }
  const __m256 al = _mm256_set1_ps(alpha);
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (m == MR && n == NR) {
    for (int r = 0; r < MR; ++r) {
      float *row = c + r * ldc;
      _mm256_storeu_ps(row, _mm256_fmadd_ps(al, acc[r][0], _mm256_loadu_ps(row)));
      _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(al, acc[r][1], _mm256_loadu_ps(row + 8)));
    }
    return;
  }
  alignas(32) float tmp[MR][NR];
  for (int r = 0; r < MR; ++r) {
    _mm256_store_ps(tmp[r], acc[r][0]);
    _mm256_store_ps(tmp[r] + 8, acc[r][1]);
  }
  const int64_t mm = std::min<int64_t>(m, MR), nn = std::min<int64_t>(n, NR);
  for (int64_t r = 0; r < mm; ++r) {
    float *row = c + r * ldc;
    for (int64_t q = 0; q < nn; ++q) row[q] = std::fma(alpha, tmp[r][q], row[q]);
  }
}

}  // namespace

void gemm_micro_avx2(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                     int64_t ldc, int64_t m, int64_t n, float alpha) {
  micro_tile<false>(kc, ap, 0, bp, ldbp, c, ldc, m, n, alpha);
}

void gemm_micro_rows_avx2(int64_t kc, const float *a, int64_t lda, const float *bp, int64_t ldbp,
                          float *c, int64_t ldc, int64_t n, float alpha) {
  micro_tile<true>(kc, a, lda, bp, ldbp, c, ldc, 6, n, alpha);
}

}  // namespace linalg
}  // namespace dplora
