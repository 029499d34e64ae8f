// The transformer kernels of native/kernels/elementwise (LayerNorm forward and
// backward, the masked attention core forward and backward, ReLU, adds, the
// per-sample MSE loss) under
// every ISA path the CPU has, against plain double-precision references;
// results bit-identical across thread counts; arrays at odd float offsets
// (4-byte aligned only, as JS typed arrays are).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "dplora.h"
#include "elementwise.h"

namespace {

using dplora::elem::add_inplace;
using dplora::elem::attention_backward;
using dplora::elem::attention_forward;
using dplora::elem::gather_rows;
using dplora::elem::layer_norm_backward;
using dplora::elem::layer_norm_forward;
using dplora::elem::mse_loss;
using dplora::elem::relu_backward;
using dplora::elem::relu_forward;
using dplora::elem::token_mean;
using dplora::elem::token_spread;

std::mt19937_64 rng(12345);

// n floats at an odd offset into a fresh buffer (so the data is 4-byte aligned only).
struct Arr {
  std::vector<float> buf;
  float *p;
  explicit Arr(size_t n, float fill = 0.0f) : buf(n + 1, fill), p(buf.data() + 1) {}
  float &operator[](size_t i) { return p[i]; }
};

void fill_normal(Arr &a, size_t n, double mean, double sd) {
  std::normal_distribution<double> nd(mean, sd);
  for (size_t i = 0; i < n; ++i) a[i] = static_cast<float>(nd(rng));
}

// ---------------------------------------------------------------- LayerNorm

void test_layer_norm(const char *isa) {
  for (int64_t d : {1, 7, 16, 33, 256, 512}) {
    const int64_t batch = 3, seq = 5, rows = batch * seq, n = rows * d;
    Arr x(n), gamma(d), beta(d), y(n), xhat(n), inv(rows), g(n), gi(n), gw(batch * d),
        gb(batch * d);
    fill_normal(x, n, 3.0, 0.7);  // a mean far from 0 (cancellation in E[x^2] - E[x]^2)
    fill_normal(gamma, d, 1.0, 0.3);
    fill_normal(beta, d, 0.0, 0.3);
    fill_normal(g, n, 0.0, 1.0);
    const float eps = 1e-6f;
    CHECK(layer_norm_forward(x.p, rows, d, gamma.p, beta.p, eps, y.p, xhat.p, inv.p) == DPLORA_OK);
    CHECK(layer_norm_backward(g.p, xhat.p, inv.p, gamma.p, batch, seq, d, gi.p, gw.p, gb.p) ==
          DPLORA_OK);
    std::vector<double> rgw(batch * d, 0.0), rgb(batch * d, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float *xr = x.p + r * d;
      double m = 0, v = 0;
      for (int64_t j = 0; j < d; ++j) m += xr[j];
      m /= d;
      for (int64_t j = 0; j < d; ++j) v += (xr[j] - m) * (xr[j] - m);
      v /= d;
      const double is = 1.0 / std::sqrt(v + eps);
      CHECK_NEAR(inv[r], is, 2e-6);
      std::vector<double> xh(d);
      double m1 = 0, m2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        xh[j] = (xr[j] - m) * is;
        CHECK_NEAR(xhat[r * d + j], xh[j], 2e-6);
        CHECK_NEAR(y[r * d + j], xh[j] * gamma[j] + beta[j], 2e-6);
        const double gx = static_cast<double>(g[r * d + j]) * gamma[j];
        m1 += gx;
        m2 += gx * xh[j];
      }
      m1 /= d;
      m2 /= d;
      const int64_t b = r / seq;
      for (int64_t j = 0; j < d; ++j) {
        const double gx = static_cast<double>(g[r * d + j]) * gamma[j];
        // gi in units of its typical size (inv * |g|): relative 1e-5
        CHECK_NEAR(gi[r * d + j] / is, gx - m1 - xh[j] * m2, 1e-5);
        rgw[b * d + j] += g[r * d + j] * xh[j];
        rgb[b * d + j] += g[r * d + j];
      }
    }
    for (int64_t i = 0; i < batch * d; ++i) {
      CHECK_NEAR(gw[i], rgw[i], 1e-5);
      CHECK_NEAR(gb[i], rgb[i], 1e-5);
    }
    // eval: no xhat or inv_std, same y; backward without parameter sums, same gi
    Arr y2(n), gi2(n);
    CHECK(layer_norm_forward(x.p, rows, d, gamma.p, beta.p, eps, y2.p, nullptr, nullptr) ==
          DPLORA_OK);
    CHECK(std::memcmp(y.p, y2.p, n * sizeof(float)) == 0);
    CHECK(layer_norm_backward(g.p, xhat.p, inv.p, gamma.p, batch, seq, d, gi2.p, nullptr,
                              nullptr) == DPLORA_OK);
    CHECK(std::memcmp(gi.p, gi2.p, n * sizeof(float)) == 0);
  }
  // A constant row: variance 0, y = beta exactly.
  {
    const int64_t d = 40;
    Arr x(d, 2.5f), gamma(d, 1.0f), beta(d), y(d), inv(1);
    fill_normal(beta, d, 0.0, 1.0);
    CHECK(layer_norm_forward(x.p, 1, d, gamma.p, beta.p, 1e-5f, y.p, nullptr, inv.p) == DPLORA_OK);
    for (int64_t j = 0; j < d; ++j) CHECK(y[j] == beta[j]);
    CHECK_NEAR(inv[0], 1.0 / std::sqrt(1e-5f), 1e-6);
  }
  CHECK(layer_norm_forward(nullptr, 2, 0, nullptr, nullptr, 1e-5f, nullptr, nullptr, nullptr) ==
        DPLORA_EINVAL);
  std::printf("  layer norm (%s) done\n", isa);
}

