// Portable SGEMM micro-kernel: a 4 x 8 register tile in plain C++.
#include <algorithm>

#include "gemm.h"

namespace dplora {
namespace linalg {

void gemm_micro_scalar(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                       int64_t ldc, int64_t m, int64_t n, float alpha) {
  constexpr int MR = 4, NR = 8;
  float acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float *av = ap + kk * MR;
    const float *bv = bp + kk * ldbp;
    for (int r = 0; r < MR; ++r) {
      const float x = av[r];
      for (int q = 0; q < NR; ++q) acc[r][q] += x * bv[q];
    }
  }
  const int64_t mm = std::min<int64_t>(m, MR), nn = std::min<int64_t>(n, NR);
  for (int64_t r = 0; r < mm; ++r) {
    float *row = c + r * ldc;
    for (int64_t q = 0; q < nn; ++q) row[q] += alpha * acc[r][q];
  }
}

}  // namespace linalg
}  // namespace dplora
