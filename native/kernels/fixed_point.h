// Integer-only fixed-point clipping kernels (native/kernels/intonly/
// fixed_clip.cc); the C API wrappers in fixed_point.cc split them over the
// thread pool.
#pragma once
#include <stdint.h>

namespace dplora {
namespace fixedpt {

// Marks an unclipped row in the scale array.
constexpr int64_t kUnclipped = -1;
// Scales are k / 2^kShift with 0 <= k < 2^kShift.
constexpr int kShift = 32;

// For rows [b0, b1): scale[i] = kUnclipped if sum_j g_ij^2 <= clip^2, else
// k = floor(clip * 2^32 / ceil_isqrt(n2)).  Returns the rows clipped.
int64_t clip_scales(const int32_t *grads, int64_t b0, int64_t b1, int64_t dim, int64_t clip,
                    int64_t *scale);

// sum[j] = sum_i v_ij for columns [j0, j1), v = g (unclipped rows) or
// sign(g) ((|g| k) >> 32).
void column_sums(const int32_t *grads, const int64_t *scale, int64_t batch, int64_t dim, int64_t j0,
                 int64_t j1, int64_t *sum);

}  // namespace fixedpt
}  // namespace dplora
