// Portable per-sample norm kernels (double accumulation throughout).
#include <algorithm>

#include "norms.h"

namespace dplora {
namespace linalg {

double sumsq_scalar(const float *x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double a = x[i], b = x[i + 1], c = x[i + 2], d = x[i + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; ++i) s0 += static_cast<double>(x[i]) * x[i];
  return (s0 + s1) + (s2 + s3);
}

// ||g^T a||_F^2: G is formed in 4 x 4 double register blocks.
double norm_direct_scalar(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                          double *gbuf, const float *pf, int64_t pf_n) {
  constexpr int R = 4, C = 4;
  double sq = 0;
  direct_norm_loop<R, C>(
      a, g, T, d, p, gbuf, pf, pf_n,
      [&](const float *ak, const double *gb, int64_t cols, int64_t, const float *) {
        double acc[R][C] = {};
        for (int64_t t = 0; t < T; ++t) {
          const float *ar = ak + t * d;
          double av[C];
          for (int q = 0; q < C; ++q) av[q] = q < cols ? static_cast<double>(ar[q]) : 0.0;
          const double *gr = gb + t * R;
          for (int r = 0; r < R; ++r) {
            for (int q = 0; q < C; ++q) acc[r][q] += gr[r] * av[q];
          }
        }
        for (int r = 0; r < R; ++r) {
          for (int q = 0; q < C; ++q) sq += acc[r][q] * acc[r][q];
        }
      });
  return sq;
}

namespace {
double dot_f64(const float *x, const float *y, int64_t n) {
  double s0 = 0, s1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    s0 += static_cast<double>(x[i]) * y[i];
    s1 += static_cast<double>(x[i + 1]) * y[i + 1];
  }
  if (i < n) s0 += static_cast<double>(x[i]) * y[i];
  return s0 + s1;
}
}  // namespace

// <a a^T, g g^T> over the lower triangle (off-diagonal terms twice).
double norm_ghost_scalar(const float *a, const float *g, int64_t T, int64_t d, int64_t p, double *,
                         const float *, int64_t) {
  double diag = 0, off = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float *at = a + t * d, *gt = g + t * p;
    for (int64_t s = 0; s < t; ++s) off += dot_f64(at, a + s * d, d) * dot_f64(gt, g + s * p, p);
    diag += dot_f64(at, at, d) * dot_f64(gt, gt, p);
  }
  return diag + 2.0 * off;
}

}  // namespace linalg
}  // namespace dplora
