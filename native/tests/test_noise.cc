// Native tests of the noise and fixed-point kernels (run plainly and under
// ASan + UBSan by scripts/native-tests.sh).
#include <cmath>
#include <cstring>
#include <vector>

#include "chacha20.h"
#include "check.h"
#include "../nofpu/dgauss_kat_vectors.h"
#include "discrete_gaussian.h"
#include "intonly/int_math.h"
#include "dplora.h"
#include "fixed_point.h"

namespace {

const uint8_t kRfcKey[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                             16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
const uint8_t kRfcNonce[12] = {0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0};
// RFC 8439 section 2.3.2, serialized block.
const uint8_t kRfcBlock[64] = {
    0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4,
    0xc7, 0xd1, 0xf4, 0xc7, 0x33, 0xc0, 0x68, 0x03, 0x04, 0x22, 0xaa, 0x9a, 0xc3, 0xd4, 0x6c, 0x4e,
    0xd2, 0x82, 0x64, 0x46, 0x07, 0x9f, 0xaa, 0x09, 0x14, 0xc2, 0xd7, 0x05, 0xd9, 0x8b, 0x02, 0xa2,
    0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e, 0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e};

void test_block() {
  uint8_t out[64];
  CHECK(dplora_chacha20_block(kRfcKey, 1, kRfcNonce, out) == DPLORA_OK);
  CHECK(std::memcmp(out, kRfcBlock, 64) == 0);
  CHECK(dplora_chacha20_block(nullptr, 1, kRfcNonce, out) == DPLORA_EINVAL);
  // The stream at block 1 is the same block.
  std::vector<uint32_t> w(16);
  CHECK(dplora_rng_fill_u32(kRfcKey, kRfcNonce, 16, w.data(), 16) == DPLORA_OK);
  CHECK(std::memcmp(w.data(), kRfcBlock, 64) == 0);  // little-endian host
}

int first_isa_supported(int isa) {
  return dplora_isa_supported(isa);
}

void test_keystream_isas() {
  const dplora::chacha::Stream s = dplora::chacha::make_stream(kRfcKey, kRfcNonce);
  // Blocks straddling the 2^32 counter boundary too.
  for (uint64_t b0 : {uint64_t(0), uint64_t(5), (uint64_t(1) << 32) - 7}) {
    for (int64_t nb : {1, 7, 8, 9, 16, 17, 40}) {
      std::vector<uint32_t> ref(16 * size_t(nb)), got(16 * size_t(nb));
      for (int64_t i = 0; i < nb; ++i)
        dplora::chacha::block_words(s, b0 + uint64_t(i), ref.data() + 16 * i);
      dplora::chacha::blocks_scalar(s, b0, nb, got.data());
      CHECK(ref == got);
#if defined(__x86_64__)
      if (first_isa_supported(DPLORA_ISA_AVX2)) {
        std::fill(got.begin(), got.end(), 0u);
        dplora::chacha::blocks_avx2(s, b0, nb, got.data());
        CHECK(ref == got);
      }
      if (first_isa_supported(DPLORA_ISA_AVX512)) {
        std::fill(got.begin(), got.end(), 0u);
        dplora::chacha::blocks_avx512(s, b0, nb, got.data());
        CHECK(ref == got);
      }
#endif
#if defined(__aarch64__)
      if (first_isa_supported(DPLORA_ISA_NEON)) {
        std::fill(got.begin(), got.end(), 0u);
        dplora::chacha::blocks_neon(s, b0, nb, got.data());
        CHECK(ref == got);
      }
#endif
    }
  }
  // Unaligned word ranges equal the matching slice of whole blocks.
  std::vector<uint32_t> all(16 * 64);
  dplora::chacha::blocks_scalar(s, 0, 64, all.data());
  for (uint64_t pos : {0, 3, 16, 31}) {
    for (int64_t n : {0, 1, 15, 16, 100, 700}) {
      std::vector<uint32_t> got(size_t(n) + 1, 0xdeadbeefu);
      CHECK(dplora_rng_fill_u32(kRfcKey, kRfcNonce, pos, got.data(), n) == DPLORA_OK);
      for (int64_t i = 0; i < n; ++i) CHECK(got[size_t(i)] == all[pos + uint64_t(i)]);
      CHECK(got[size_t(n)] == 0xdeadbeefu);  // no write past the end
    }
  }
  // Position space end.
  uint32_t w[4];
  CHECK(dplora_rng_fill_u32(kRfcKey, kRfcNonce, ~uint64_t(0) - 2, w, 4) == DPLORA_EOVERFLOW);
  CHECK(dplora_rng_fill_u32(kRfcKey, kRfcNonce, ~uint64_t(0) - 4, w, 4) == DPLORA_OK);
}

void test_gaussian_isas_threads() {
  const int64_t n = 100003;
  const int saved_isa = dplora_active_isa(), saved_threads = dplora_num_threads();
  std::vector<float> ref;
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    for (int threads : {1, 2, 3}) {
      dplora_set_num_threads(threads);
      std::vector<float> g(static_cast<size_t>(n), 1.0f);
      CHECK(dplora_rng_gaussian_f32(kRfcKey, kRfcNonce, 77, g.data(), n, 1.0, 0) == DPLORA_OK);
      if (ref.empty()) {
        ref = g;
      } else {
        CHECK(std::memcmp(ref.data(), g.data(), sizeof(float) * size_t(n)) == 0);
      }
    }
  }
  dplora_set_isa(saved_isa);
  dplora_set_num_threads(saved_threads);
  double s = 0, s2 = 0, mx = 0;
  for (float v : ref) {
    s += v;
    s2 += double(v) * v;
    mx = std::fmax(mx, std::fabs(v));
  }
  CHECK(std::fabs(s / n) < 5 / std::sqrt(double(n)));
  CHECK(std::fabs(s2 / n - 1) < 5 * std::sqrt(2.0 / n));
  CHECK(mx < 6.6);  // the documented bound on |z|
  float x[3];
  CHECK(dplora_rng_gaussian_f32(kRfcKey, kRfcNonce, 0, x, 3, -1.0, 0) == DPLORA_EINVAL);
  CHECK(dplora_rng_gaussian_f32(kRfcKey, kRfcNonce, 0, x, 3, NAN, 0) == DPLORA_EINVAL);
  CHECK(dplora_rng_gaussian_f32_words(17) == 32);
  CHECK(dplora_rng_gaussian_f64_words(3) == 8);
  double d[5];
  CHECK(dplora_rng_gaussian_f64(kRfcKey, kRfcNonce, 0, d, 5, 2.0, 0) == DPLORA_OK);
  double u[4];
  CHECK(dplora_rng_uniform_f64(kRfcKey, kRfcNonce, 0, u, 4) == DPLORA_OK);
  for (double v : u) CHECK(v >= 0 && v < 1);
}

void test_discrete_gaussian() {
  const int64_t n = 200000;
  std::vector<int64_t> z(static_cast<size_t>(n));
  uint64_t pos = 5;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, 1, 1, z.data(), n) == DPLORA_OK);
  CHECK(pos > 5);
  double s = 0, s2 = 0;
  for (int64_t v : z) {
    s += double(v);
    s2 += double(v) * double(v);
  }
  // Variance 0.999999788767728 (Canonne et al.); 4th moment ~3.
  CHECK(std::fabs(s / n) < 5 / std::sqrt(double(n)));
  CHECK(std::fabs(s2 / n - 0.999999788767728) < 5 * std::sqrt(2.0 / n));
  // Determinism and sequential continuation.
  std::vector<int64_t> a(100), b(50), c(50);
  uint64_t pa = 0, pb = 0;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pa, 9, 4, a.data(), 100) == DPLORA_OK);
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pb, 9, 4, b.data(), 50) == DPLORA_OK);
  uint64_t pc = 0;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pc, 9, 4, c.data(), 50) == DPLORA_OK);
  CHECK(b == c && pb == pc);
  for (int i = 0; i < 50; ++i) CHECK(a[size_t(i)] == b[size_t(i)]);
  // Large sigma: sigma = 2^16.
  pos = 0;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, uint64_t(1) << 32, 1, z.data(),
                                     20000) == DPLORA_OK);
  s2 = 0;
  for (int i = 0; i < 20000; ++i) s2 += double(z[size_t(i)]) * double(z[size_t(i)]);
  CHECK(std::fabs(s2 / 20000 / 4294967296.0 - 1) < 5 * std::sqrt(2.0 / 20000));
  // The largest sigma^2 = (2^64 - 1) / 1: 2T > 2^32 (the 64-bit Lemire draw) and a 65-bit
  // acceptance denominator; and (2^64 - 1) / 2^62, whose 2 a b t^2 overflowed the previous sampler.
  pos = 0;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, ~uint64_t(0), 1, z.data(), 20000) ==
        DPLORA_OK);
  s2 = 0;
  for (int i = 0; i < 20000; ++i) s2 += double(z[size_t(i)]) * double(z[size_t(i)]);
  CHECK(std::fabs(s2 / 20000 / 18446744073709551615.0 - 1) < 5 * std::sqrt(2.0 / 20000));
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, ~uint64_t(0), uint64_t(1) << 62,
                                     z.data(), 20000) == DPLORA_OK);
  s2 = 0;
  for (int i = 0; i < 20000; ++i) s2 += double(z[size_t(i)]) * double(z[size_t(i)]);
  CHECK(std::fabs(s2 / 20000 / 4.0 - 1) < 5 * std::sqrt(2.0 / 20000));
  // Refusals.
  pos = 0;
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, 0, 1, z.data(), 4) == DPLORA_EINVAL);
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, 1, 0, z.data(), 4) == DPLORA_EINVAL);
  pos = ~uint64_t(0) - 1;  // the stream ends after one word
  CHECK(dplora_rng_discrete_gaussian(kRfcKey, kRfcNonce, &pos, 1, 1, z.data(), 100) ==
        DPLORA_EOVERFLOW);
  // Saturating noise on a sum.
  int64_t sum[4] = {INT64_MAX, INT64_MIN, 0, 7};
  int64_t sat = -1;
  pos = 0;
  CHECK(dplora_fixed_add_discrete_gaussian(kRfcKey, kRfcNonce, &pos, 1000000, 1, sum, 4, &sat) ==
        DPLORA_OK);
  CHECK(sat >= 0 && sat <= 2);
}

