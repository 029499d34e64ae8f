// Linalg kernels against plain double-precision references, under every ISA
// this CPU runs and with 1 and 2 pool threads: SGEMM (transposes, strides,
// alpha/beta, edge tiles), per-sample norms (direct/ghost/bound, cancelling
// tokens), the clipped sum (dropped samples with NaN), clipping.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "dplora.h"

namespace {

uint64_t g_state = 0x9E3779B97F4A7C15ull;
double urand() {  // [0, 1)
  g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<double>(g_state >> 11) * (1.0 / 9007199254740992.0);
}
float frand() {
  return static_cast<float>(2.0 * urand() - 1.0);
}
std::vector<float> rvec(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto &x : v) x = frand();
  return v;
}

void test_sgemm() {
  const int64_t sizes[][3] = {{0, 0, 0},
                              {1, 1, 1},
                              {0, 3, 2},
                              {3, 0, 2},
                              {3, 4, 0},
                              {1, 17, 5},
                              {7, 1, 9},
                              {5, 5, 1},
                              {13, 33, 7},
                              {6, 16, 256},
                              {25, 40, 300},
                              {97, 70, 513},
                              {150, 31, 64},
                              {12, 32, 3},
                              {73, 129, 260},
                              // narrow products (LoRA ranks): the skinny and swapped paths
                              {100, 8, 768},
                              {49, 5, 33},
                              {64, 1, 17},
                              {50, 16, 40},
                              {97, 12, 23},
                              {300, 9, 16},
                              {72, 3, 100}};
  for (auto &s : sizes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t ra = ta ? k : m, wa = ta ? m : k, rb = tb ? n : k, wb = tb ? k : n;
        const int64_t lda = wa + (ta ? 3 : 1), ldb = wb + 2, ldc = n + 5;
        std::vector<float> A = rvec(std::max<int64_t>(ra * lda, 1)),
                           B = rvec(std::max<int64_t>(rb * ldb, 1));
        std::vector<float> C0 = rvec(std::max<int64_t>(m * ldc, 1));
        for (float beta : {0.0f, 1.0f, -0.5f}) {
          const float alpha = beta == 1.0f ? 1.0f : 0.75f;
          std::vector<float> C = C0;
          if (beta == 0.0f) {  // write-only: NaN in C must not survive
            for (auto &x : C) x = std::numeric_limits<float>::quiet_NaN();
          }
          std::vector<float> Cpad = C;
          CHECK(dplora_sgemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, C.data(),
                             ldc) == DPLORA_OK);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double ref = 0, mag = 0;
              for (int64_t q = 0; q < k; ++q) {
                const double x = ta ? A[q * lda + i] : A[i * lda + q];
                const double y = tb ? B[j * ldb + q] : B[q * ldb + j];
                ref += x * y;
                mag += std::fabs(x * y);
              }
              const double c0 = beta == 0.0f ? 0.0 : C0[i * ldc + j];
              ref = alpha * ref + beta * c0;
              const double got = C[i * ldc + j];
              const double tol = 1e-6 * (std::fabs(alpha) * mag + std::fabs(beta * c0)) + 1e-7;
              if (!(std::fabs(got - ref) <= tol)) {
                std::fprintf(
                    stderr,
                    "sgemm m=%lld n=%lld k=%lld ta=%d tb=%d beta=%g (%lld,%lld): %g vs %g\n",
                    (long long)m, (long long)n, (long long)k, ta, tb, beta, (long long)i,
                    (long long)j, got, ref);
                ++g_failures;
                return;
              }
            }
            // Padding between rows is untouched.
            for (int64_t j = n; j < ldc && i * ldc + j < static_cast<int64_t>(C.size()); ++j) {
              const float before = Cpad[i * ldc + j], after = C[i * ldc + j];
              CHECK(std::memcmp(&before, &after, sizeof(float)) == 0);
            }
          }
        }
      }
    }
  }
  // Bad arguments.
  float x = 0;
  CHECK(dplora_sgemm(0, 0, -1, 1, 1, 1, &x, 1, &x, 1, 0, &x, 1) == DPLORA_EINVAL);
  CHECK(dplora_sgemm(0, 0, 2, 2, 2, 1, &x, 1, &x, 2, 0, &x, 2) == DPLORA_EINVAL);  // lda < k
  CHECK(dplora_sgemm(0, 0, 2, 2, 2, 1, nullptr, 2, &x, 2, 0, &x, 2) == DPLORA_EINVAL);
}

