// Per-sample weight gradients with one narrow side (a LoRA rank): the per-ISA
// kernels behind dplora_per_sample_grads (per_sample.cc) when the narrow
// dimension is at most kPsNarrowMax.
#pragma once
#include <cstdint>

namespace dplora {
namespace clip {

// Largest narrow dimension the kernels below take (wider products go to SGEMM).
constexpr int64_t kPsNarrowMax = 16;

// For d < nd (nd <= kPsNarrowMax) and q < nw:
//   acc = sum_{t < T} nar[t * ldn + d] * wide[t * ldw + q]
// accumulated in float from zero, t ascending, one fused multiply-add per
// term; then c[d * ldc + q] = alpha * acc (one rounded multiplication).  The
// arithmetic of an element never depends on where it falls in the register
// blocks, so a call is a deterministic function of its inputs on one ISA.
using PsNarrowFn = void (*)(int64_t T, int64_t nd, int64_t nw, float alpha, const float *nar,
                            int64_t ldn, const float *wide, int64_t ldw, float *c, int64_t ldc);

// The blocked sweep the per-ISA kernels share.  `blocks[rb]` (1 <= rb <= RB)
// computes rb narrow rows x up to COLS wide columns over rows t0..t1 of t (see
// the kernels for its contract); the sweep runs blocks of TOKENS rows of t,
// each over every column block, so the rows of the wide operand are read front
// to back (a few streams the hardware prefetchers follow) instead of one short
// piece of every row per column block.  Static: each ISA's unit keeps its own
// copy, built with its own flags.
using PsNarrowBlockFn = void (*)(int64_t t0, int64_t t1, bool first, bool last, float alpha,
                                 const float *nar, int64_t ldn, const float *wide, int64_t ldw,
                                 int64_t cols, float *c, int64_t ldc, int64_t pf_end);

template <int64_t TOKENS, int64_t COLS, int64_t RB>
static inline void ps_narrow_sweep(const PsNarrowBlockFn *blocks, int64_t T, int64_t nd, int64_t nw,
                                   float alpha, const float *nar, int64_t ldn, const float *wide,
                                   int64_t ldw, float *c, int64_t ldc) {
  for (int64_t t0 = 0; t0 < T; t0 += TOKENS) {
    const int64_t t1 = T - t0 < TOKENS ? T : t0 + TOKENS;
    for (int64_t q0 = 0; q0 < nw; q0 += COLS) {
      const int64_t cols = nw - q0 < COLS ? nw - q0 : COLS;
      for (int64_t d0 = 0; d0 < nd; d0 += RB) {
        const int64_t rb = nd - d0 < RB ? nd - d0 : RB;
        // Only the first block of narrow rows prefetches (the others find the panel in L1).
        blocks[rb](t0, t1, t0 == 0, t1 == T, alpha, nar + d0, ldn, wide + q0, ldw, cols,
                   c + d0 * ldc + q0, ldc, d0 == 0 ? T + TOKENS : 0);
      }
    }
  }
}

#if defined(__x86_64__) || defined(_M_X64)
void ps_narrow_avx2(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                    int64_t, float *, int64_t);
void ps_narrow_avx512(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                      int64_t, float *, int64_t);
#endif

}  // namespace clip
}  // namespace dplora
