// The double clipped sums (dplora_outer_scaled_sum_f64, dplora_rows_scaled_sum_f64)
// under every ISA path the CPU has: against a long-double reference with the
// rigorous error bound of lib/nn/per_sample.ts, against the scalar path, and
// bit-identical across thread counts; samples whose factor is 0 or not
// finite are never read (their data is NaN here); unaligned float offsets.
// Also dplora_per_sample_grads (the tensors whose norms are clipped): against a
// double reference on every ISA path, bit-identical across thread counts, in
// buffers of exactly the documented size (the sanitizer run catches overruns).
#include <time.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "dplora.h"

namespace {

constexpr double kU = 0x1p-53;  // unit roundoff of double
const float kNaN = std::numeric_limits<float>::quiet_NaN();

bool kept(float f) {
  return std::isfinite(f) && f != 0.0f;
}

// Values of one of several adversarial kinds.
float draw(std::mt19937_64 &rng, int kind) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-140, 120);
  switch (kind) {
    case 0:
      return u(rng);
    case 1:  // magnitudes 2^-140 .. 2^120, subnormals included
      return std::ldexp(u(rng), e(rng));
    case 2:  // huge values of both signs (cancellation)
      return (rng() & 1 ? 1.0f : -1.0f) * 3.0e38f * (0.5f + 0.5f * std::fabs(u(rng)));
    default:  // subnormal floats only
      return (rng() & 1 ? 1.0f : -1.0f) * std::numeric_limits<float>::denorm_min() *
             static_cast<float>(1 + rng() % 1000);
  }
}

float draw_factor(std::mt19937_64 &rng) {
  switch (rng() % 8) {
    case 0:
      return 0.0f;
    case 1:
      return kNaN;
    case 2:
      return std::numeric_limits<float>::infinity();
    case 3:
      return 1.0f;
    case 4:
      return std::numeric_limits<float>::denorm_min();
    default:
      return std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
  }
}

struct Case {
  int64_t rows, in_dim, out_dim;
  double scale;
  int kind;
};

// Runs `run(out)` on a fresh copy of out0 for every supported ISA (scalar
// first) with 1, 2 and 3 threads; checks the thread counts agree bitwise and
// passes each ISA's result to `check(isa, out)`.  Returns those results.
template <typename Run, typename Check>
std::vector<std::vector<double>> each_isa(const std::vector<double> &out0, Run run, Check check) {
  std::vector<std::vector<double>> per_isa;
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::vector<double> first;
    for (int threads : {1, 2, 3}) {
      CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
      std::vector<double> out = out0;
      run(out);
      if (first.empty()) {
        first = out;
        check(isa, out);
      } else {
        CHECK(std::memcmp(first.data(), out.data(), out.size() * sizeof(double)) == 0);
      }
    }
    per_isa.push_back(first);
  }
  return per_isa;
}

