// Portable clipped-sum kernel (see clip_sum.h): blocks of 4 narrow rows x 64
// columns accumulated in a small double buffer (the column loop is plain
// enough for the compiler to vectorize), then added into `out` once.
#include "clip_sum.h"

namespace dplora {
namespace clip {

void outer_sum_scalar(const double *nar, int64_t np, int64_t ns, const float *wide, int64_t nw,
                      const int64_t *rows, int64_t m, int64_t q0, int64_t q1, double *out,
                      int64_t ps, int64_t qs) {
  constexpr int P = 4, Q = 64;
  for (int64_t p0 = 0; p0 < np; p0 += P) {
    const int pc = np - p0 < P ? static_cast<int>(np - p0) : P;
    for (int64_t k0 = q0; k0 < q1; k0 += Q) {
      const int qc = q1 - k0 < Q ? static_cast<int>(q1 - k0) : Q;
      double acc[P][Q] = {};
      for (int64_t i = 0; i < m; ++i) {
        const float *w = wide + rows[i] * nw + k0;
        // The rows are strided: fetch this row's next block ahead of use.
        if (p0 == 0)
          for (int l = 4; l < 8; ++l) __builtin_prefetch(w + 16 * l, 0, 3);
        const double *c = nar + i * ns + p0;
        for (int p = 0; p < pc; ++p) {
          const double cp = c[p];
          double *ap = acc[p];
          for (int q = 0; q < qc; ++q) ap[q] += cp * static_cast<double>(w[q]);
        }
      }
      for (int p = 0; p < pc; ++p)
        for (int q = 0; q < qc; ++q) out[(p0 + p) * ps + (k0 + q) * qs] += acc[p][q];
    }
  }
}

}  // namespace clip
}  // namespace dplora
