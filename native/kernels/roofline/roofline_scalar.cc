// Portable roofline probes: a float read loop and a multiply-add loop.
#include "roofline.h"

namespace dplora {
namespace linalg {

float read_probe_scalar(const float *x, int64_t n) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int q = 0; q < 8; ++q) s[q] += x[i + q] * x[i + q];
  }
  for (; i < n; ++i) s[0] += x[i] * x[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// 32 independent multiply-add chains: the baseline compiler turns them into
// SSE mulps/addps, as it does the portable SGEMM micro-kernel, so this is the
// scalar path's compute roof.
double fma_probe_scalar(int64_t iters) {
  float acc[32];
  for (int q = 0; q < 32; ++q) acc[q] = static_cast<float>(q + 1);
  const float m = 0.9999f, add = 1e-3f;
  for (int64_t i = 0; i < iters; ++i) {
    for (int q = 0; q < 32; ++q) acc[q] = acc[q] * m + add;
  }
  double s = 0;
  for (float v : acc) s += v;
  return s;
}

}  // namespace linalg
}  // namespace dplora