// Reference ||g^T a||_F^2 in double (products of floats are exact).
double ref_norm(const float *a, const float *g, int64_t T, int64_t d, int64_t p) {
  double s = 0;
  for (int64_t j = 0; j < p; ++j) {
    for (int64_t k = 0; k < d; ++k) {
      double v = 0;
      for (int64_t t = 0; t < T; ++t) v += static_cast<double>(g[t * p + j]) * a[t * d + k];
      s += v * v;
    }
  }
  return s;
}

void test_norms() {
  const int64_t shapes[][4] = {{0, 3, 4, 5},  {2, 0, 4, 5},   {2, 3, 0, 5},  {3, 1, 7, 5},
                               {2, 2, 1, 1},  {3, 5, 9, 3},   {2, 7, 17, 9}, {4, 16, 33, 8},
                               {2, 9, 8, 40}, {3, 33, 70, 13}};
  for (auto &s : shapes) {
    const int64_t B = s[0], T = s[1], d = s[2], p = s[3];
    for (int adversarial = 0; adversarial < 2; ++adversarial) {
      std::vector<float> a = rvec(B * T * d), g = rvec(B * T * p);
      if (adversarial) {  // token pairs with equal a and nearly opposite g
        for (int64_t i = 0; i < B; ++i) {
          for (int64_t t = 0; t + 1 < T; t += 2) {
            for (int64_t k = 0; k < d; ++k) a[(i * T + t + 1) * d + k] = a[(i * T + t) * d + k];
            for (int64_t j = 0; j < p; ++j) {
              g[(i * T + t + 1) * p + j] = -g[(i * T + t) * p + j] * (1.0f - 1.0f / 1024);
            }
          }
        }
      }
      std::vector<double> direct(B), ghost(B), bound(B), autom(B);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_DIRECT,
                                direct.data()) == DPLORA_OK);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_GHOST, ghost.data()) ==
            DPLORA_OK);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_BOUND, bound.data()) ==
            DPLORA_OK);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_AUTO, autom.data()) ==
            DPLORA_OK);
      for (int64_t i = 0; i < B; ++i) {
        const double ref = ref_norm(a.data() + i * T * d, g.data() + i * T * p, T, d, p);
        CHECK(std::fabs(direct[i] - ref) <= 1e-9 * ref + 1e-300);
        if (!(std::fabs(ghost[i] - ref) <=
              1e-9 * ref + 1e-14 * bound[i])) {  // ghost error ~ eps * bound
          std::fprintf(stderr,
                       "ghost B=%lld T=%lld d=%lld p=%lld adv=%d: %.17g vs %.17g (bound %.17g)\n",
                       (long long)B, (long long)T, (long long)d, (long long)p, adversarial,
                       ghost[i], ref, bound[i]);
          ++g_failures;
        }
        CHECK(std::fabs(autom[i] - ref) <= 1e-9 * ref + 1e-300);
        CHECK(bound[i] >= ref * (1 - 1e-12));
      }
    }
  }
  double o = 0;
  CHECK(dplora_grad_norm_sq(nullptr, nullptr, 1, 1, 1, 1, DPLORA_NORM_DIRECT, &o) == DPLORA_EINVAL);
  float f = 1;
  CHECK(dplora_grad_norm_sq(&f, &f, 1, 1, 1, 1, 7, &o) == DPLORA_EINVAL);
  CHECK(dplora_grad_norm_sq(&f, &f, 1, -1, 1, 1, 0, &o) == DPLORA_EINVAL);
}

