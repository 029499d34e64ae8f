// The NEON paths against the scalar path (AArch64 only; elsewhere only the
// Gaussian known-answer check runs).  Run under qemu by scripts/arm64-tests.sh.
// SGEMM and the norm kernels agree with scalar within float/double rounding
// on odd sizes (0, 1, non-multiples of the 8 x 12 tile, the in-place B
// path; norms: narrow p <= 8 and chunked paths, swapped p > d, several
// L1 chunks, g too large to convert at once); the Gaussian and the ChaCha20
// keystream are bitwise identical to scalar.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "dplora.h"

namespace {

// Known answer, the same on every platform and ISA path: the FNV-1a hash of
// the bits of 4099 float Gaussians (add mode, std 0.37) recorded on x86-64
// (scalar and AVX2) and on AArch64 under qemu (scalar and NEON).  Catches a
// compiler fusing a multiply-add that the scalar path leaves unfused.
void test_gaussian_known_answer() {
  uint8_t key[32], nonce[12];
  for (int i = 0; i < 32; ++i) key[i] = uint8_t(i * 7 + 1);
  for (int i = 0; i < 12; ++i) nonce[i] = uint8_t(i + 3);
  const int64_t n = 4099;
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::vector<float> g(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g[size_t(i)] = float(i % 7) * 0.25f - 0.75f;
    CHECK(dplora_rng_gaussian_f32(key, nonce, 12345, g.data(), n, 0.37, 1) == DPLORA_OK);
    uint64_t h = 1469598103934665603ull;
    for (float v : g) {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      h = (h ^ b) * 1099511628211ull;
    }
    if (h != 0xb1d08918519a8b0aull) {
      std::fprintf(stderr, "gaussian known answer, isa %s: hash %016llx\n", dplora_isa_name(isa),
                   (unsigned long long)h);
      ++g_failures;
    }
  }
}

}  // namespace

#if defined(__aarch64__)
#include "chacha20.h"
#include "gaussian.h"
#include "kernels.h"

namespace {

uint64_t g_state = 0x243F6A8885A308D3ull;
uint64_t next_u64() {
  g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
  return g_state;
}
float frand() {
  return static_cast<float>(static_cast<double>(next_u64() >> 11) * 0x1p-52 - 1.0);
}
std::vector<float> rvec(int64_t n) {
  std::vector<float> v(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (auto &x : v) x = frand();
  return v;
}

const uint8_t kKey[32] = {7,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                          16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 99};
const uint8_t kNonce[12] = {0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0};

void test_sgemm_vs_scalar() {
  const int64_t sizes[][3] = {
      {0, 0, 0},   {1, 1, 1},   {0, 5, 3},    {4, 0, 3},     {3, 4, 0},     {1, 12, 1},
      {8, 12, 1},  {8, 12, 7},  {9, 13, 5},   {7, 11, 33},   {16, 24, 9},   {17, 25, 10},
      {5, 36, 40}, {23, 1, 17}, {1, 29, 300}, {40, 50, 257}, {129, 97, 70}, {200, 130, 300}};
  for (auto &s : sizes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t ra = ta ? k : m, wa = ta ? m : k, rb = tb ? n : k, wb = tb ? k : n;
        const int64_t lda = wa + 1, ldb = wb + 3, ldc = n + 2;
        const std::vector<float> A = rvec(ra * lda), B = rvec(rb * ldb), C0 = rvec(m * ldc);
        for (float beta : {0.0f, 1.0f, -0.5f}) {
          const float alpha = 0.75f;
          std::vector<float> cs = C0, cn = C0;
          CHECK(dplora_set_isa(DPLORA_ISA_SCALAR) == DPLORA_OK);
          CHECK(dplora_sgemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, cs.data(),
                             ldc) == DPLORA_OK);
          CHECK(dplora_set_isa(DPLORA_ISA_NEON) == DPLORA_OK);
          CHECK(dplora_sgemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, cn.data(),
                             ldc) == DPLORA_OK);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < ldc && i * ldc + j < static_cast<int64_t>(cn.size()); ++j) {
              const size_t at = static_cast<size_t>(i * ldc + j);
              if (j >= n) {  // padding untouched by both
                CHECK(std::memcmp(&cn[at], &C0[at], sizeof(float)) == 0);
                continue;
              }
              double mag = std::fabs(beta * C0[at]);
              for (int64_t q = 0; q < k; ++q) {
                const double x = ta ? A[q * lda + i] : A[i * lda + q];
                const double y = tb ? B[j * ldb + q] : B[q * ldb + j];
                mag += std::fabs(alpha * x * y);
              }
              if (!(std::fabs(double(cn[at]) - cs[at]) <= 2e-6 * mag + 1e-7)) {
                std::fprintf(stderr,
                             "sgemm m=%lld n=%lld k=%lld ta=%d tb=%d beta=%g (%lld,%lld): neon %g "
                             "scalar %g\n",
                             (long long)m, (long long)n, (long long)k, ta, tb, beta, (long long)i,
                             (long long)j, cn[at], cs[at]);
                ++g_failures;
                return;
              }
            }
          }
        }
      }
    }
  }
}

