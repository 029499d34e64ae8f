// AVX-512 SGEMM micro-kernels: a 12 x 32 tile in 24 zmm accumulators, op(A) packed or read
// in place.
// GCC 12 flags its own _mm512_undefined_* helpers (used inside the
// conversion and reduction intrinsics) as uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "gemm.h"

namespace dplora {
namespace linalg {

namespace {

// The 12 x 32 tile over kc steps.  kInPlace: row r of op(A) is read in place at a + r lda
// (k contiguous; full 12-row tiles only), else a is the packed panel (kc steps of 12 values).
// Each accumulator sums its products in k order either way, so both give the same bits.
template <bool kInPlace>
inline void micro_tile(int64_t kc, const float *a, int64_t lda, const float *bp, int64_t ldbp,
                       float *c, int64_t ldc, int64_t m, int64_t n, float alpha) {
  constexpr int MR = 12, NR = 32;
  constexpr int64_t kPfRows = 16;
  // The C tile is read once, after kc steps: fetch its lines now (C is
  // usually far from L1, and the misses would otherwise stall the final
  // update).
  for (int64_t r = 0; r < std::min<int64_t>(m, MR); ++r) {
    _mm_prefetch(reinterpret_cast<const char *>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
  // In place: rows 0-3, 4-7 and 8-11 from three pointers at offsets 0, lda, 2 lda, 3 lda.
  const float *a0 = a, *a4 = a + 4 * lda, *a8 = a + 8 * lda;
  const int64_t l1 = lda, l2 = 2 * lda, l3 = 3 * lda;
#define DPL_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
  // clang-format off
  DPL_DECL(0)
  DPL_DECL(1) DPL_DECL(2) DPL_DECL(3) DPL_DECL(4) DPL_DECL(5) DPL_DECL(6) DPL_DECL(7) DPL_DECL(8)
      DPL_DECL(9) DPL_DECL(10) DPL_DECL(11)
  // clang-format on
#undef DPL_DECL
          for (int64_t kk = 0; kk < kc; ++kk) {
    // B rows arrive from L2 or L3 on a micro-panel's first use: fetch ahead
    // (past the panel's end this touches unrelated lines; prefetches never fault).
    _mm_prefetch(reinterpret_cast<const char *>(bp + kPfRows * ldbp), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(bp + kPfRows * ldbp + 16), _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#define DPL_ROW(r, p, off)                                     \
  {                                                            \
    const __m512 x = _mm512_set1_ps(kInPlace ? p[off] : a[r]); \
    c##r##0 = _mm512_fmadd_ps(x, b0, c##r##0);                 \
    c##r##1 = _mm512_fmadd_ps(x, b1, c##r##1);                 \
  }
    // clang-format off
    DPL_ROW(0, a0, 0) DPL_ROW(1, a0, l1) DPL_ROW(2, a0, l2) DPL_ROW(3, a0, l3)
    DPL_ROW(4, a4, 0) DPL_ROW(5, a4, l1) DPL_ROW(6, a4, l2) DPL_ROW(7, a4, l3)
    DPL_ROW(8, a8, 0) DPL_ROW(9, a8, l1) DPL_ROW(10, a8, l2) DPL_ROW(11, a8, l3)
    // clang-format on
#undef DPL_ROW
                if (kInPlace) {
      ++a0;
      ++a4;
      ++a8;
    }
    else {
      a += MR;
    }
    bp += ldbp;
  }
  const __m512 al = _mm512_set1_ps(alpha);
  if (m == MR && n == NR) {
#define DPL_STORE(r)                                                                     \
  {                                                                                      \
    float *row = c + (r)*ldc;                                                            \
    _mm512_storeu_ps(row, _mm512_fmadd_ps(al, c##r##0, _mm512_loadu_ps(row)));           \
    _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(al, c##r##1, _mm512_loadu_ps(row + 16))); \
  }
    // clang-format off
    DPL_STORE(0)
    DPL_STORE(1) DPL_STORE(2) DPL_STORE(3) DPL_STORE(4) DPL_STORE(5) DPL_STORE(6) DPL_STORE(7)
        DPL_STORE(8) DPL_STORE(9) DPL_STORE(10) DPL_STORE(11)
    // clang-format on
#undef DPL_STORE
            return;
  }
  alignas(64) float tmp[MR][NR];
#define DPL_SPILL(r)                \
  _mm512_store_ps(tmp[r], c##r##0); \
  _mm512_store_ps(tmp[r] + 16, c##r##1);
  // clang-format off
  DPL_SPILL(0)
  DPL_SPILL(1) DPL_SPILL(2) DPL_SPILL(3) DPL_SPILL(4) DPL_SPILL(5) DPL_SPILL(6) DPL_SPILL(7)
      DPL_SPILL(8) DPL_SPILL(9) DPL_SPILL(10) DPL_SPILL(11)
  // clang-format on
#undef DPL_SPILL
          const int64_t mm = std::min<int64_t>(m, MR),
                        nn = std::min<int64_t>(n, NR);
  for (int64_t r = 0; r < mm; ++r) {
    float *row = c + r * ldc;
    for (int64_t q = 0; q < nn; ++q) row[q] = std::fma(alpha, tmp[r][q], row[q]);
  }
}

}  // namespace

void gemm_micro_avx512(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                       int64_t ldc, int64_t m, int64_t n, float alpha) {
  micro_tile<false>(kc, ap, 0, bp, ldbp, c, ldc, m, n, alpha);
}

void gemm_micro_rows_avx512(int64_t kc, const float *a, int64_t lda, const float *bp, int64_t ldbp,
                            float *c, int64_t ldc, int64_t n, float alpha) {
  micro_tile<true>(kc, a, lda, bp, ldbp, c, ldc, 12, n, alpha);
}

}  // namespace linalg
}  // namespace dplora
