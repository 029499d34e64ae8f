// Portable row kernels of elementwise.h: plain loops, sums in double, exp in
// double (the reference the SIMD paths are tested against as well).
#include <cmath>

#include "elementwise.h"

namespace dplora {
namespace elem {
namespace {

float ln_fwd(const float *x, int64_t d, const float *gamma, const float *beta, float eps, float *y,
             float *xhat) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) s += x[j];
  const double mean = s / static_cast<double>(d);
  double v = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double c = static_cast<double>(x[j]) - mean;
    v += c * c;
  }
  const double inv = 1.0 / std::sqrt(v / static_cast<double>(d) + static_cast<double>(eps));
  for (int64_t j = 0; j < d; ++j) {
    const double xh = (static_cast<double>(x[j]) - mean) * inv;
    if (xhat != nullptr) xhat[j] = static_cast<float>(xh);
    y[j] = static_cast<float>(xh * gamma[j] + beta[j]);
  }
  return static_cast<float>(inv);
}

void ln_bwd(const float *g, const float *xhat, float inv, const float *gamma, int64_t d, float *gi,
            float *gw, float *gb) {
  double m1 = 0, m2 = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double gx = static_cast<double>(g[j]) * gamma[j];
    m1 += gx;
    m2 += gx * xhat[j];
  }
  m1 /= static_cast<double>(d);
  m2 /= static_cast<double>(d);
  for (int64_t j = 0; j < d; ++j) {
    const double gx = static_cast<double>(g[j]) * gamma[j];
    gi[j] = static_cast<float>(inv * (gx - m1 - xhat[j] * m2));
    if (gw != nullptr) gw[j] += g[j] * xhat[j];
    if (gb != nullptr) gb[j] += g[j];
  }
}

void softmax(float *p, int64_t len, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < len; ++j) mx = std::fmax(mx, p[j]);
  double s = 0;
  for (int64_t j = 0; j < len; ++j) {
    const float e = static_cast<float>(std::exp(static_cast<double>(p[j]) - mx));
    p[j] = e;
    s += e;
  }
  const float inv = static_cast<float>(1.0 / s);
  for (int64_t j = 0; j < len; ++j) p[j] *= inv;
  for (int64_t j = len; j < n; ++j) p[j] = 0.0f;
}

void softmax_bwd(const float *p, float *dp, int64_t n, float scale) {
  double dot = 0;
  for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(p[j]) * dp[j];
  const float df = static_cast<float>(dot);
  for (int64_t j = 0; j < n; ++j) dp[j] = scale * p[j] * (dp[j] - df);
}

void relu(const float *x, float *y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] > 0.0f ? x[j] : 0.0f;
}

void relu_bwd(const float *y, const float *g, float *gi, int64_t n) {
  for (int64_t j = 0; j < n; ++j) gi[j] = y[j] > 0.0f ? g[j] : 0.0f;
}

void add(float *y, const float *x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += x[j];
}

// In the JS reference's order: d, s += d * d and g one element at a time.
double mse_row(const float *p, const float *t, int64_t n, double per, float *g) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double d = static_cast<double>(p[j]) - static_cast<double>(t[j]);
    s += d * d;
    g[j] = static_cast<float>((2 * d) / per);
  }
  return s;
}

}  // namespace

const RowKernels kRowScalar = {ln_fwd, ln_bwd, softmax, softmax_bwd, relu, relu_bwd, add, mse_row};

}  // namespace elem
}  // namespace dplora