void test_clipped_sum() {
  // The last three have more than 2048 rows with a narrow side: the
  // fixed-size row pieces path (with a dropped sample splitting the runs).
  const int64_t shapes[][4] = {{0, 3, 4, 5},    {1, 1, 1, 1},    {3, 5, 9, 3},
                               {4, 7, 33, 17},  {5, 20, 8, 40},  {6, 64, 70, 8},
                               {9, 300, 40, 5}, {7, 700, 3, 30}, {3, 2100, 17, 16}};
  for (auto &s : shapes) {
    const int64_t B = s[0], T = s[1], d = s[2], p = s[3];
    std::vector<float> a = rvec(B * T * d), g = rvec(B * T * p), f(B);
    for (int64_t i = 0; i < B; ++i) f[i] = static_cast<float>(urand());
    if (B > 1) {  // a dropped sample full of NaN/Inf
      f[1] = 0;
      for (int64_t t = 0; t < T; ++t) {
        a[(1 * T + t) * d] = std::numeric_limits<float>::quiet_NaN();
        g[(1 * T + t) * p] = std::numeric_limits<float>::infinity();
      }
    }
    for (int acc = 0; acc < 2; ++acc) {
      std::vector<float> out = rvec(std::max<int64_t>(p * d, 1)), out0 = out;
      CHECK(dplora_clipped_sum(a.data(), g.data(), B, T, d, p, f.data(), out.data(), acc) ==
            DPLORA_OK);
      for (int64_t j = 0; j < p; ++j) {
        for (int64_t k = 0; k < d; ++k) {
          double ref = acc ? out0[j * d + k] : 0.0, mag = std::fabs(ref);
          for (int64_t i = 0; i < B; ++i) {
            if (f[i] == 0) continue;
            for (int64_t t = 0; t < T; ++t) {
              const double v =
                  static_cast<double>(f[i] * g[(i * T + t) * p + j]) * a[(i * T + t) * d + k];
              ref += v;
              mag += std::fabs(v);
            }
          }
          CHECK(std::isfinite(out[j * d + k]));
          CHECK(std::fabs(out[j * d + k] - ref) <= 1e-6 * mag + 1e-7);
        }
      }
    }
  }
}

void test_clip() {
  const double n2[] = {0.0, 0.25, 4.0, 100.0, std::nan(""), INFINITY, -1.0};
  float f[7];
  dplora_clip_stats st{};
  CHECK(dplora_clip_factors(n2, 7, 1.0, f, &st) == DPLORA_OK);
  CHECK(f[0] == 1.0f && f[1] == 1.0f);
  CHECK(f[2] <= 1.0 / (2.0 + 1e-6) && f[2] > 0.4999f);
  CHECK(static_cast<double>(f[3]) * 10.0 <= 1.0);
  CHECK(f[4] == 0.0f && f[5] == 0.0f && f[6] == 0.0f);
  CHECK(st.clipped == 2 && st.nonfinite == 3);
  CHECK(dplora_clip_factors(n2, 7, 0.0, f, &st) == DPLORA_EINVAL);
  CHECK(dplora_clip_factors(n2, 7, NAN, f, &st) == DPLORA_EINVAL);

  const int64_t B = 5, D = 37;
  std::vector<float> x = rvec(B * D);
  for (int64_t j = 0; j < D; ++j) x[2 * D + j] *= 0.01f;  // under the threshold
  x[3 * D + 5] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> orig = x;
  float fac[B];
  CHECK(dplora_clip_rows(x.data(), B, D, 1.0, fac, &st) == DPLORA_OK);
  CHECK(st.nonfinite == 1 && st.clipped == 3);
  for (int64_t i = 0; i < B; ++i) {
    double s = 0;
    for (int64_t j = 0; j < D; ++j) s += static_cast<double>(x[i * D + j]) * x[i * D + j];
    CHECK(std::sqrt(s) <= 1.0 + 1e-6);
    if (i == 3) {
      CHECK(s == 0 && fac[i] == 0);
    } else if (i == 2) {
      CHECK(fac[i] == 1.0f);
      for (int64_t j = 0; j < D; ++j) CHECK(x[i * D + j] == orig[i * D + j]);
    } else {
      CHECK(std::fabs(std::sqrt(s) - 1.0) < 1e-5);
    }
  }
}

void test_thread_invariance_sum() {
  const int64_t B = 10, T = 500, d = 37, p = 6;
  std::vector<float> a = rvec(B * T * d), g = rvec(B * T * p), f(B, 0.5f), o1(p * d), o2(p * d);
  f[4] = 0;
  dplora_set_num_threads(1);
  CHECK(dplora_clipped_sum(a.data(), g.data(), B, T, d, p, f.data(), o1.data(), 0) == DPLORA_OK);
  dplora_set_num_threads(2);
  CHECK(dplora_clipped_sum(a.data(), g.data(), B, T, d, p, f.data(), o2.data(), 0) == DPLORA_OK);
  CHECK(std::memcmp(o1.data(), o2.data(), o1.size() * sizeof(float)) == 0);
  std::vector<double> n1(B), n2(B);
  dplora_set_num_threads(1);
  CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_DIRECT, n1.data()) ==
        DPLORA_OK);
  dplora_set_num_threads(2);
  CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, DPLORA_NORM_DIRECT, n2.data()) ==
        DPLORA_OK);
  CHECK(std::memcmp(n1.data(), n2.data(), n1.size() * sizeof(double)) == 0);
}