// ---------------------------------------------------------------- attention

struct AttnCase {
  int64_t batch, seq, heads, dh;
  std::vector<uint8_t> valid;  // empty: no mask
};

// Double reference of the attention forward and backward of one case.
void attn_reference(const AttnCase &c, const float *q, const float *k, const float *v,
                    const float *gout, float scale, std::vector<double> &out,
                    std::vector<double> &probs, std::vector<double> &gq, std::vector<double> &gk,
                    std::vector<double> &gv) {
  const int64_t T = c.seq, H = c.heads, dh = c.dh, d = H * dh;
  out.assign(c.batch * T * d, 0.0);
  probs.assign(c.batch * H * T * T, 0.0);
  gq.assign(out.size(), 0.0);
  gk.assign(out.size(), 0.0);
  gv.assign(out.size(), 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    auto real = [&](int64_t s) { return c.valid.empty() || c.valid[b * T + s] != 0; };
    bool any = false;
    for (int64_t s = 0; s < T; ++s) any = any || real(s);
    for (int64_t h = 0; h < H; ++h) {
      double *P = probs.data() + (b * H + h) * T * T;
      auto at = [&](const float *x, int64_t t, int64_t j) {
        return (double)x[(b * T + t) * d + h * dh + j];
      };
      for (int64_t t = 0; t < T; ++t) {
        double *row = P + t * T;
        if (!any) {
          for (int64_t s = 0; s < T; ++s) row[s] = 1.0 / T;
        } else {
          double mx = -INFINITY;
          for (int64_t s = 0; s < T; ++s) {
            if (!real(s)) continue;
            double sc = 0;
            for (int64_t j = 0; j < dh; ++j) sc += at(q, t, j) * at(k, s, j);
            row[s] = scale * sc;
            mx = std::fmax(mx, row[s]);
          }
          double sum = 0;
          for (int64_t s = 0; s < T; ++s) {
            row[s] = real(s) ? std::exp(row[s] - mx) : 0.0;
            sum += row[s];
          }
          for (int64_t s = 0; s < T; ++s) row[s] /= sum;
        }
        for (int64_t j = 0; j < dh; ++j) {
          double o = 0;
          for (int64_t s = 0; s < T; ++s) o += row[s] * at(v, s, j);
          out[(b * T + t) * d + h * dh + j] = o;
        }
      }
      // backward
      for (int64_t t = 0; t < T; ++t) {
        const double *row = P + t * T;
        std::vector<double> dp(T);
        double dot = 0;
        for (int64_t s = 0; s < T; ++s) {
          double x = 0;
          for (int64_t j = 0; j < dh; ++j) x += at(gout, t, j) * at(v, s, j);
          dp[s] = x;
          dot += row[s] * x;
        }
        for (int64_t s = 0; s < T; ++s) {
          const double ds = scale * row[s] * (dp[s] - dot);
          for (int64_t j = 0; j < dh; ++j) {
            gq[(b * T + t) * d + h * dh + j] += ds * at(k, s, j);
            gk[(b * T + s) * d + h * dh + j] += ds * at(q, t, j);
            gv[(b * T + s) * d + h * dh + j] += row[s] * at(gout, t, j);
          }
        }
      }
    }
  }
}