// The branch-free fast path of the sampler gives exactly the samples of the slot's definition
// (dgauss::sample_groups_reference), over parameters on both sides of its limits.
void test_discrete_gaussian_fast_path() {
  const dplora::chacha::Stream s = dplora::chacha::make_stream(kRfcKey, kRfcNonce);
  const struct {
    uint64_t a, b;
  } cases[] = {{1, 100},
               {1, 2},
               {1, 1},
               {9, 4},
               {10, 3},
               {1000000, 1},
               {3000001, 3},
               {uint64_t(1) << 32, 1},
               {(uint64_t(1) << 32) + 1, 1},
               {uint64_t(1) << 40, 1},
               {(uint64_t(1) << 60) + 1, 1},
               {~uint64_t(0), uint64_t(1) << 62}};
  const int64_t n = 64 * 64;
  std::vector<int64_t> fast(static_cast<size_t>(n)), ref(static_cast<size_t>(n));
  int n_fast = 0;
  for (const auto &c : cases) {
    dplora::dgauss::Params p;
    CHECK(dplora::dgauss::setup(c.a, c.b, p));
    n_fast += p.fast ? 1 : 0;
    CHECK(dplora::dgauss::sample_groups(s, 12345, p, 0, 64, fast.data(), n,
                                        dplora::chacha::blocks_scalar, 4) == DPLORA_OK);
    CHECK(dplora::dgauss::sample_groups_reference(s, 12345, p, 0, 64, ref.data(), n) == DPLORA_OK);
    CHECK(fast == ref);
  }
  CHECK(n_fast >= 8);  // the comparison covers the fast path
  // Single slots on chosen slices (scripts/dgauss_kat.py): each rare step of the definition, and
  // the fast path (slot_for_test returns -2 where it disagrees).
  const dplora::chacha::Stream kat = dplora::chacha::make_stream(kKatKey, kKatNonce);
  for (const SlotCase &c : kSlotCases) {
    dplora::dgauss::Params p;
    CHECK(dplora::dgauss::setup(c.num, c.den, p));
    int64_t y = 0;
    uint64_t used = 0;
    CHECK(dplora::dgauss::slot_for_test(kat, c.pos, p, c.w, &y, &used) == c.accepted);
    CHECK(y == c.y && used == c.used);
  }
}

