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

#if defined(__x86_64__) || defined(_M_X64)
void ps_narrow_avx2(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                    int64_t, float *, int64_t);
void ps_narrow_avx512(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                      int64_t, float *, int64_t);
#endif

}  // namespace clip
}  // namespace dplora