void test_attention(const char *isa) {
  std::vector<AttnCase> cases;
  cases.push_back({2, 9, 2, 5, {}});
  {
    // prefix lengths 13, 4, 0 (no real key: uniform), 1
    AttnCase c{4, 13, 3, 4, std::vector<uint8_t>(4 * 13, 0)};
    const int lens[4] = {13, 4, 0, 1};
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < lens[b]; ++t) c.valid[b * 13 + t] = 1;
    cases.push_back(c);
  }
  {
    // real keys that are not a prefix
    AttnCase c{2, 21, 2, 17, std::vector<uint8_t>(2 * 21, 0)};
    for (int t = 0; t < 21; ++t) c.valid[t] = (t % 3) != 1;
    for (int t = 5; t < 9; ++t) c.valid[21 + t] = 1;
    cases.push_back(c);
  }
  cases.push_back({3, 40, 4, 64, {}});
  for (const AttnCase &c : cases) {
    const int64_t n = c.batch * c.seq * c.heads * c.dh, np = c.batch * c.heads * c.seq * c.seq;
    Arr q(n), k(n), v(n), go(n), out(n), probs(np), gq(n), gk(n), gv(n);
    fill_normal(q, n, 0.0, 1.0);
    fill_normal(k, n, 0.0, 1.0);
    fill_normal(v, n, 0.0, 1.0);
    fill_normal(go, n, 0.0, 1.0);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dh));
    const uint8_t *valid = c.valid.empty() ? nullptr : c.valid.data();
    // NaN in the padding rows of v and k: a real output must never read them
    std::vector<float> vpad(v.buf);
    if (valid != nullptr) {
      const int64_t d = c.heads * c.dh;
      for (int64_t r = 0; r < c.batch * c.seq; ++r)
        if (valid[r] == 0)
          for (int64_t j = 0; j < d; ++j) {
            v[r * d + j] = std::numeric_limits<float>::quiet_NaN();
          }
    }
    std::vector<double> rout, rprobs, rgq, rgk, rgv;
    // the reference reads padding v rows only with weight 0: use the finite copy
    attn_reference(c, q.p, k.p, vpad.data() + 1, go.p, scale, rout, rprobs, rgq, rgk, rgv);
    CHECK(attention_forward(q.p, k.p, v.p, c.batch, c.seq, c.heads, c.dh, scale, valid, out.p,
                            probs.p) == DPLORA_OK);
    bool prefix_cases = true;
    if (valid != nullptr) {
      for (int64_t b = 0; b < c.batch; ++b) {
        int64_t t = 0;
        while (t < c.seq && valid[b * c.seq + t]) ++t;
        for (int64_t s = t; s < c.seq; ++s) prefix_cases = prefix_cases && !valid[b * c.seq + s];
      }
    }
    for (int64_t i = 0; i < np; ++i) CHECK_NEAR(probs[i], rprobs[i], 2e-6);
    // padding keys get exactly zero weight
    if (valid != nullptr)
      for (int64_t i = 0; i < np; ++i) {
        const int64_t s = i % c.seq, b = i / (c.heads * c.seq * c.seq);
        bool any = false;
        for (int64_t u = 0; u < c.seq; ++u) any = any || valid[b * c.seq + u];
        if (any && valid[b * c.seq + s] == 0) CHECK(probs[i] == 0.0f);
      }
    // With NaN padding values only the prefix path never reads them.
    if (prefix_cases) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t b = i / (c.seq * c.heads * c.dh);
        bool any = valid == nullptr;
        for (int64_t u = 0; u < c.seq && !any; ++u) any = valid[b * c.seq + u] != 0;
        if (any) CHECK_NEAR(out[i], rout[i], 1e-5);
      }
    }
    // backward with finite v (the uniform case reads every row)
    std::memcpy(v.buf.data(), vpad.data(), vpad.size() * sizeof(float));
    CHECK(attention_forward(q.p, k.p, v.p, c.batch, c.seq, c.heads, c.dh, scale, valid, out.p,
                            probs.p) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) CHECK_NEAR(out[i], rout[i], 1e-5);
    CHECK(attention_backward(go.p, q.p, k.p, v.p, probs.p, c.batch, c.seq, c.heads, c.dh, scale,
                             valid, gq.p, gk.p, gv.p) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) {
      CHECK_NEAR(gq[i], rgq[i], 1e-5);
      CHECK_NEAR(gk[i], rgk[i], 1e-5);
      CHECK_NEAR(gv[i], rgv[i], 1e-5);
    }
    // without the mask argument (every key read) the gradients are the same within rounding
    Arr gq2(n), gk2(n), gv2(n);
    CHECK(attention_backward(go.p, q.p, k.p, v.p, probs.p, c.batch, c.seq, c.heads, c.dh, scale,
                             nullptr, gq2.p, gk2.p, gv2.p) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) {
      CHECK_NEAR(gq2[i], rgq[i], 1e-5);
      CHECK_NEAR(gk2[i], rgk[i], 1e-5);
      CHECK_NEAR(gv2[i], rgv[i], 1e-5);
    }
    // the thread count changes nothing
    Arr out1(n), probs1(np), gq1(n), gk1(n), gv1(n);
    const int threads = dplora_num_threads();
    dplora_set_num_threads(threads == 1 ? 3 : 1);
    CHECK(attention_forward(q.p, k.p, v.p, c.batch, c.seq, c.heads, c.dh, scale, valid, out1.p,
                            probs1.p) == DPLORA_OK);
    CHECK(attention_backward(go.p, q.p, k.p, v.p, probs.p, c.batch, c.seq, c.heads, c.dh, scale,
                             valid, gq1.p, gk1.p, gv1.p) == DPLORA_OK);
    dplora_set_num_threads(threads);
    CHECK(std::memcmp(out.p, out1.p, n * sizeof(float)) == 0);
    CHECK(std::memcmp(probs.p, probs1.p, np * sizeof(float)) == 0);
    CHECK(std::memcmp(gq.p, gq1.p, n * sizeof(float)) == 0);
    CHECK(std::memcmp(gk.p, gk1.p, n * sizeof(float)) == 0);
    CHECK(std::memcmp(gv.p, gv1.p, n * sizeof(float)) == 0);
  }
  std::printf("  attention (%s) done\n", isa);
}

