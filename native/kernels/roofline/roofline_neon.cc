// NEON roofline probes: a float sum-of-squares read loop and an FMA loop
// with 16 independent q-register chains.
#include <arm_neon.h>

#include "roofline.h"

namespace dplora {
namespace linalg {

float read_probe_neon(const float *x, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t u0 = vld1q_f32(x + i), u1 = vld1q_f32(x + i + 4);
    const float32x4_t u2 = vld1q_f32(x + i + 8), u3 = vld1q_f32(x + i + 12);
    s0 = vfmaq_f32(s0, u0, u0);
    s1 = vfmaq_f32(s1, u1, u1);
    s2 = vfmaq_f32(s2, u2, u2);
    s3 = vfmaq_f32(s3, u3, u3);
  }
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

double fma_probe_neon(int64_t iters) {
  const float32x4_t m = vdupq_n_f32(0.9999f), add = vdupq_n_f32(1e-3f);
  float32x4_t v[16];
  for (int q = 0; q < 16; ++q) v[q] = vdupq_n_f32(static_cast<float>(q + 1));
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 16; ++q) v[q] = vfmaq_f32(add, v[q], m);
  }
  float32x4_t s = v[0];
  for (int q = 1; q < 16; ++q) s = vaddq_f32(s, v[q]);
  return static_cast<double>(vaddvq_f32(s));
}

}  // namespace linalg
}  // namespace dplora
