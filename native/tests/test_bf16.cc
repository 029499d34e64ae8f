// The bf16 frozen base (dplora_sgemm_pack_b_bf16 + dplora_sgemm_packed) against
// a plain reference that rounds both operands to bf16 (round to nearest even)
// and sums in double, under every ISA this CPU runs, 1 and 2 threads: odd
// shapes, edge tiles, odd k, strides, transposes, alpha/beta.  Also: the
// AVX-512 fp32 fallback (the driver with no native micro-kernel) on a CPU that
// has AVX512_BF16, and the AVX512_BF16 packing of A bitwise against the
// portable one.
//
// Bound: the products of bf16 values are exact in fp32, so only the fp32 sums
// err: |C - ref| <= gamma_n (|alpha| sum|a b| + |beta C0|), n = k + ceil(k/64) + 3,
// gamma_n = n u / (1 - n u), u = 2^-24, plus k 2^-126 |alpha| for sums flushed
// to zero by vdpbf16ps.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.h"
#include "dplora.h"
#include "kernels.h"

namespace {

uint64_t g_state = 0x2545F4914F6CDD1Dull;
double urand() {
  g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<double>(g_state >> 11) * (1.0 / 9007199254740992.0);
}
std::vector<float> rvec(int64_t n) {
  std::vector<float> v(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (auto &x : v) x = static_cast<float>(2.0 * urand() - 1.0);
  return v;
}

// Reference rounding written from the definition (not the kernel's helper).
double bf16(float x) {
  if (std::isnan(x)) return x;
  if (std::fpclassify(x) == FP_SUBNORMAL) return std::signbit(x) ? -0.0 : 0.0;
  if (std::isinf(x) || x == 0.0f) return x;
  int e = 0;
  std::frexp(static_cast<double>(x), &e);  // |x| in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, e - 8);
  const double q = static_cast<double>(x) / ulp;
  double r = std::floor(q);
  const double frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1.0;
  const double v = r * ulp;
  return std::fabs(v) > 3.3895313892515355e38 ? std::copysign(INFINITY, v) : v;
}

double gamma(int64_t n) {
  const double u = std::ldexp(1.0, -24);
  return n * u / (1.0 - n * u);
}

struct Case {
  int64_t m, n, k;
  int ta, tb;
  float alpha, beta;
};

// C from the kernel under test vs the reference; returns the worst error / bound.
template <typename Mul>
double check_case(const Case &cs, Mul mul) {
  const int64_t m = cs.m, n = cs.n, k = cs.k;
  const int64_t ra = cs.ta ? k : m, wa = cs.ta ? m : k, rb = cs.tb ? n : k, wb = cs.tb ? k : n;
  const int64_t lda = wa + 3, ldb = wb + 1, ldc = n + 2;
  std::vector<float> A = rvec(ra * lda), B = rvec(rb * ldb), C = rvec(m * ldc);
  const std::vector<float> C0 = C;
  // One float into the buffers: 4-byte aligned only, as a Float32Array view can be.
  std::vector<float> Au(A.size() + 1), Cu(C.size() + 1);
  std::memcpy(Au.data() + 1, A.data(), A.size() * sizeof(float));
  std::memcpy(Cu.data() + 1, C.data(), C.size() * sizeof(float));
  CHECK(mul(cs, Au.data() + 1, lda, B.data(), ldb, Cu.data() + 1, ldc) == DPLORA_OK);
  double worst = 0;
  const double g = gamma(k + (k + 63) / 64 + 3);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = Cu[1 + i * ldc + j];
      if (j >= n) {  // padding of C is never written
        CHECK(std::memcmp(&got, &C0[i * ldc + j], sizeof(float)) == 0);
        continue;
      }
      double s = 0, sa = 0;
      for (int64_t q = 0; q < k; ++q) {
        const double a = bf16(cs.ta ? A[q * lda + i] : A[i * lda + q]);
        const double b = bf16(cs.tb ? B[j * ldb + q] : B[q * ldb + j]);
        s += a * b;
        sa += std::fabs(a * b);
      }
      const double c0 = cs.beta == 0.0f ? 0.0 : static_cast<double>(cs.beta) * C0[i * ldc + j];
      const double ref = cs.alpha * s + c0;
      const double bound =
          g * (std::fabs(cs.alpha) * sa + std::fabs(c0)) + k * std::ldexp(1.0, -126);
      const double err = std::fabs(got - ref);
      worst = std::fmax(worst, bound > 0 ? err / bound : (err == 0 ? 0 : INFINITY));
    }
  }
  return worst;
}