// ---------------------------------------------------------------- ReLU, add

void test_relu_add(const char *isa) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float den = std::numeric_limits<float>::denorm_min();
  for (int64_t n : {1, 5, 16, 17, 100, 40000}) {
    Arr x(n), y(n), g(n), gi(n), s(n);
    fill_normal(x, n, 0.0, 1.0);
    fill_normal(g, n, 0.0, 1.0);
    const float special[] = {nan, -0.0f, 0.0f, inf, -inf, den, -den};
    for (int64_t i = 0; i < n && i < 7; ++i) x[i * 3 % n] = special[i];
    CHECK(relu_forward(x.p, y.p, n) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) {
      const float want = x[i] > 0.0f ? x[i] : 0.0f;
      CHECK(std::memcmp(&y[i], &want, sizeof(float)) == 0);  // +0, never -0 or NaN
    }
    CHECK(relu_backward(y.p, g.p, gi.p, n) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) {
      const float want = y[i] > 0.0f ? g[i] : 0.0f;
      CHECK(std::memcmp(&gi[i], &want, sizeof(float)) == 0);
    }
    // in place
    std::memcpy(s.p, x.p, n * sizeof(float));
    CHECK(relu_forward(s.p, s.p, n) == DPLORA_OK);
    CHECK(std::memcmp(s.p, y.p, n * sizeof(float)) == 0);
    std::memcpy(s.p, y.p, n * sizeof(float));
    CHECK(add_inplace(s.p, g.p, n) == DPLORA_OK);
    for (int64_t i = 0; i < n; ++i) {
      const float want = y[i] + g[i];
      CHECK(std::memcmp(&s[i], &want, sizeof(float)) == 0);
    }
  }
  std::printf("  relu, add (%s) done\n", isa);
}