void test_thread_invariance() {
  // Shapes whose split (shared panels, row or column split) changes with the
  // thread count: m = 40 / 60 rows are 4-5 row tiles (shared panels on 1 and
  // 2 threads vs a column split on 2 and 4).
  const int64_t shapes[][3] = {
      {130, 150, 700}, {40, 300, 260}, {60, 200, 300}, {30, 500, 100}, {400, 200, 600}};
  for (auto &s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> A = rvec(m * k), B = rvec(k * n), C1(m * n), C2(m * n);
      const int64_t ldb = tb ? k : n;
      dplora_set_num_threads(1);
      CHECK(dplora_sgemm(0, tb, m, n, k, 1, A.data(), k, B.data(), ldb, 0, C1.data(), n) ==
            DPLORA_OK);
      for (int threads : {2, 4}) {
        dplora_set_num_threads(threads);
        CHECK(dplora_sgemm(0, tb, m, n, k, 1, A.data(), k, B.data(), ldb, 0, C2.data(), n) ==
              DPLORA_OK);
        CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0);
      }
      // The pre-packed product (its own row split) is bitwise the same on
      // any thread count, and equal to the plain product.
      dplora_packed_b *pb = nullptr;
      CHECK(dplora_sgemm_pack_b(tb, k, n, B.data(), ldb, &pb) == DPLORA_OK);
      for (int threads : {1, 2, 4}) {
        dplora_set_num_threads(threads);
        std::fill(C2.begin(), C2.end(), -1.0f);
        CHECK(dplora_sgemm_packed(0, m, 1, A.data(), k, pb, 0, C2.data(), n) == DPLORA_OK);
        CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0);
      }
      dplora_packed_b_free(pb);
    }
  }
  dplora_set_num_threads(2);
}

// k = 1, beta = 0 (a bias broadcast) has its own one-pass path: bitwise the
// blocked product (here the pre-packed one), signed zeros, infinities and
// NaN included, both orientations of each operand.
void test_sgemm_rank1() {
  const int64_t m = 37, n = 70;
  std::vector<float> A = rvec(m), B = rvec(n);
  A[1] = 0.0f;
  A[2] = -0.0f;
  B[3] = -0.0f;
  B[4] = std::numeric_limits<float>::infinity();
  A[5] = std::numeric_limits<float>::quiet_NaN();
  for (float alpha : {1.0f, -0.75f}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // op(A) is m x 1 (stored m x 1, or 1 x m when ta); op(B) is 1 x n.
        const int64_t lda = ta ? m : 1, ldb = tb ? 1 : n;
        std::vector<float> C1(m * n, 5.0f), C2(m * n, -5.0f);
        CHECK(dplora_sgemm(ta, tb, m, n, 1, alpha, A.data(), lda, B.data(), ldb, 0, C1.data(), n) ==
              DPLORA_OK);
        dplora_packed_b *pb = nullptr;
        CHECK(dplora_sgemm_pack_b(tb, 1, n, B.data(), ldb, &pb) == DPLORA_OK);
        CHECK(dplora_sgemm_packed(ta, m, alpha, A.data(), lda, pb, 0, C2.data(), n) == DPLORA_OK);
        dplora_packed_b_free(pb);
        CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0);
        CHECK(!std::signbit(C1[2 * n + 0]) && C1[2 * n + 0] == 0.0f);  // -0 * b + 0 is +0
      }
    }
  }
}