// Checks one ISA's outer sum against the long-double reference: every
// element within (m + 4) u * (|out0| + sum |terms|), m the kept samples
// (the bound is (m + 3) u; the reference's own error is far below u).
void check_outer(const Case &c, std::mt19937_64 &rng, int offset,
                 std::vector<std::vector<double>> *per_isa) {
  const int64_t R = c.rows, D = c.in_dim, P = c.out_dim;
  std::vector<float> abuf(R * D + offset), gbuf(R * P + offset), f(R);
  float *a = abuf.data() + offset, *g = gbuf.data() + offset;
  for (auto &v : f) v = draw_factor(rng);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t k = 0; k < D; ++k) a[r * D + k] = kept(f[r]) ? draw(rng, c.kind) : kNaN;
    for (int64_t j = 0; j < P; ++j) g[r * P + j] = kept(f[r]) ? draw(rng, c.kind) : kNaN;
  }
  std::vector<double> out0(P * D);
  for (auto &v : out0) v = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  int64_t m = 0;
  for (int64_t r = 0; r < R; ++r) m += kept(f[r]) ? 1 : 0;
  std::vector<long double> ref(P * D), mag(P * D);
  for (int64_t j = 0; j < P; ++j)
    for (int64_t k = 0; k < D; ++k) {
      long double s = out0[j * D + k], t = std::fabs(out0[j * D + k]);
      for (int64_t r = 0; r < R; ++r) {
        if (!kept(f[r])) continue;
        const long double x =
            static_cast<long double>(c.scale) * f[r] * g[r * P + j] * a[r * D + k];
        s += x;
        t += std::fabs(x);
      }
      ref[j * D + k] = s;
      mag[j * D + k] = t;
    }
  *per_isa = each_isa(
      out0,
      [&](std::vector<double> &out) {
        CHECK(dplora_outer_scaled_sum_f64(a, g, R, D, P, f.data(), c.scale, out.data()) ==
              DPLORA_OK);
      },
      [&](int isa, const std::vector<double> &out) {
        int bad = 0;
        for (int64_t e = 0; e < P * D; ++e) {
          const long double err = std::fabs(static_cast<long double>(out[e]) - ref[e]);
          if (!(err <= (m + 4) * kU * mag[e]) && bad++ < 3)
            std::fprintf(stderr,
                         "isa %s rows %lld in %lld out %lld: element %lld = %.17g, ref %.17Lg\n",
                         dplora_isa_name(isa), static_cast<long long>(R), static_cast<long long>(D),
                         static_cast<long long>(P), static_cast<long long>(e), out[e], ref[e]);
        }
        CHECK(bad == 0);
      });
  // Every path within twice the bound of the scalar one.
  for (size_t k = 1; k < per_isa->size(); ++k)
    for (int64_t e = 0; e < P * D; ++e)
      CHECK(std::fabs((*per_isa)[k][e] - (*per_isa)[0][e]) <= 2 * (m + 4) * kU * mag[e]);
}

void check_rows(int64_t R, int64_t n, int kind, std::mt19937_64 &rng, int offset) {
  std::vector<float> xbuf(R * n + offset), f(R);
  float *x = xbuf.data() + offset;
  for (auto &v : f) v = draw_factor(rng);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < n; ++j) x[r * n + j] = kept(f[r]) ? draw(rng, kind) : kNaN;
  std::vector<double> out0(n);
  for (auto &v : out0) v = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  int64_t m = 0;
  for (int64_t r = 0; r < R; ++r) m += kept(f[r]) ? 1 : 0;
  std::vector<double> scalar;
  each_isa(
      out0,
      [&](std::vector<double> &out) {
        CHECK(dplora_rows_scaled_sum_f64(x, R, n, f.data(), out.data()) == DPLORA_OK);
      },
      [&](int isa, const std::vector<double> &out) {
        int bad = 0;
        for (int64_t j = 0; j < n; ++j) {
          long double s = out0[j], t = std::fabs(out0[j]);
          for (int64_t r = 0; r < R; ++r) {
            if (!kept(f[r])) continue;
            const long double v = static_cast<long double>(f[r]) * x[r * n + j];
            s += v;
            t += std::fabs(v);
          }
          if (!(std::fabs(out[j] - s) <= (m + 2) * kU * t)) ++bad;
          if (!scalar.empty() && !(std::fabs(out[j] - scalar[j]) <= 2 * (m + 2) * kU * t)) ++bad;
        }
        if (bad)
          std::fprintf(stderr, "rows: isa %s R %lld n %lld kind %d: %d bad\n", dplora_isa_name(isa),
                       static_cast<long long>(R), static_cast<long long>(n), kind, bad);
        CHECK(bad == 0);
        if (scalar.empty()) scalar = out;
      });
}