// ---------------------------------------------------------------- MSE loss

// Against the sequential double formula: the gradient bitwise, each loss within one float ulp
// (lanes summed in another order), NaN and infinities propagated; the same bits on 1 and 3
// threads; bad arguments refused.
void test_mse(const char *isa) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto [batch, per] : {std::pair<int64_t, int64_t>{1, 1},
                            {3, 7},
                            {2, 15},
                            {4, 17},
                            {5, 33},
                            {2, 4099},
                            {40, 768}}) {
    const int64_t n = batch * per;
    Arr p(n), t(n), g(n), l(batch), g2(n), l2(batch);
    fill_normal(p, n, 0.0, 3.0);
    fill_normal(t, n, 0.5, 1.0);
    if (batch > 2) {
      p[0] = nan;
      p[per] = inf;
    }
    dplora_set_num_threads(1);
    CHECK(mse_loss(p.p, t.p, batch, per, l.p, g.p) == DPLORA_OK);
    for (int64_t i = 0; i < batch; ++i) {
      double s = 0;
      for (int64_t j = 0; j < per; ++j) {
        const double d = static_cast<double>(p[i * per + j]) - static_cast<double>(t[i * per + j]);
        s += d * d;
        const float want = static_cast<float>((2 * d) / static_cast<double>(per));
        CHECK(std::memcmp(&g[i * per + j], &want, sizeof(float)) == 0 ||
              (std::isnan(want) && std::isnan(g[i * per + j])));
      }
      const float want = static_cast<float>(s / static_cast<double>(per));
      if (std::isnan(want) || std::isinf(want)) {
        CHECK(std::isnan(want) ? std::isnan(l[i]) : l[i] == want);
      } else {
        int32_t a, b;
        std::memcpy(&a, &l[i], 4);
        std::memcpy(&b, &want, 4);
        CHECK(std::abs(a - b) <= 1);
      }
    }
    dplora_set_num_threads(3);
    CHECK(mse_loss(p.p, t.p, batch, per, l2.p, g2.p) == DPLORA_OK);
    CHECK(std::memcmp(l.p, l2.p, batch * sizeof(float)) == 0);
    CHECK(std::memcmp(g.p, g2.p, n * sizeof(float)) == 0);
  }
  dplora_set_num_threads(2);
  Arr p(4), l(1);
  CHECK(mse_loss(p.p, p.p, -1, 4, l.p, p.p) == DPLORA_EINVAL);
  CHECK(mse_loss(p.p, p.p, 1, -4, l.p, p.p) == DPLORA_EINVAL);
  CHECK(mse_loss(p.p, p.p, 1, 4, nullptr, p.p) == DPLORA_EINVAL);
  CHECK(mse_loss(p.p, p.p, 0, 4, nullptr, nullptr) == DPLORA_OK);
  std::printf("  mse (%s) done\n", isa);
}

// ---------------------------------------------------------------- token mean / spread