void test_norms_vs_scalar() {
  const dplora::Kernels &S = dplora::kernels_for(DPLORA_ISA_SCALAR);
  const dplora::Kernels &N = dplora::kernels_for(DPLORA_ISA_NEON);
  CHECK(&S != &N);
  for (int64_t n = 0; n <= 41; ++n) {
    const std::vector<float> x = rvec(n + 3);
    const double a = S.sumsq(x.data() + 1, n), b = N.sumsq(x.data() + 1, n);
    CHECK(std::fabs(a - b) <= 1e-14 * a);
  }
  const int64_t shapes[][4] = {{2, 1, 7, 5},     {3, 2, 1, 1},    {2, 3, 8, 4},   {2, 5, 9, 3},
                               {3, 7, 17, 9},    {2, 16, 33, 8},  {2, 9, 8, 40},  {2, 33, 70, 13},
                               {1, 40, 3, 100},  {2, 6, 12, 12},  {2, 37, 21, 7}, {2, 20, 300, 8},
                               {2, 40, 300, 11}, {1, 300, 70, 60}};
  for (auto &s : shapes) {
    const int64_t B = s[0], T = s[1], d = s[2], p = s[3];
    const std::vector<float> a = rvec(B * T * d), g = rvec(B * T * p);
    for (int method : {DPLORA_NORM_DIRECT, DPLORA_NORM_GHOST, DPLORA_NORM_BOUND}) {
      std::vector<double> rs(B), rn(B);
      CHECK(dplora_set_isa(DPLORA_ISA_SCALAR) == DPLORA_OK);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, method, rs.data()) == DPLORA_OK);
      CHECK(dplora_set_isa(DPLORA_ISA_NEON) == DPLORA_OK);
      CHECK(dplora_grad_norm_sq(a.data(), g.data(), B, T, d, p, method, rn.data()) == DPLORA_OK);
      for (int64_t i = 0; i < B; ++i) {
        if (!(std::fabs(rs[i] - rn[i]) <= 1e-11 * rs[i])) {
          std::fprintf(
              stderr, "norm method=%d B=%lld T=%lld d=%lld p=%lld: neon %.17g scalar %.17g\n",
              method, (long long)B, (long long)T, (long long)d, (long long)p, rn[i], rs[i]);
          ++g_failures;
        }
      }
    }
  }
}

