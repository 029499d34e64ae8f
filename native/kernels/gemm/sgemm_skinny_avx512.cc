// AVX-512 kernel for products with few output columns (n <= 16) and op(A)
// read in place: each row of C is n dot products of a row of A with the
// rows of Yt = op(B)^T (n x k, contiguous), two rows of A at a time, so A
// (the large operand, a LoRA input) streams through once without packing.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "gemm.h"

namespace dplora {
namespace linalg {
namespace {

template <int NJ>
void rows_block(int64_t k, float alpha, const float *x0, const float *x1, const float *yt,
                float beta, float *c0, float *c1) {
  __m512 a0[NJ], a1[NJ];
  for (int j = 0; j < NJ; ++j) a0[j] = a1[j] = _mm512_setzero_ps();
  const int64_t kfull = k / 16 * 16;
  for (int64_t kk = 0; kk < kfull; kk += 16) {
    const __m512 v0 = _mm512_loadu_ps(x0 + kk), v1 = _mm512_loadu_ps(x1 + kk);
    for (int j = 0; j < NJ; ++j) {
      const __m512 y = _mm512_loadu_ps(yt + j * k + kk);
      a0[j] = _mm512_fmadd_ps(v0, y, a0[j]);
      a1[j] = _mm512_fmadd_ps(v1, y, a1[j]);
    }
  }
  if (kfull < k) {
    const __mmask16 mk = static_cast<__mmask16>((1u << (k - kfull)) - 1u);
    const __m512 v0 = _mm512_maskz_loadu_ps(mk, x0 + kfull),
                 v1 = _mm512_maskz_loadu_ps(mk, x1 + kfull);
    for (int j = 0; j < NJ; ++j) {
      const __m512 y = _mm512_maskz_loadu_ps(mk, yt + j * k + kfull);
      a0[j] = _mm512_fmadd_ps(v0, y, a0[j]);
      a1[j] = _mm512_fmadd_ps(v1, y, a1[j]);
    }
  }
  for (int j = 0; j < NJ; ++j) {
    const float s0 = alpha * _mm512_reduce_add_ps(a0[j]);
    const float s1 = alpha * _mm512_reduce_add_ps(a1[j]);
    c0[j] = beta == 0.0f ? s0 : s0 + beta * c0[j];
    if (c1 != nullptr) c1[j] = beta == 0.0f ? s1 : s1 + beta * c1[j];
  }
}

using BlockFn = void (*)(int64_t, float, const float *, const float *, const float *, float,
                         float *, float *);
constexpr BlockFn kBlocks[9] = {nullptr,       rows_block<1>, rows_block<2>,
                                rows_block<3>, rows_block<4>, rows_block<5>,
                                rows_block<6>, rows_block<7>, rows_block<8>};

}  // namespace

void gemm_skinny_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *x, int64_t ldx,
                        const float *yt, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i += 2) {
    const bool two = i + 1 < m;
    const float *x0 = x + i * ldx, *x1 = two ? x0 + ldx : x0;
    float *c0 = c + i * ldc, *c1 = two ? c0 + ldc : nullptr;
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
      const int64_t nj = std::min<int64_t>(8, n - j0);
      kBlocks[nj](k, alpha, x0, x1, yt + j0 * k, beta, c0 + j0, c1 ? c1 + j0 : nullptr);
    }
  }
}

}  // namespace linalg
}  // namespace dplora