const Case kCases[] = {
    {1, 1, 1, 0, 0, 1, 0},     {1, 33, 2, 0, 1, 1, 0},    {5, 40, 3, 0, 0, 1, 0},
    {13, 33, 7, 0, 1, 1, 0},   {12, 32, 256, 0, 1, 1, 0}, {25, 65, 257, 0, 1, 1, 0},
    {37, 17, 513, 0, 0, 1, 0}, {24, 64, 31, 1, 0, 1, 0},  {11, 9, 30, 1, 1, -0.75f, 0.5f},
    {19, 48, 100, 0, 1, 2, 1}, {130, 70, 96, 0, 1, 1, 1}, {97, 130, 300, 0, 0, 0.5f, 0},
    {3, 200, 64, 0, 1, 1, 0},  {2, 3, 0, 0, 0, 1, 0.25f}, {4, 5, 6, 0, 0, 0, 2},
};

// The public API: pack with dplora_sgemm_pack_b_bf16, multiply with dplora_sgemm_packed.
int public_mul(const Case &cs, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
               int64_t ldc) {
  dplora_packed_b *pb = nullptr;
  int rc = dplora_sgemm_pack_b_bf16(cs.tb, cs.k, cs.n, b, ldb, &pb);
  if (rc != DPLORA_OK) return rc;
  CHECK(dplora_packed_b_dtype(pb) == DPLORA_DTYPE_BF16);
  CHECK(dplora_packed_b_isa(pb) == dplora_active_isa());
  rc = dplora_sgemm_packed(cs.ta, cs.m, cs.alpha, a, lda, pb, cs.beta, c, ldc);
  dplora_packed_b_free(pb);
  return rc;
}

void test_public() {
  for (const Case &cs : kCases) {
    const double w = check_case(cs, public_mul);
    if (!(w <= 1.0)) {
      std::fprintf(stderr, "isa %s m=%lld n=%lld k=%lld ta=%d tb=%d: error/bound %g\n",
                   dplora_isa_name(dplora_active_isa()), static_cast<long long>(cs.m),
                   static_cast<long long>(cs.n), static_cast<long long>(cs.k), cs.ta, cs.tb, w);
    }
    CHECK(w <= 1.0);
  }
}

// The driver with a given bf16 kernel entry (e.g. the fallback on the AVX-512 path).
void test_driver(const dplora::linalg::GemmBf16Kernel &bk, const dplora::linalg::GemmKernel &fk) {
  using namespace dplora::linalg;
  for (const Case &cs : kCases) {
    auto mul = [&](const Case &c, const float *a, int64_t lda, const float *b, int64_t ldb,
                   float *out, int64_t ldc) {
      std::vector<uint16_t> packed(
          static_cast<size_t>(std::max<int64_t>(packed_b_bf16_elems(bk, fk, c.k, c.n), 1)));
      pack_b_bf16_whole(bk, fk, c.tb != 0, c.k, c.n, b, ldb, packed.data(), true);
      return gemm_bf16_prepacked(bk, fk, c.ta != 0, c.m, c.n, c.k, c.alpha, a, lda, packed.data(),
                                 c.beta, out, ldc, true);
    };
    CHECK(check_case(cs, mul) <= 1.0);
  }
}