// The packed-operand product is bitwise equal to dplora_sgemm (itself checked
// against a double reference above) on every path: one block, split over
// columns (few rows), over rows and with shared panels (large), edge panels.
void test_sgemm_packed() {
  const int64_t sizes[][3] = {{1, 1, 1},       {3, 17, 5},   {32, 768, 300}, {20, 70, 513},
                              {300, 200, 300}, {97, 33, 64}, {7, 130, 1},    {500, 40, 260}};
  for (auto &s : sizes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t ra = ta ? k : m, wa = ta ? m : k, rb = tb ? n : k, wb = tb ? k : n;
        const int64_t lda = wa + 1, ldb = wb + 3, ldc = n + 2;
        const std::vector<float> A = rvec(ra * lda), B = rvec(rb * ldb), C0 = rvec(m * ldc);
        dplora_packed_b *pb = nullptr;
        CHECK(dplora_sgemm_pack_b(tb, k, n, B.data(), ldb, &pb) == DPLORA_OK);
        CHECK(pb != nullptr && dplora_packed_b_isa(pb) == dplora_active_isa());
        int64_t pk = -1, pn = -1;
        dplora_packed_b_dims(pb, &pk, &pn);
        CHECK(pk == k && pn == n && dplora_packed_b_bytes(pb) >= k * n * 4);
        for (float beta : {0.0f, 1.0f, -0.5f}) {
          std::vector<float> cu = C0, cp = C0;
          CHECK(dplora_sgemm(ta, tb, m, n, k, 0.75f, A.data(), lda, B.data(), ldb, beta, cu.data(),
                             ldc) == DPLORA_OK);
          CHECK(dplora_sgemm_packed(ta, m, 0.75f, A.data(), lda, pb, beta, cp.data(), ldc) ==
                DPLORA_OK);
          CHECK(std::memcmp(cu.data(), cp.data(), cu.size() * sizeof(float)) == 0);
        }
        dplora_packed_b_free(pb);
      }
    }
  }
  // Bad arguments.
  dplora_packed_b *pb = nullptr;
  const std::vector<float> B = rvec(12);
  CHECK(dplora_sgemm_pack_b(0, 3, 4, B.data(), 3, &pb) == DPLORA_EINVAL && pb == nullptr);
  CHECK(dplora_sgemm_pack_b(0, 3, 4, nullptr, 4, &pb) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_pack_b(0, 3, 4, B.data(), 4, nullptr) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed(0, 2, 1, B.data(), 3, nullptr, 0, nullptr, 4) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_pack_b(0, 3, 4, B.data(), 4, &pb) == DPLORA_OK);
  std::vector<float> c(8);
  CHECK(dplora_sgemm_packed(0, 2, 1, B.data(), 2, pb, 0, c.data(), 4) == DPLORA_EINVAL);  // lda
  CHECK(dplora_sgemm_packed(0, 2, 1, B.data(), 3, pb, 0, c.data(), 3) == DPLORA_EINVAL);  // ldc
  // A handle made for one ISA path is refused under another.
  const int isa = dplora_active_isa();
  for (int other = DPLORA_ISA_SCALAR; other <= DPLORA_ISA_AVX512; ++other) {
    if (other == isa || !dplora_isa_supported(other)) continue;
    CHECK(dplora_set_isa(other) == DPLORA_OK);
    CHECK(dplora_sgemm_packed(0, 2, 1, B.data(), 3, pb, 0, c.data(), 4) == DPLORA_ESTALE);
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
  }
  CHECK(dplora_sgemm_packed(0, 2, 1, B.data(), 3, pb, 0, c.data(), 4) == DPLORA_OK);
  dplora_packed_b_free(pb);
  dplora_packed_b_free(nullptr);
}