void test_gaussian_bitwise() {
  // The group transform on edge words (radius word 0, 1, all ones; angle
  // words at every quadrant boundary) and random ones.
  const uint32_t edges[] = {0u,          1u,          2u,          0x7fffffffu,
                            0x80000000u, 0xffffffffu, 0xfffffffeu, 0x20000000u,
                            0x1fffffffu, 0x40000000u, 0x60000000u, 0x5fffffffu,
                            0xa0000000u, 0xe0000000u, 0xdfffffffu, 0x3504f3u << 1};
  const int64_t ng = 64;
  std::vector<uint32_t> w(16 * ng);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = i < 256 ? edges[(i * 7 + i / 16) % 16] : uint32_t(next_u64() >> 13);
  for (int add = 0; add < 2; ++add) {
    std::vector<float> os(16 * ng), on(16 * ng);
    for (size_t i = 0; i < os.size(); ++i) os[i] = on[i] = frand();
    dplora::gauss::groups_scalar(w.data(), ng, os.data(), 0.37f, add);
    dplora::gauss::groups_neon(w.data(), ng, on.data(), 0.37f, add);
    CHECK(std::memcmp(os.data(), on.data(), os.size() * sizeof(float)) == 0);
  }
  // The C API: several positions, lengths (partial last groups) and add modes.
  for (uint64_t pos : {uint64_t(0), uint64_t(16), uint64_t(77), (uint64_t(1) << 36) - 40}) {
    for (int64_t n : {0, 1, 15, 16, 17, 100, 1023, 5000, 40001}) {
      for (int add = 0; add < 2; ++add) {
        std::vector<float> base = rvec(n + 1), os = base, on = base;
        CHECK(dplora_set_isa(DPLORA_ISA_SCALAR) == DPLORA_OK);
        CHECK(dplora_rng_gaussian_f32(kKey, kNonce, pos, os.data(), n, 1.5, add) == DPLORA_OK);
        CHECK(dplora_set_isa(DPLORA_ISA_NEON) == DPLORA_OK);
        CHECK(dplora_rng_gaussian_f32(kKey, kNonce, pos, on.data(), n, 1.5, add) == DPLORA_OK);
        CHECK(std::memcmp(os.data(), on.data(), os.size() * sizeof(float)) == 0);
        if (n > 0)
          CHECK(std::memcmp(os.data(), base.data(), sizeof(float)) != 0);  // something was written
      }
    }
  }
}

void test_chacha_bitwise() {
  const dplora::chacha::Stream s = dplora::chacha::make_stream(kKey, kNonce);
  for (uint64_t b0 : {uint64_t(0), uint64_t(3), (uint64_t(1) << 32) - 2, (uint64_t(1) << 32) - 5}) {
    for (int64_t nb = 1; nb <= 13; ++nb) {
      std::vector<uint32_t> ref(16 * size_t(nb)), got(16 * size_t(nb), 0u);
      for (int64_t i = 0; i < nb; ++i)
        dplora::chacha::block_words(s, b0 + uint64_t(i), ref.data() + 16 * i);
      dplora::chacha::blocks_neon(s, b0, nb, got.data());
      CHECK(ref == got);
    }
  }
  for (uint64_t pos : {uint64_t(0), uint64_t(5), uint64_t(64), (uint64_t(1) << 36) - 33}) {
    for (int64_t n : {0, 1, 15, 16, 63, 64, 65, 1000, 70001}) {
      std::vector<uint32_t> a(size_t(n) + 1, 0xdeadbeefu), b(size_t(n) + 1, 0xdeadbeefu);
      CHECK(dplora_set_isa(DPLORA_ISA_SCALAR) == DPLORA_OK);
      CHECK(dplora_rng_fill_u32(kKey, kNonce, pos, a.data(), n) == DPLORA_OK);
      CHECK(dplora_set_isa(DPLORA_ISA_NEON) == DPLORA_OK);
      CHECK(dplora_rng_fill_u32(kKey, kNonce, pos, b.data(), n) == DPLORA_OK);
      CHECK(a == b);
      CHECK(b[size_t(n)] == 0xdeadbeefu);
    }
  }
}

}  // namespace

int main() {
  test_gaussian_known_answer();
  CHECK(dplora_isa_supported(DPLORA_ISA_NEON) == 1);
  for (int threads : {1, 2}) {
    CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
    test_sgemm_vs_scalar();
    test_norms_vs_scalar();
    test_gaussian_bitwise();
    test_chacha_bitwise();
  }
  double cs = 0;
  std::vector<float> x = rvec(10000);
  CHECK(dplora_set_isa(DPLORA_ISA_NEON) == DPLORA_OK);
  CHECK(dplora_bench_read_bandwidth(x.data(), 10000, 2, &cs) > 0);
  CHECK(std::fabs(cs - 2.0 * dplora::linalg::sumsq_scalar(x.data(), 10000)) <= 1e-4 * cs);
  CHECK(dplora_bench_fma_peak(1000, &cs) > 0 && std::isfinite(cs));
  TEST_MAIN_END();
}

#else

int main() {
  test_gaussian_known_answer();
  std::printf("NEON comparisons skipped: not an AArch64 build (run scripts/arm64-tests.sh)\n");
  TEST_MAIN_END();
}

#endif
