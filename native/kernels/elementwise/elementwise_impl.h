// The row kernels of elementwise.h written once over a small SIMD interface V
// (included by elementwise_avx2.cc and elementwise_avx512.cc, each with its
// own V; the scalar path is written out in elementwise_scalar.cc).
//
// V provides: T (the vector), W (its floats), load/store (unaligned),
// loadn(p, n, fill) and storen(p, v, n) for the first n < W lanes, set1, zero,
// add, sub, mul, fmadd(a, b, c) = a b + c, fnmadd(a, b, c) = c - a b, max,
// round (to nearest), pow2(k) (2^k for integral k in [-126, 127]),
// keep_ge(x, t, v) (v where x >= t, else 0; NaN x gives 0), keep_pos(y, g)
// (g where y > 0, else 0), hsum (the lanes summed in double, in lane order),
// hmax, and mse_row (RowKernels::mse_row, written with double vectors).
#pragma once
#include <cmath>
#include <cstdint>

#include "elementwise.h"

namespace dplora {
namespace elem {

template <class V>
struct Impl {
  using T = typename V::T;
  static constexpr int64_t W = V::W;

  // exp(x) for x <= 0: x = k ln2 + r, |r| <= ln(2)/2, exp(r) by its degree-7
  // Taylor polynomial (truncation below 6e-9 relative), times 2^k; 0 below
  // ln(FLT_MIN) (and for -inf or NaN).
  static T exp_nonpos(T x) {
    const T lo = V::set1(-87.3365402f);
    const T xc = V::max(x, lo);
    const T k = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
    T r = V::fnmadd(k, V::set1(0.693359375f), xc);
    r = V::fnmadd(k, V::set1(-2.12194440e-4f), r);
    T p = V::set1(1.0f / 5040);
    p = V::fmadd(p, r, V::set1(1.0f / 720));
    p = V::fmadd(p, r, V::set1(1.0f / 120));
    p = V::fmadd(p, r, V::set1(1.0f / 24));
    p = V::fmadd(p, r, V::set1(1.0f / 6));
    p = V::fmadd(p, r, V::set1(0.5f));
    p = V::fmadd(p, r, V::set1(1.0f));
    p = V::fmadd(p, r, V::set1(1.0f));
    return V::keep_ge(x, lo, V::mul(p, V::pow2(k)));
  }

  static float ln_fwd(const float *x, int64_t d, const float *gamma, const float *beta, float eps,
                      float *y, float *xhat) {
    // Pass 1: a float estimate m0 of the mean.  Pass 2: E[x - m0] and E[(x - m0)^2]
    // (no cancellation: m0 is within rounding of the mean), so mean = m0 + E[c] and
    // var = E[c^2] - E[c]^2 in double.
    T s = V::zero();
    int64_t j = 0;
    for (; j + W <= d; j += W) s = V::add(s, V::load(x + j));
    if (j < d) s = V::add(s, V::loadn(x + j, d - j, 0.0f));
    const float m0 = static_cast<float>(V::hsum(s) / static_cast<double>(d));
    const T mv = V::set1(m0);
    T s1 = V::zero(), s2 = V::zero();
    for (j = 0; j + W <= d; j += W) {
      const T c = V::sub(V::load(x + j), mv);
      s1 = V::add(s1, c);
      s2 = V::fmadd(c, c, s2);
    }
    if (j < d) {
      const T c = V::sub(V::loadn(x + j, d - j, m0), mv);
      s1 = V::add(s1, c);
      s2 = V::fmadd(c, c, s2);
    }
    const double e1 = V::hsum(s1) / static_cast<double>(d);
    double var = V::hsum(s2) / static_cast<double>(d) - e1 * e1;
    if (var < 0) var = 0;
    const double mean = static_cast<double>(m0) + e1;
    const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
    // x - mean as (x - hi) - lo, mean = hi + lo in two floats.
    const float mhi = static_cast<float>(mean);
    const float mlo = static_cast<float>(mean - static_cast<double>(mhi));
    const T hi = V::set1(mhi), lo = V::set1(mlo), iv = V::set1(static_cast<float>(inv));
    for (j = 0; j + W <= d; j += W) {
      const T xh = V::mul(V::sub(V::sub(V::load(x + j), hi), lo), iv);
      if (xhat != nullptr) V::store(xhat + j, xh);
      V::store(y + j, V::fmadd(xh, V::load(gamma + j), V::load(beta + j)));
    }
    if (j < d) {
      const int64_t n = d - j;
      const T xh = V::mul(V::sub(V::sub(V::loadn(x + j, n, 0.0f), hi), lo), iv);
      if (xhat != nullptr) V::storen(xhat + j, xh, n);
      V::storen(y + j, V::fmadd(xh, V::loadn(gamma + j, n, 0.0f), V::loadn(beta + j, n, 0.0f)), n);
    }
    return static_cast<float>(inv);
  }