// dplora_sgemm_packed_base_init with a bf16 base: bitwise the init product (fp32, beta) then
// the bf16 product with beta = 1; and dplora_packed_b_repack: products bitwise those of a
// fresh handle.  Odd sizes (edge tiles), strides, alpha2 = 0 and k = 0 included.
void test_init_and_repack() {
  struct InitCase {
    int64_t m, n, k, k2;
    int ta;
    float alpha, beta, alpha2;
  };
  const InitCase cases[] = {
      {1, 1, 1, 1, 0, 1, 0, 1},
      {13, 33, 7, 9, 0, 1, 0, 1.5f},
      {130, 70, 96, 17, 1, -0.5f, 0.5f, 1},
      {97, 768, 300, 64, 0, 1, 0, -2},
      {50, 40, 0, 3, 0, 1, 0.25f, 1},
      {30, 20, 10, 4, 0, 1, 1, 0},
  };
  for (const InitCase &cs : cases) {
    const int64_t lda = (cs.ta ? cs.m : cs.k) + 1, lda2 = cs.k2 + 2, ldc = cs.n + 3;
    const std::vector<float> A = rvec((cs.ta ? cs.k : cs.m) * lda), B = rvec(cs.n * cs.k);
    const std::vector<float> A2 = rvec(cs.m * lda2), B2 = rvec(cs.k2 * cs.n), C0 = rvec(cs.m * ldc);
    dplora_packed_b *pb = nullptr, *pb2 = nullptr;
    CHECK(dplora_sgemm_pack_b_bf16(1, cs.k, cs.n, B.data(), std::max<int64_t>(cs.k, 1), &pb) ==
          DPLORA_OK);
    CHECK(dplora_sgemm_pack_b(0, cs.k2, cs.n, B2.data(), cs.n, &pb2) == DPLORA_OK);
    std::vector<float> fused = C0, two = C0;
    CHECK(dplora_sgemm_packed_base_init(cs.ta, cs.m, cs.alpha, A.data(), lda, pb, cs.beta,
                                        fused.data(), ldc, cs.alpha2, A2.data(), lda2,
                                        pb2) == DPLORA_OK);
    CHECK(dplora_sgemm_packed(0, cs.m, cs.alpha2, A2.data(), lda2, pb2, cs.beta, two.data(), ldc) ==
          DPLORA_OK);
    CHECK(dplora_sgemm_packed(cs.ta, cs.m, cs.alpha, A.data(), lda, pb, 1.0f, two.data(), ldc) ==
          DPLORA_OK);
    CHECK(std::memcmp(fused.data(), two.data(), fused.size() * sizeof(float)) == 0);
    // Repack both handles with new values: the same products as fresh handles.
    const std::vector<float> Bn = rvec(cs.n * cs.k), B2n = rvec(cs.k2 * cs.n);
    CHECK(dplora_packed_b_repack(pb, 1, Bn.data(), std::max<int64_t>(cs.k, 1)) == DPLORA_OK);
    CHECK(dplora_packed_b_repack(pb2, 0, B2n.data(), cs.n) == DPLORA_OK);
    CHECK(dplora_packed_b_dtype(pb) == DPLORA_DTYPE_BF16);
    dplora_packed_b *qb = nullptr, *qb2 = nullptr;
    CHECK(dplora_sgemm_pack_b_bf16(1, cs.k, cs.n, Bn.data(), std::max<int64_t>(cs.k, 1), &qb) ==
          DPLORA_OK);
    CHECK(dplora_sgemm_pack_b(0, cs.k2, cs.n, B2n.data(), cs.n, &qb2) == DPLORA_OK);
    fused = C0;
    two = C0;
    CHECK(dplora_sgemm_packed_base_init(cs.ta, cs.m, cs.alpha, A.data(), lda, pb, cs.beta,
                                        fused.data(), ldc, cs.alpha2, A2.data(), lda2,
                                        pb2) == DPLORA_OK);
    CHECK(dplora_sgemm_packed_base_init(cs.ta, cs.m, cs.alpha, A.data(), lda, qb, cs.beta,
                                        two.data(), ldc, cs.alpha2, A2.data(), lda2,
                                        qb2) == DPLORA_OK);
    CHECK(std::memcmp(fused.data(), two.data(), fused.size() * sizeof(float)) == 0);
    // A bf16 init operand, a k2 over 64 and a mismatched n are refused.
    CHECK(dplora_sgemm_packed_base_init(cs.ta, cs.m, cs.alpha, A.data(), lda, pb, cs.beta,
                                        two.data(), ldc, 1, A2.data(), lda2, qb) == DPLORA_EINVAL);
    CHECK(dplora_packed_b_repack(nullptr, 0, Bn.data(), 1) == DPLORA_EINVAL);
    if (cs.n > 1) CHECK(dplora_packed_b_repack(pb2, 0, B2n.data(), cs.n - 1) == DPLORA_EINVAL);
    dplora_packed_b_free(pb);
    dplora_packed_b_free(pb2);
    dplora_packed_b_free(qb);
    dplora_packed_b_free(qb2);
  }
}