// Exact small case: integer-valued inputs, the sums are exact in double.
void check_exact() {
  const int64_t R = 3, D = 5, P = 2;
  std::vector<float> a(R * D), g(R * P);
  for (int64_t i = 0; i < R * D; ++i) a[i] = static_cast<float>(i % 7) - 3.0f;
  for (int64_t i = 0; i < R * P; ++i) g[i] = static_cast<float>(i) - 2.0f;
  const float f[R] = {1.0f, 0.5f, 0.25f};
  // out[i * ny + k] must be init + sum_r scale f[r] x[r, i] y[r, k], exactly.
  auto check_outer = [&](const std::vector<double> &out, const float *x, int64_t nx, const float *y,
                         int64_t ny, double scale, double init) {
    for (int64_t i = 0; i < nx; ++i)
      for (int64_t k = 0; k < ny; ++k) {
        double e = init;
        for (int64_t r = 0; r < R; ++r) e += scale * f[r] * x[r * nx + i] * y[r * ny + k];
        CHECK(out[i * ny + k] == e);
      }
  };
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::vector<double> out(P * D, 1.0);
    CHECK(dplora_outer_scaled_sum_f64(a.data(), g.data(), R, D, P, f, 2.0, out.data()) ==
          DPLORA_OK);
    check_outer(out, g.data(), P, a.data(), D, 2.0, 1.0);
    // Transposed orientation (narrow in_dim).
    std::vector<double> out2(D * P, 0.0);
    CHECK(dplora_outer_scaled_sum_f64(g.data(), a.data(), R, P, D, f, 1.0, out2.data()) ==
          DPLORA_OK);
    check_outer(out2, a.data(), D, g.data(), P, 1.0, 0.0);
    // Bad arguments.
    CHECK(dplora_outer_scaled_sum_f64(a.data(), g.data(), R, D, P, f, NAN, out.data()) ==
          DPLORA_EINVAL);
    CHECK(dplora_outer_scaled_sum_f64(a.data(), g.data(), -1, D, P, f, 1.0, out.data()) ==
          DPLORA_EINVAL);
    CHECK(dplora_rows_scaled_sum_f64(a.data(), R, D, nullptr, out.data()) == DPLORA_EINVAL);
    int64_t nf = 0;
    std::vector<float> noise = {1.0f, 2.0f};
    const double sum[2] = {1.0, 1e300};
    CHECK(dplora_noisy_mean_f32(sum, noise.data(), 2, 0.5, &nf) == DPLORA_OK);
    CHECK(noise[0] == 1.0f && std::isinf(noise[1]) && nf == 1);
  }
}

double thread_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// DPLORA_CLIP_BENCH=1: thread CPU time per call at the LoRA shapes (for the
// bench notes; not a test).
void bench() {
  dplora_set_num_threads(1);
  for (int64_t R : {32, 64}) {
    for (int64_t r : {8, 16}) {
      const int64_t D = 768;
      std::vector<float> x(R * D, 0.5f), h(R * r, 0.25f), f(R, 0.5f);
      std::vector<double> out(D * r);
      for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
        if (!dplora_isa_supported(isa)) continue;
        dplora_set_isa(isa);
        double best[2] = {1e30, 1e30};
        for (int rep = 0; rep < 9; ++rep) {
          for (int o = 0; o < 2; ++o) {
            const double t0 = thread_ms();
            for (int i = 0; i < 200; ++i) {
              if (o == 0)
                dplora_outer_scaled_sum_f64(x.data(), h.data(), R, D, r, f.data(), 2.0, out.data());
              else
                dplora_outer_scaled_sum_f64(h.data(), x.data(), R, r, D, f.data(), 2.0, out.data());
            }
            best[o] = std::fmin(best[o], (thread_ms() - t0) / 200 * 1e3);
          }
        }
        std::printf("bench rows %lld r %lld %-7s A-shape %.2f us  B-shape %.2f us\n",
                    static_cast<long long>(R), static_cast<long long>(r), dplora_isa_name(isa),
                    best[0], best[1]);
      }
    }
  }
}

}  // namespace

