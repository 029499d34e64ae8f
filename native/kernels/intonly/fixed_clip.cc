// Fixed-point per-sample clipping and summation in integers only
// (docs: algorithms.md section 4).  Float-free translation unit (no
// exceptions, heap or threads; dplora::u128 is the portable 128-bit type).
//
// Why sum v^2 <= C^2 always: for a clipped row (n2 > C^2), c =
// ceil_isqrt(n2) >= sqrt(n2) and k = floor(C 2^32 / c) <= C 2^32 / c, and
// |v_j| = floor(|g_j| k / 2^32) <= |g_j| k / 2^32, so
// sum v_j^2 <= (k / 2^32)^2 n2 <= C^2 n2 / c^2 <= C^2.
// Magnitudes are truncated (never a right shift of a negative number, which
// would round away from zero).
#include "fixed/u128.h"
#include "fixed_point.h"
#include "int_math.h"

namespace dplora {
namespace fixedpt {

namespace {

inline u128 ceil_isqrt128(u128 n) {
  const u128 r = intmath::isqrt_floor<u128>(n);
  return r * r == n ? r : r + 1;
}

}  // namespace

int64_t clip_scales(const int32_t *grads, int64_t b0, int64_t b1, int64_t dim, int64_t clip,
                    int64_t *scale) {
  const u128 c2 = mul64x64(uint64_t(clip), uint64_t(clip));
  int64_t clipped = 0;
  for (int64_t i = b0; i < b1; ++i) {
    const int32_t *row = grads + i * dim;
    // Each square is < 2^62 + 1 and dim < 2^53, so n2 < 2^116: exact in 128 bits.
    u128 n2 = 0;
    for (int64_t j = 0; j < dim; ++j) {
      const int64_t g = row[j];
      n2 += u128(uint64_t(g * g));
    }
    if (n2 <= c2) {
      scale[i] = kUnclipped;
      continue;
    }
    // c >= clip + 1 and c < 2^59; clip 2^32 < 2^63.
    const uint64_t c = u128_lo(ceil_isqrt128(n2));
    scale[i] = int64_t((uint64_t(clip) << kShift) / c);
    ++clipped;
  }
  return clipped;
}

void column_sums(const int32_t *grads, const int64_t *scale, int64_t batch, int64_t dim, int64_t j0,
                 int64_t j1, int64_t *sum) {
  for (int64_t j = j0; j < j1; ++j) sum[j] = 0;
  for (int64_t i = 0; i < batch; ++i) {
    const int32_t *row = grads + i * dim;
    const int64_t k = scale[i];
    if (k == kUnclipped) {
      for (int64_t j = j0; j < j1; ++j) sum[j] += row[j];
    } else {
      const uint64_t ku = uint64_t(k);  // < 2^32, so |g| k < 2^63
      for (int64_t j = j0; j < j1; ++j) {
        // Branch-free sign(g) * ((|g| k) >> 32): m = -1 for negative g.
        const int64_t g = row[j];
        const int64_t m = g >> 63;
        const uint64_t mag = uint64_t((g ^ m) - m);
        const int64_t v = int64_t((mag * ku) >> kShift);
        sum[j] += (v ^ m) - m;
      }
    }
  }
}

}  // namespace fixedpt
}  // namespace dplora