// Bad arguments are refused, never a crash.
void test_invalid() {
  dplora_packed_b *pb = nullptr;
  const float b[6] = {1, 2, 3, 4, 5, 6};
  CHECK(dplora_sgemm_pack_b_bf16(0, 2, 3, b, 2, &pb) == DPLORA_EINVAL);  // ldb < n
  CHECK(pb == nullptr);
  CHECK(dplora_sgemm_pack_b_bf16(0, -1, 3, b, 3, &pb) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_pack_b_bf16(0, 2, 3, nullptr, 3, &pb) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_pack_b_bf16(0, 2, 3, b, 3, nullptr) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_pack_b_bf16(0, 2, 3, b, 3, &pb) == DPLORA_OK);
  CHECK(dplora_packed_b_bytes(pb) >= 2 * 3 * 2);
  float c[6];
  CHECK(dplora_sgemm_packed(0, 2, 1, nullptr, 2, pb, 0, c, 3) == DPLORA_EINVAL);
  CHECK(dplora_sgemm_packed(0, 2, 1, b, 1, pb, 0, c, 3) == DPLORA_EINVAL);  // lda < k
  dplora_packed_b_free(pb);
  CHECK(dplora_packed_b_dtype(nullptr) == -1);
}

}  // namespace

int main() {
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (!dplora_isa_supported(isa)) continue;
    CHECK(dplora_set_isa(isa) == DPLORA_OK);
    std::printf("isa %s, bf16 %s\n", dplora_isa_name(isa),
                dplora_bf16_native() ? "native" : "widened");
    for (int threads : {1, 2}) {
      CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
      test_public();
      test_init_and_repack();
      // The same table's fallback (no native micro-kernel), on every path.
      const dplora::Kernels &K = dplora::kernels_for(isa);
      test_driver(dplora::linalg::GemmBf16Kernel{0, 0, 0, 0, 0, nullptr, nullptr}, K.gemm);
      if (K.bf16.micro != nullptr) {
        test_driver(K.bf16, K.gemm);
        // The portable A packing under the native kernel gives the same words.
        auto portable = K.bf16;
        portable.pack_a = nullptr;
        test_driver(portable, K.gemm);
      }
    }
    test_invalid();
  }
#if defined(__x86_64__) || defined(_M_X64)
  if (dplora::kernels_for(DPLORA_ISA_AVX512).bf16.micro != nullptr) {
    // AVX512_BF16 packing of A, bitwise against the portable packing (odd sizes, specials).
    for (int64_t rows : {1, 5, 12}) {
      for (int64_t kc : {1, 2, 7, 31, 32, 33, 64, 100}) {
        const int64_t lda = kc + 3;
        std::vector<float> a = rvec(rows * lda);
        a[0] = NAN;
        if (a.size() > 2) a[1] = 3.4028235e38f;
        if (a.size() > 3) a[2] = 1e-40f;  // subnormal
        const int mr = dplora::linalg::kBf16MrAvx512;
        const size_t words = static_cast<size_t>((kc + 1) / 2 * mr);
        std::vector<uint32_t> x(words, 0xdeadbeef), y(words, 0xdeadbeef);
        dplora::linalg::pack_a_bf16_avx512bf16(a.data(), lda, rows, kc, mr, x.data());
        dplora::linalg::pack_a_bf16_scalar(a.data(), lda, rows, kc, mr, y.data());
        CHECK(x == y);
      }
    }
  }
#endif
  TEST_MAIN_END();
}
