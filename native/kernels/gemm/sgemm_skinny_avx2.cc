// AVX2 + FMA kernel for products with few output columns (n <= 16) and op(A)
// read in place (see sgemm_skinny_avx512.cc): two rows of A against four
// rows of Yt = op(B)^T at a time, in 8 ymm accumulators.
#include <immintrin.h>

#include <algorithm>

#include "gemm.h"

namespace dplora {
namespace linalg {
namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <int NJ>
void rows_block(int64_t k, float alpha, const float *x0, const float *x1, const float *yt,
                int64_t ldy, float beta, float *c0, float *c1) {
  __m256 a0[NJ], a1[NJ];
  for (int j = 0; j < NJ; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
  const int64_t kfull = k / 8 * 8;
  for (int64_t kk = 0; kk < kfull; kk += 8) {
    const __m256 v0 = _mm256_loadu_ps(x0 + kk), v1 = _mm256_loadu_ps(x1 + kk);
    for (int j = 0; j < NJ; ++j) {
      const __m256 y = _mm256_loadu_ps(yt + j * ldy + kk);
      a0[j] = _mm256_fmadd_ps(v0, y, a0[j]);
      a1[j] = _mm256_fmadd_ps(v1, y, a1[j]);
    }
  }
  if (kfull < k) {
    alignas(32) int32_t lanes[8];
    for (int q = 0; q < 8; ++q) lanes[q] = kfull + q < k ? -1 : 0;
    const __m256i mk = _mm256_load_si256(reinterpret_cast<const __m256i *>(lanes));
    const __m256 v0 = _mm256_maskload_ps(x0 + kfull, mk), v1 = _mm256_maskload_ps(x1 + kfull, mk);
    for (int j = 0; j < NJ; ++j) {
      const __m256 y = _mm256_maskload_ps(yt + j * ldy + kfull, mk);
      a0[j] = _mm256_fmadd_ps(v0, y, a0[j]);
      a1[j] = _mm256_fmadd_ps(v1, y, a1[j]);
    }
  }
  for (int j = 0; j < NJ; ++j) {
    const float s0 = alpha * hsum(a0[j]), s1 = alpha * hsum(a1[j]);
    c0[j] = beta == 0.0f ? s0 : s0 + beta * c0[j];
    if (c1 != nullptr) c1[j] = beta == 0.0f ? s1 : s1 + beta * c1[j];
  }
}

using BlockFn = void (*)(int64_t, float, const float *, const float *, const float *, int64_t,
                         float, float *, float *);
constexpr BlockFn kBlocks[5] = {nullptr, rows_block<1>, rows_block<2>, rows_block<3>,
                                rows_block<4>};

}  // namespace

void gemm_skinny_avx2(int64_t m, int64_t n, int64_t k, float alpha, const float *x, int64_t ldx,
                      const float *yt, int64_t ldy, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i += 2) {
    const bool two = i + 1 < m;
    const float *x0 = x + i * ldx, *x1 = two ? x0 + ldx : x0;
    float *c0 = c + i * ldc, *c1 = two ? c0 + ldc : nullptr;
    for (int64_t j0 = 0; j0 < n; j0 += 4) {
      const int64_t nj = std::min<int64_t>(4, n - j0);
      kBlocks[nj](k, alpha, x0, x1, yt + j0 * ldy, ldy, beta, c0 + j0, c1 ? c1 + j0 : nullptr);
    }
  }
}

}  // namespace linalg
}  // namespace dplora