// v for one row, as the kernel computes it; checks sum v^2 <= c^2.
void check_row(const std::vector<int32_t> &row, int64_t c) {
  std::vector<int64_t> sum(row.size());
  int64_t clipped = 0;
  CHECK(dplora_fixed_clip_sum(row.data(), 1, int64_t(row.size()), c, sum.data(), &clipped) ==
        DPLORA_OK);
  unsigned __int128 n2 = 0, v2 = 0;
  for (size_t j = 0; j < row.size(); ++j) {
    n2 += (unsigned __int128)(int64_t(row[j]) * int64_t(row[j]));
    v2 += (unsigned __int128)(sum[j] * sum[j]);
    const int64_t g = row[j], v = sum[j];
    CHECK((v >= 0 ? v : -v) <= (g >= 0 ? g : -g));
    CHECK(v == 0 || ((v < 0) == (g < 0)));
  }
  const unsigned __int128 c2 = (unsigned __int128)c * (unsigned __int128)c;
  CHECK(v2 <= c2);
  CHECK(clipped == (n2 > c2 ? 1 : 0));
}

void test_fixed() {
  typedef unsigned __int128 u128;
  const auto isqrt128 = [](u128 n) { return dplora::intmath::isqrt_floor<u128>(n); };
  CHECK(isqrt128(0) == 0 && isqrt128(1) == 1 && isqrt128(3) == 1 && isqrt128(4) == 2);
  const u128 big = (u128(1) << 116) - 1;
  const u128 r = isqrt128(big);
  CHECK(r * r <= big && (r + 1) * (r + 1) > big);
  const int32_t mn = INT32_MIN, mx = INT32_MAX;
  for (int64_t c : {int64_t(1), int64_t(2), int64_t(3), int64_t(5), int64_t(1000), int64_t(46341),
                    int64_t(mx)}) {
    check_row({int32_t(c), 1}, c);  // n2 = c^2 + 1
    check_row({-int32_t(c), -1}, c);
  }
  check_row({mn, mn, mn}, 1);
  check_row({mn, mx, mn, mx}, mx);
  check_row({mn}, mx);
  check_row({mx, 1, 1, 1, 1}, 3);
  check_row(std::vector<int32_t>(4096, -46341), 46341);
  // Batch sum with threads equals the sum of single rows.
  const int64_t batch = 9, dim = 1000;
  std::vector<int32_t> g(static_cast<size_t>(batch * dim));
  uint32_t st = 12345;
  for (auto &v : g) {
    st = st * 1664525u + 1013904223u;
    v = int32_t(st) >> (st % 23);
  }
  std::vector<int64_t> total(static_cast<size_t>(dim)), one(static_cast<size_t>(dim)),
      acc(static_cast<size_t>(dim), 0);
  CHECK(dplora_fixed_clip_sum(g.data(), batch, dim, 1 << 24, total.data(), nullptr) == DPLORA_OK);
  for (int64_t i = 0; i < batch; ++i) {
    CHECK(dplora_fixed_clip_sum(g.data() + i * dim, 1, dim, 1 << 24, one.data(), nullptr) ==
          DPLORA_OK);
    for (int64_t j = 0; j < dim; ++j) acc[size_t(j)] += one[size_t(j)];
  }
  CHECK(acc == total);
  // Overflow refusal and bad arguments.
  int64_t s1[1];
  CHECK(dplora_fixed_clip_sum(g.data(), (int64_t(1) << 31) + 2, 0, mx, s1, nullptr) ==
        DPLORA_EOVERFLOW);
  CHECK(dplora_fixed_clip_sum(g.data(), 1, 1, 0, s1, nullptr) == DPLORA_EINVAL);
  CHECK(dplora_fixed_clip_sum(g.data(), 1, 1, int64_t(mx) + 1, s1, nullptr) == DPLORA_EINVAL);
  // Quantizer.
  const float x[8] = {0.5f, 1.5f, 2.5f, -2.5f, 1e20f, -INFINITY, NAN, 0.1f};
  int32_t q[8];
  dplora_quantize_stats qs;
  CHECK(dplora_fixed_quantize(x, 8, 0, q, &qs) == DPLORA_OK);
  CHECK(q[0] == 0 && q[1] == 2 && q[2] == 2 && q[3] == -2 && q[4] == mx && q[5] == -mx &&
        q[6] == 0 && q[7] == 0);
  CHECK(qs.saturated == 2 && qs.nan == 1);
  CHECK(dplora_fixed_quantize(x, 8, 31, q, &qs) == DPLORA_EINVAL);
  float back[8];
  CHECK(dplora_fixed_dequantize_i32(q, 8, 0, back) == DPLORA_OK && back[1] == 2.0f);
}

}  // namespace

int main() {
  test_block();
  test_keystream_isas();
  test_gaussian_isas_threads();
  test_discrete_gaussian();
  test_discrete_gaussian_fast_path();
  test_fixed();
  TEST_MAIN_END();
}