// dplora_sgemm_packed_init: bitwise the init product (beta) followed by the packed product
// (beta = 1), and the double reference; odd sizes, strided init operand, edge tiles.
void test_sgemm_packed_init() {
  const int64_t sizes[][4] = {{1, 1, 1, 1},      {13, 33, 5, 9},   {97, 70, 300, 1},
                              {150, 65, 64, 64}, {40, 130, 3, 17}, {7, 32, 0, 4}};
  for (auto &s : sizes) {
    const int64_t m = s[0], n = s[1], k = s[2], k2 = s[3];
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t lda = k + 1, lda2 = k2 + 2, ldc = n + 3;
      const std::vector<float> A = rvec(std::max<int64_t>(m * lda, 1)),
                               B = rvec(std::max<int64_t>(k * n, 1)), A2 = rvec(m * lda2),
                               B2 = rvec(k2 * n), C0 = rvec(m * ldc);
      dplora_packed_b *pb = nullptr, *pb2 = nullptr;
      CHECK(dplora_sgemm_pack_b(tb, k, n, B.data(), tb ? std::max<int64_t>(k, 1) : n, &pb) ==
            DPLORA_OK);
      CHECK(dplora_sgemm_pack_b(!tb, k2, n, B2.data(), tb ? n : k2, &pb2) == DPLORA_OK);
      for (float beta : {0.0f, 0.5f}) {
        const float alpha = -0.75f, alpha2 = 1.25f;
        std::vector<float> fused = C0, two = C0;
        CHECK(dplora_sgemm_packed_init(0, m, alpha, A.data(), lda, pb, beta, fused.data(), ldc,
                                       alpha2, A2.data(), lda2, pb2) == DPLORA_OK);
        CHECK(dplora_sgemm_packed(0, m, alpha2, A2.data(), lda2, pb2, beta, two.data(), ldc) ==
              DPLORA_OK);
        CHECK(dplora_sgemm_packed(0, m, alpha, A.data(), lda, pb, 1.0f, two.data(), ldc) ==
              DPLORA_OK);
        CHECK(std::memcmp(fused.data(), two.data(), fused.size() * sizeof(float)) == 0);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double ref = beta * static_cast<double>(C0[i * ldc + j]), mag = std::fabs(ref);
            for (int64_t q = 0; q < k; ++q) {
              const double x = A[i * lda + q], y = tb ? B[j * k + q] : B[q * n + j];
              ref += alpha * x * y;
              mag += std::fabs(alpha * x * y);
            }
            for (int64_t q = 0; q < k2; ++q) {
              const double x = A2[i * lda2 + q], y = tb ? B2[q * n + j] : B2[j * k2 + q];
              ref += alpha2 * x * y;
              mag += std::fabs(alpha2 * x * y);
            }
            CHECK(std::fabs(fused[i * ldc + j] - ref) <= 1e-6 * mag + 1e-7);
          }
          for (int64_t j = n; j < ldc; ++j) CHECK(fused[i * ldc + j] == C0[i * ldc + j]);
        }
      }
      dplora_packed_b_free(pb);
      dplora_packed_b_free(pb2);
    }
  }
  // Bad arguments: k2 outside [1, 64], n mismatch, bf16 handles, lda2 < k2.
  const std::vector<float> B = rvec(65 * 4), A = rvec(65 * 4);
  std::vector<float> c(8);
  dplora_packed_b *pb = nullptr, *wide = nullptr, *other = nullptr, *bf = nullptr;
  CHECK(dplora_sgemm_pack_b(0, 2, 4, B.data(), 4, &pb) == DPLORA_OK);
  CHECK(dplora_sgemm_pack_b(0, 65, 4, B.data(), 4, &wide) == DPLORA_OK);
  CHECK(dplora_sgemm_pack_b(0, 2, 3, B.data(), 3, &other) == DPLORA_OK);
  CHECK(dplora_sgemm_pack_b_bf16(0, 2, 4, B.data(), 4, &bf) == DPLORA_OK);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, pb, 0, c.data(), 4, 1, A.data(), 65, wide) ==
        DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, pb, 0, c.data(), 4, 1, A.data(), 2, other) ==
        DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, bf, 0, c.data(), 4, 1, A.data(), 2, pb) ==
        DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, pb, 0, c.data(), 4, 1, A.data(), 1, pb) ==
        DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, pb, 0, c.data(), 4, 1, A.data(), 2,
                                 nullptr) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed_init(0, 2, 1, A.data(), 2, pb, 0, c.data(), 4, 1, A.data(), 2, pb) ==
        DPLORA_OK);
  for (dplora_packed_b *p : {pb, wide, other, bf}) dplora_packed_b_free(p);
}

}  // namespace

int main() {
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::printf("isa %s\n", dplora_isa_name(isa));
    for (int threads : {1, 2}) {
      CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
      test_sgemm();
      test_sgemm_packed();
      test_sgemm_packed_init();
      test_sgemm_rank1();
      test_norms();
      test_clipped_sum();
      test_clip();
    }
    test_thread_invariance();
    test_thread_invariance_sum();
    double cs = 0;
    std::vector<float> x = rvec(10000);
    CHECK(dplora_bench_read_bandwidth(x.data(), 10000, 2, &cs) > 0);
    CHECK(dplora_bench_fma_peak(1000, &cs) > 0);
  }
  TEST_MAIN_END();
}