  static void ln_bwd(const float *g, const float *xhat, float inv, const float *gamma, int64_t d,
                     float *gi, float *gw, float *gb) {
    T a1 = V::zero(), a2 = V::zero();
    int64_t j = 0;
    for (; j + W <= d; j += W) {
      const T gx = V::mul(V::load(g + j), V::load(gamma + j));
      a1 = V::add(a1, gx);
      a2 = V::fmadd(gx, V::load(xhat + j), a2);
    }
    if (j < d) {
      const int64_t n = d - j;
      const T gx = V::mul(V::loadn(g + j, n, 0.0f), V::loadn(gamma + j, n, 0.0f));
      a1 = V::add(a1, gx);
      a2 = V::fmadd(gx, V::loadn(xhat + j, n, 0.0f), a2);
    }
    const T m1 = V::set1(static_cast<float>(V::hsum(a1) / static_cast<double>(d)));
    const T m2 = V::set1(static_cast<float>(V::hsum(a2) / static_cast<double>(d)));
    const T iv = V::set1(inv);
    for (j = 0; j + W <= d; j += W) {
      const T gv = V::load(g + j), xh = V::load(xhat + j);
      const T t = V::fnmadd(xh, m2, V::sub(V::mul(gv, V::load(gamma + j)), m1));
      V::store(gi + j, V::mul(iv, t));
      if (gw != nullptr) V::store(gw + j, V::fmadd(gv, xh, V::load(gw + j)));
      if (gb != nullptr) V::store(gb + j, V::add(V::load(gb + j), gv));
    }
    if (j < d) {
      const int64_t n = d - j;
      const T gv = V::loadn(g + j, n, 0.0f), xh = V::loadn(xhat + j, n, 0.0f);
      const T t = V::fnmadd(xh, m2, V::sub(V::mul(gv, V::loadn(gamma + j, n, 0.0f)), m1));
      V::storen(gi + j, V::mul(iv, t), n);
      if (gw != nullptr) V::storen(gw + j, V::fmadd(gv, xh, V::loadn(gw + j, n, 0.0f)), n);
      if (gb != nullptr) V::storen(gb + j, V::add(V::loadn(gb + j, n, 0.0f), gv), n);
    }
  }

  static void softmax(float *p, int64_t len, int64_t n) {
    const float ninf = -INFINITY;
    T mx = V::set1(ninf);
    int64_t j = 0;
    for (; j + W <= len; j += W) mx = V::max(V::load(p + j), mx);
    if (j < len) mx = V::max(V::loadn(p + j, len - j, ninf), mx);
    const T m = V::set1(V::hmax(mx));
    T s = V::zero();
    for (j = 0; j + W <= len; j += W) {
      const T e = exp_nonpos(V::sub(V::load(p + j), m));
      V::store(p + j, e);
      s = V::add(s, e);
    }
    if (j < len) {
      const T e = exp_nonpos(V::sub(V::loadn(p + j, len - j, ninf), m));
      V::storen(p + j, e, len - j);
      s = V::add(s, e);
    }
    const T inv = V::set1(static_cast<float>(1.0 / V::hsum(s)));
    for (j = 0; j + W <= len; j += W) V::store(p + j, V::mul(V::load(p + j), inv));
    if (j < len) V::storen(p + j, V::mul(V::loadn(p + j, len - j, 0.0f), inv), len - j);
    for (j = len; j < n; ++j) p[j] = 0.0f;
  }

  static void softmax_bwd(const float *p, float *dp, int64_t n, float scale) {
    T a = V::zero();
    int64_t j = 0;
    for (; j + W <= n; j += W) a = V::fmadd(V::load(p + j), V::load(dp + j), a);
    if (j < n) a = V::fmadd(V::loadn(p + j, n - j, 0.0f), V::loadn(dp + j, n - j, 0.0f), a);
    const T dot = V::set1(static_cast<float>(V::hsum(a)));
    const T sc = V::set1(scale);
    for (j = 0; j + W <= n; j += W)
      V::store(dp + j, V::mul(V::mul(sc, V::load(p + j)), V::sub(V::load(dp + j), dot)));
    if (j < n) {
      const T r = V::mul(V::mul(sc, V::loadn(p + j, n - j, 0.0f)),
                         V::sub(V::loadn(dp + j, n - j, 0.0f), dot));
      V::storen(dp + j, r, n - j);
    }
  }

  static void relu(const float *x, float *y, int64_t n) {
    const T z = V::zero();
    int64_t j = 0;
    for (; j + W <= n; j += W) V::store(y + j, V::max(V::load(x + j), z));
    if (j < n) V::storen(y + j, V::max(V::loadn(x + j, n - j, 0.0f), z), n - j);
  }

  static void relu_bwd(const float *y, const float *g, float *gi, int64_t n) {
    int64_t j = 0;
    for (; j + W <= n; j += W) V::store(gi + j, V::keep_pos(V::load(y + j), V::load(g + j)));
    if (j < n)
      V::storen(gi + j, V::keep_pos(V::loadn(y + j, n - j, 0.0f), V::loadn(g + j, n - j, 0.0f)),
                n - j);
  }

  static void add(float *y, const float *x, int64_t n) {
    int64_t j = 0;
    for (; j + W <= n; j += W) V::store(y + j, V::add(V::load(y + j), V::load(x + j)));
    if (j < n)
      V::storen(y + j, V::add(V::loadn(y + j, n - j, 0.0f), V::loadn(x + j, n - j, 0.0f)), n - j);
  }

  static constexpr RowKernels table() {
    return RowKernels{ln_fwd, ln_bwd, softmax, softmax_bwd, relu, relu_bwd, add, V::mse_row};
  }
};

}  // namespace elem
}  // namespace dplora
