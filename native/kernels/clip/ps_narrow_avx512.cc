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

#include "ps_narrow.h"

namespace dplora {
namespace clip {
namespace {

inline __mmask16 mask16(int64_t n) {
  return n <= 0    ? 0
         : n >= 16 ? static_cast<__mmask16>(0xFFFF)
                   : static_cast<__mmask16>((1u << n) - 1u);
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

using BlockFn = void (*)(int64_t, int64_t, bool, bool, float, const float *, int64_t, const float *,
                         int64_t, int64_t, float *, int64_t, int64_t);
constexpr BlockFn kBlocks[9] = {nullptr,  block<1>, block<2>, block<3>, block<4>,
                                block<5>, block<6>, block<7>, block<8>};

}  // namespace

void ps_narrow_avx512(int64_t T, int64_t nd, int64_t nw, float alpha, const float *nar, int64_t ldn,
                      const float *wide, int64_t ldw, float *c, int64_t ldc) {
  // Blocks of kTokens rows of t, each swept over every column block: the rows of the wide
  // operand are then read front to back (a few streams the hardware prefetchers follow)
  // instead of one short piece of every row per column block.
  for (int64_t t0 = 0; t0 < T; t0 += kTokens) {
    const int64_t t1 = T - t0 < kTokens ? T : t0 + kTokens;
    for (int64_t q0 = 0; q0 < nw; q0 += 48) {
      const int64_t cols = nw - q0 < 48 ? nw - q0 : 48;
      for (int64_t d0 = 0; d0 < nd; d0 += 8) {
        const int64_t rb = nd - d0 < 8 ? nd - d0 : 8;
        kBlocks[rb](t0, t1, t0 == 0, t1 == T, alpha, nar + d0, ldn, wide + q0, ldw, cols,
                    c + d0 * ldc + q0, ldc, d0 == 0 ? T + kTokens : 0);
      }
    }
  }
}

}  // namespace clip
}  // namespace dplora
