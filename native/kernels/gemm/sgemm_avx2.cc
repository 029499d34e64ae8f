// AVX2 + FMA SGEMM micro-kernel: a 6 x 16 tile in 12 ymm accumulators.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "gemm.h"

namespace dplora {
namespace linalg {

void gemm_micro_avx2(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                     int64_t ldc, int64_t m, int64_t n, float alpha) {
  constexpr int MR = 6, NR = 16;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t kk = 0; kk < kc; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    __m256 x = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    ap += MR;
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

}  // namespace linalg
}  // namespace dplora
