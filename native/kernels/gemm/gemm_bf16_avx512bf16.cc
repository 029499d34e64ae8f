// AVX512_BF16 micro-kernel of the bf16 frozen base: a 12 x 32 tile in 24 zmm
// fp32 accumulators, vdpbf16ps over pairs along k (each instruction adds two
// exact bf16 products per lane), and the packing of op(A) with vcvtne2ps2bf16
// (round to nearest even).  Compiled with -mavx512bf16; reached only through
// the dispatch table, which holds it only where the CPU has AVX512_BF16.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "avx512_masks.h"
#include "gemm_bf16.h"

namespace dplora {
namespace linalg {

void gemm_bf16_micro_avx512bf16(int64_t kp, const uint32_t *ap, const uint16_t *bp, float *c,
                                int64_t ldc, int64_t m, int64_t n, float alpha, bool overwrite) {
  constexpr int MR = kBf16MrAvx512, NR = kBf16NrAvx512;
  __m512 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
    for (int r = 0; r < MR; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
    }
    ap += MR;
    bp += 2 * NR;
  }
  const __m512 al = _mm512_set1_ps(alpha);
  if (overwrite) {
    // C = alpha * acc (C is not read).
    const int64_t mm = std::min<int64_t>(m, MR), nn = std::min<int64_t>(n, NR);
    const __mmask16 lo = mask16(nn), hi = mask16(nn - 16);
    for (int64_t r = 0; r < mm; ++r) {
      float *row = c + r * ldc;
      _mm512_mask_storeu_ps(row, lo, _mm512_mul_ps(al, acc[r][0]));
      _mm512_mask_storeu_ps(row + 16, hi, _mm512_mul_ps(al, acc[r][1]));
    }
    return;
  }
  if (m == MR && n == NR) {
    for (int r = 0; r < MR; ++r) {
      float *row = c + r * ldc;
      _mm512_storeu_ps(row, _mm512_fmadd_ps(al, acc[r][0], _mm512_loadu_ps(row)));
      _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(al, acc[r][1], _mm512_loadu_ps(row + 16)));
    }
    return;
  }
  const int64_t mm = std::min<int64_t>(m, MR), nn = std::min<int64_t>(n, NR);
  const __mmask16 lo = mask16(nn), hi = mask16(nn - 16);
  for (int64_t r = 0; r < mm; ++r) {
    float *row = c + r * ldc;
    _mm512_mask_storeu_ps(row, lo, _mm512_fmadd_ps(al, acc[r][0], _mm512_maskz_loadu_ps(lo, row)));
    _mm512_mask_storeu_ps(row + 16, hi,
                          _mm512_fmadd_ps(al, acc[r][1], _mm512_maskz_loadu_ps(hi, row + 16)));
  }
}

void pack_a_bf16_avx512bf16(const float *a, int64_t lda, int64_t rows, int64_t kc, int mr,
                            uint32_t *dst) {
  const int64_t kp = (kc + 1) / 2;
  // Word p of row r goes to dst[p * mr + r]: a scatter with stride mr.
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(mr));
  for (int64_t r = 0; r < rows; ++r) {
    const float *src = a + r * lda;
    for (int64_t k0 = 0; k0 < kc; k0 += 32) {
      const int64_t left = kc - k0;
      __m512 lo, hi;
      __mmask16 words;
      if (left >= 32) {
        lo = _mm512_loadu_ps(src + k0);
        hi = _mm512_loadu_ps(src + k0 + 16);
        words = 0xffff;
      } else {
        const int64_t nlo = std::min<int64_t>(left, 16), nhi = left - nlo;
        lo = _mm512_maskz_loadu_ps(mask16(nlo), src + k0);
        hi = _mm512_maskz_loadu_ps(mask16(nhi), src + k0 + 16);
        words = mask16((left + 1) / 2);
      }
      const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      _mm512_mask_i32scatter_epi32(dst + (k0 / 2) * mr + r, words, idx, w, 4);
    }
  }
  for (int64_t r = rows; r < mr; ++r) {
    for (int64_t p = 0; p < kp; ++p) dst[p * mr + r] = 0;
  }
}

}  // namespace linalg
}  // namespace dplora