void test_tokens(const char *isa) {
  const int64_t batch = 4, seq = 9, f = 37;
  const int64_t n = batch * seq * f;
  // lengths 9, 3, 0; sequence 3 has holes
  std::vector<uint8_t> valid(batch * seq, 0);
  const int lens[3] = {9, 3, 0};
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < lens[b]; ++t) valid[b * seq + t] = 1;
  for (int t = 0; t < seq; t += 2) valid[3 * seq + t] = 1;
  Arr x(n), out(batch * f), g(batch * f), gx(n);
  fill_normal(x, n, 0.0, 1.0);
  fill_normal(g, batch * f, 0.0, 1.0);
  for (int64_t r = 0; r < batch * seq; ++r)  // padding rows hold NaN: never read
    if (valid[r] == 0)
      for (int64_t j = 0; j < f; ++j) x[r * f + j] = std::numeric_limits<float>::quiet_NaN();
  for (const bool acc : {false, true}) {
    for (int64_t i = 0; i < batch * f; ++i) out[i] = 0.5f;
    CHECK(token_mean(x.p, batch, seq, f, valid.data(), out.p, acc) == DPLORA_OK);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t cnt = 0;
      for (int64_t t = 0; t < seq; ++t) cnt += valid[b * seq + t];
      for (int64_t j = 0; j < f; ++j) {
        double m = 0;
        for (int64_t t = 0; t < seq; ++t)
          if (valid[b * seq + t]) m += x[(b * seq + t) * f + j];
        const double want = (acc ? 0.5 : 0.0) + (cnt == 0 ? 0.0 : m / cnt);
        CHECK_NEAR(out[b * f + j], want, 1e-6);
      }
    }
    for (int64_t i = 0; i < n; ++i) gx[i] = 0.25f;
    CHECK(token_spread(g.p, batch, seq, f, valid.data(), gx.p, acc) == DPLORA_OK);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t cnt = 0;
      for (int64_t t = 0; t < seq; ++t) cnt += valid[b * seq + t];
      for (int64_t t = 0; t < seq; ++t)
        for (int64_t j = 0; j < f; ++j) {
          const bool real = valid[b * seq + t] != 0;
          const double add = real ? static_cast<double>(g[b * f + j]) / cnt : 0.0;
          const double want = acc ? 0.25 + add : add;
          CHECK_NEAR(gx[(b * seq + t) * f + j], want, 1e-6);
        }
    }
  }
  // no mask: every token
  Arr y(n), o(batch * f);
  fill_normal(y, n, 1.0, 1.0);
  CHECK(token_mean(y.p, batch, seq, f, nullptr, o.p, false) == DPLORA_OK);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < f; ++j) {
      double m = 0;
      for (int64_t t = 0; t < seq; ++t) m += y[(b * seq + t) * f + j];
      CHECK_NEAR(o[b * f + j], m / seq, 1e-6);
    }
  std::printf("  token mean, spread (%s) done\n", isa);
}

void test_gather() {
  const int64_t vocab = 9, d = 21;
  Arr table(vocab * d), y(5 * d);
  fill_normal(table, vocab * d, 0.0, 1.0);
  const float ids[5] = {8, -1, 0, 3, 3};
  CHECK(gather_rows(table.p, vocab, d, ids, 5, 2.0f, y.p) == DPLORA_OK);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const float want =
          ids[r] == -1.0f ? 0.0f : 2.0f * table[static_cast<int64_t>(ids[r]) * d + j];
      CHECK(y[r * d + j] == want);
    }
  for (const float bad : {9.0f, -2.0f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    const float b2[2] = {0.0f, bad};
    CHECK(gather_rows(table.p, vocab, d, b2, 2, 1.0f, y.p) == DPLORA_EINVAL);
  }
}

}  // namespace

int main() {
  test_gather();
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    const char *name = dplora_isa_name(isa);
    std::printf("isa %s\n", name);
    test_layer_norm(name);
    test_attention(name);
    test_relu_add(name);
    test_mse(name);
    test_tokens(name);
  }
  TEST_MAIN_END();
}
