// AVX2 per-sample narrow-gradient kernel (see ps_narrow.h): register blocks of
// up to 6 narrow rows x 16 wide columns (2 vectors, masked at the edge; a
// masked-off lane reads nothing and is never stored), t ascending, one fused
// multiply-add per term.
#include <immintrin.h>

#include "ps_narrow.h"

namespace dplora {
namespace clip {
namespace {

inline __m256i mask8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int k = n <= 0 ? 0 : n >= 8 ? 8 : static_cast<int>(n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

// Rows of t per sweep over the columns.
constexpr int64_t kTokens = 16;

// Rows t0..t1 of the sums of a block: from zero when `first`, else continuing from the partial
// sums stored in c (a float stored and loaded back is the same float: the chain is unchanged);
// stores alpha * acc when `last`, else the partial sums.  Rows below pf_end are prefetched
// kTokens rows ahead (past the operand's end they touch unrelated lines; prefetches never
// fault).
template <int RB>
void block(int64_t t0, int64_t t1, bool first, bool last, float alpha, const float *nar,
           int64_t ldn, const float *wide, int64_t ldw, int64_t cols, float *c, int64_t ldc,
           int64_t pf_end) {
  const bool full = cols >= 16;
  const __m256i m0 = mask8(cols), m1 = mask8(cols - 8);
  __m256 acc[RB][2];
#pragma GCC unroll 8
  for (int d = 0; d < RB; ++d) {
    const float *o = c + d * ldc;
    acc[d][0] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(o, m0);
    acc[d][1] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(o + 8, m1);
  }
  for (int64_t t = t0; t < t1; ++t) {
    const float *w = wide + t * ldw;
    // The same columns of the next block of rows, fetched while these compute.
    if (t + kTokens < pf_end) {
      const char *f = reinterpret_cast<const char *>(w + kTokens * ldw);
      _mm_prefetch(f, _MM_HINT_T0);
      _mm_prefetch(f + 64, _MM_HINT_T0);
    }
    const __m256 w0 = full ? _mm256_loadu_ps(w) : _mm256_maskload_ps(w, m0);
    const __m256 w1 = full ? _mm256_loadu_ps(w + 8) : _mm256_maskload_ps(w + 8, m1);
    const float *n = nar + t * ldn;
#pragma GCC unroll 8
    for (int d = 0; d < RB; ++d) {
      const __m256 b = _mm256_broadcast_ss(n + d);
      acc[d][0] = _mm256_fmadd_ps(b, w0, acc[d][0]);
      acc[d][1] = _mm256_fmadd_ps(b, w1, acc[d][1]);
    }
  }
  if (last) {
    const __m256 s = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
    for (int d = 0; d < RB; ++d) {
      acc[d][0] = _mm256_mul_ps(s, acc[d][0]);
      acc[d][1] = _mm256_mul_ps(s, acc[d][1]);
    }
  }
#pragma GCC unroll 8
  for (int d = 0; d < RB; ++d) {
    float *o = c + d * ldc;
    _mm256_maskstore_ps(o, m0, acc[d][0]);
    _mm256_maskstore_ps(o + 8, m1, acc[d][1]);
  }
}

constexpr PsNarrowBlockFn kBlocks[7] = {nullptr,  block<1>, block<2>, block<3>,
                                        block<4>, block<5>, block<6>};

}  // namespace

void ps_narrow_avx2(int64_t T, int64_t nd, int64_t nw, float alpha, const float *nar, int64_t ldn,
                    const float *wide, int64_t ldw, float *c, int64_t ldc) {
  ps_narrow_sweep<kTokens, 16, 6>(kBlocks, T, nd, nw, alpha, nar, ldn, wide, ldw, c, ldc);
}

}  // namespace clip
}  // namespace dplora