// dplora_per_sample_grads on exact-size heap buffers: every element within
// (seq + 2) u_f * (sum of |terms|) of the double reference, bit-identical
// across 1, 2, 3 threads on each ISA path.
void check_per_sample_grads(int64_t batch, int64_t seq, int64_t in_dim, int64_t out_dim,
                            float alpha, std::mt19937_64 &rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(batch * seq * in_dim));
  std::vector<float> g(static_cast<size_t>(batch * seq * out_dim));
  for (float &v : a) v = u(rng);
  for (float &v : g) v = u(rng);
  const int64_t pd = in_dim * out_dim;
  std::vector<double> ref(static_cast<size_t>(batch * pd)), mag(ref.size());
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t p = 0; p < out_dim; ++p)
      for (int64_t d = 0; d < in_dim; ++d) {
        double acc = 0, abs = 0;
        for (int64_t t = 0; t < seq; ++t) {
          const double v = static_cast<double>(g[(i * seq + t) * out_dim + p]) *
                           static_cast<double>(a[(i * seq + t) * in_dim + d]);
          acc += v;
          abs += std::fabs(v);
        }
        ref[i * pd + p * in_dim + d] = static_cast<double>(alpha) * acc;
        mag[i * pd + p * in_dim + d] = std::fabs(static_cast<double>(alpha)) * abs;
      }
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
      // A fresh exact-size buffer each time (no slack for an overrun to land in).
      std::unique_ptr<float[]> out(new float[static_cast<size_t>(batch * pd)]);
      for (int64_t j = 0; j < batch * pd; ++j) out[j] = kNaN;
      CHECK(dplora_per_sample_grads(a.data(), g.data(), batch, seq, in_dim, out_dim, alpha,
                                    out.get()) == DPLORA_OK);
      if (first.empty()) {
        first.assign(out.get(), out.get() + batch * pd);
        for (int64_t j = 0; j < batch * pd; ++j) {
          const double tol = static_cast<double>(seq + 2) * 0x1p-24 * mag[j] + 1e-30;
          if (!(std::fabs(static_cast<double>(out[j]) - ref[j]) <= tol)) {
            std::fprintf(stderr, "per_sample_grads isa %d %lldx%lldx%lldx%lld [%lld]: %g vs %g\n",
                         isa, static_cast<long long>(batch), static_cast<long long>(seq),
                         static_cast<long long>(in_dim), static_cast<long long>(out_dim),
                         static_cast<long long>(j), static_cast<double>(out[j]), ref[j]);
            ++g_failures;
            break;
          }
        }
      } else {
        CHECK(std::memcmp(first.data(), out.get(), first.size() * sizeof(float)) == 0);
      }
    }
  }
}

int main() {
  if (std::getenv("DPLORA_CLIP_BENCH")) {
    bench();
    return 0;
  }
  check_exact();
  std::mt19937_64 rng(20261202);
  // LoRA factors (narrow side <= 16) with edge blocks, T across the 16-row blocks, and the
  // SGEMM path (both sides > 16).
  check_per_sample_grads(5, 37, 8, 100, 1.0f, rng);
  check_per_sample_grads(5, 37, 100, 8, -0.5f, rng);
  check_per_sample_grads(3, 16, 16, 49, 2.0f, rng);
  check_per_sample_grads(3, 33, 47, 13, 1.0f, rng);
  check_per_sample_grads(2, 3, 1, 5, 1.0f, rng);
  check_per_sample_grads(3, 9, 7, 15, 1.0f, rng);
  check_per_sample_grads(2, 11, 17, 33, 1.0f, rng);
  const Case cases[] = {
      {32, 768, 8, 2.0, 0}, {32, 8, 768, 2.0, 0}, {33, 37, 5, 0.5, 1}, {7, 3, 29, 3.0, 1},
      {17, 65, 9, 1.0, 2},  {17, 9, 65, 1.0, 2},  {5, 19, 17, 1.0, 3}, {64, 100, 16, 0.25, 1},
      {1, 1, 1, 1.0, 0},    {3, 130, 1, 1.0, 1},  {3, 1, 130, 1.0, 2}, {40, 16, 200, 1e-3, 1},
  };
  std::vector<std::vector<double>> per_isa;
  for (int offset : {0, 1, 3}) {
    for (const Case &c : cases) check_outer(c, rng, offset, &per_isa);
    for (int kind = 0; kind < 4; ++kind) {
      check_rows(33, 1000, kind, rng, offset);
      check_rows(5, 17, kind, rng, offset);
      check_rows(1, 130, kind, rng, offset);
    }
  }
  TEST_MAIN_END();
}
