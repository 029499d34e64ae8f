// NEON SGEMM micro-kernel: an 8 x 12 tile in 24 q-register accumulators
// (two A vectors, three B vectors and vfmaq_laneq_f32 broadcasts per k).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

#include "gemm.h"

namespace dplora {
namespace linalg {

void gemm_micro_neon(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                     int64_t ldc, int64_t m, int64_t n, float alpha) {
  constexpr int MR = 8, NR = 12;
  float32x4_t acc[MR][3];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < 3; ++q) acc[r][q] = vdupq_n_f32(0.0f);
  }
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
    const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
#define DPLORA_ROW(r, av, lane)                         \
  acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av, lane); \
  acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av, lane); \
  acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, av, lane);
    DPLORA_ROW(0, a0, 0)
    DPLORA_ROW(1, a0, 1)
    DPLORA_ROW(2, a0, 2)
    DPLORA_ROW(3, a0, 3)
    DPLORA_ROW(4, a1, 0)
    DPLORA_ROW(5, a1, 1)
    DPLORA_ROW(6, a1, 2)
    DPLORA_ROW(7, a1, 3)
#undef DPLORA_ROW
    ap += MR;
    bp += ldbp;
  }
  const float32x4_t al = vdupq_n_f32(alpha);
  if (m == MR && n == NR) {
    for (int r = 0; r < MR; ++r) {
      float *row = c + r * ldc;
      for (int q = 0; q < 3; ++q)
        vst1q_f32(row + 4 * q, vfmaq_f32(vld1q_f32(row + 4 * q), al, acc[r][q]));
    }
    return;
  }
  float tmp[MR][NR];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < 3; ++q) vst1q_f32(tmp[r] + 4 * q, acc[r][q]);
  }
  const int64_t mm = std::min<int64_t>(m, MR), nn = std::min<int64_t>(n, NR);
  for (int64_t r = 0; r < mm; ++r) {
    float *row = c + r * ldc;
    for (int64_t q = 0; q < nn; ++q) row[q] = std::fma(alpha, tmp[r][q], row[q]);
  }
}

}  // namespace linalg
}  // namespace dplora
