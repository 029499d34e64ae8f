// AVX-512 per-sample narrow-gradient kernel (see ps_narrow.h): register blocks
// of up to 8 narrow rows x 48 wide columns (3 vectors, masked at the edge; a
// masked-off lane reads nothing and is never stored), t ascending, one fused
// multiply-add per term.  The wide panel (T x 48 floats) is read once per
// block of 8 narrow rows and stays in L1 between them.
// GCC 12 flags its own _mm512_undefined_* helpers as uninitialized: a false
// positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "avx512_masks.h"
#include "ps_narrow.h"

namespace dplora {
namespace clip {
namespace {

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
  const __mmask16 m0 = mask16(cols), m1 = mask16(cols - 16), m2 = mask16(cols - 32);
  __m512 acc[RB][3];
#pragma GCC unroll 8
  for (int d = 0; d < RB; ++d) {
    const float *o = c + d * ldc;
    acc[d][0] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m0, o);
    acc[d][1] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m1, o + 16);
    acc[d][2] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m2, o + 32);
  }
  for (int64_t t = t0; t < t1; ++t) {
    const float *w = wide + t * ldw;
    // The same columns of the next block of rows, fetched while these compute.
    if (t + kTokens < pf_end) {
      const char *f = reinterpret_cast<const char *>(w + kTokens * ldw);
      _mm_prefetch(f, _MM_HINT_T0);
      _mm_prefetch(f + 64, _MM_HINT_T0);
      _mm_prefetch(f + 128, _MM_HINT_T0);
    }
    const __m512 w0 = _mm512_maskz_loadu_ps(m0, w);
    const __m512 w1 = _mm512_maskz_loadu_ps(m1, w + 16);
    const __m512 w2 = _mm512_maskz_loadu_ps(m2, w + 32);
    const float *n = nar + t * ldn;
#pragma GCC unroll 8
    for (int d = 0; d < RB; ++d) {
      const __m512 b = _mm512_set1_ps(n[d]);
      acc[d][0] = _mm512_fmadd_ps(b, w0, acc[d][0]);
      acc[d][1] = _mm512_fmadd_ps(b, w1, acc[d][1]);
      acc[d][2] = _mm512_fmadd_ps(b, w2, acc[d][2]);
    }
  }
  if (last) {
    const __m512 s = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
    for (int d = 0; d < RB; ++d)
      for (int v = 0; v < 3; ++v) acc[d][v] = _mm512_mul_ps(s, acc[d][v]);
  }
#pragma GCC unroll 8
  for (int d = 0; d < RB; ++d) {
    float *o = c + d * ldc;
    _mm512_mask_storeu_ps(o, m0, acc[d][0]);
    _mm512_mask_storeu_ps(o + 16, m1, acc[d][1]);
    _mm512_mask_storeu_ps(o + 32, m2, acc[d][2]);
  }
}

constexpr PsNarrowBlockFn kBlocks[9] = {nullptr,  block<1>, block<2>, block<3>, block<4>,
                                        block<5>, block<6>, block<7>, block<8>};

}  // namespace

void ps_narrow_avx512(int64_t T, int64_t nd, int64_t nw, float alpha, const float *nar, int64_t ldn,
                      const float *wide, int64_t ldw, float *c, int64_t ldc) {
  ps_narrow_sweep<kTokens, 48, 8>(kBlocks, T, nd, nw, alpha, nar, ldn, wide, ldw, c, ldc);
}

}  // namespace clip
}  // namespace dplora
