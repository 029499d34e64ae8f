// AVX2+FMA Box-Muller, 8 pairs (one 16-word group) per step; the operation
// sequence of gaussian_scalar.cc, so the samples match it bitwise.
#include <immintrin.h>

#include "gaussian.h"

namespace dplora {
namespace gauss {
namespace {

inline __m256 fma8(__m256 a, __m256 b, __m256 c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline __m256 set(float v) {
  return _mm256_set1_ps(v);
}

inline void pair8(__m256i wa, __m256i wb, __m256 &zc, __m256 &zs) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256 u1 = _mm256_mul_ps(
      _mm256_cvtepi32_ps(_mm256_or_si256(_mm256_srli_epi32(wa, 1), one)), set(0x1p-31f));
  const __m256i bits = _mm256_castps_si256(u1);
  __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  __m256i mb = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
  const __m256i big = _mm256_cmpgt_epi32(mb, _mm256_set1_epi32(int(kSqrt2Mant)));
  mb = _mm256_or_si256(
      mb, _mm256_blendv_epi8(_mm256_set1_epi32(0x3f800000), _mm256_set1_epi32(0x3f000000), big));
  e = _mm256_sub_epi32(e, big);  // big is -1 where m was halved
  const __m256 m = _mm256_castsi256_ps(mb);
  const __m256 s = _mm256_div_ps(_mm256_sub_ps(m, set(1.0f)), _mm256_add_ps(m, set(1.0f)));
  const __m256 z = _mm256_mul_ps(s, s);
  const __m256 p = fma8(z, fma8(z, fma8(z, set(kL9), set(kL7)), set(kL5)), set(kL3));
  const __m256 t = _mm256_mul_ps(s, z);
  const __m256 lnm = fma8(t, p, _mm256_add_ps(s, s));
  const __m256 ef = _mm256_cvtepi32_ps(e);
  const __m256 lnu = fma8(ef, set(kLn2Hi), fma8(ef, set(kLn2Lo), lnm));
  __m256 r2 = _mm256_mul_ps(set(-2.0f), lnu);
  r2 = _mm256_and_ps(r2, _mm256_cmp_ps(r2, _mm256_setzero_ps(), _CMP_GT_OQ));
  const __m256 r = _mm256_sqrt_ps(r2);

  const __m256i q = _mm256_srli_epi32(_mm256_add_epi32(wb, _mm256_set1_epi32(0x20000000)), 30);
  const __m256i xi = _mm256_sub_epi32(wb, _mm256_slli_epi32(q, 30));
  const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(xi), set(0x1p-30f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 sp = _mm256_mul_ps(
      x, fma8(x2, fma8(x2, fma8(x2, fma8(x2, set(kS9), set(kS7)), set(kS5)), set(kS3)), set(kS1)));
  const __m256 cp = fma8(
      x2, fma8(x2, fma8(x2, fma8(x2, fma8(x2, set(kC10), set(kC8)), set(kC6)), set(kC4)), set(kC2)),
      set(1.0f));
  const __m256 odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(q, one), one));
  __m256 c = _mm256_blendv_ps(cp, sp, odd);
  __m256 sn = _mm256_blendv_ps(sp, cp, odd);
  const __m256i two = _mm256_set1_epi32(2);
  c = _mm256_xor_ps(c, _mm256_castsi256_ps(
                           _mm256_slli_epi32(_mm256_and_si256(_mm256_add_epi32(q, one), two), 30)));
  sn = _mm256_xor_ps(sn, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(q, two), 30)));
  zc = _mm256_mul_ps(r, c);
  zs = _mm256_mul_ps(r, sn);
}

}  // namespace

void groups_avx2(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add) {
  const __m256 sd = _mm256_set1_ps(stdf);
  for (int64_t g = 0; g < ngroups; ++g) {
    const __m256i wa = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(words + 16 * g));
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(words + 16 * g + 8));
    __m256 zc, zs;
    pair8(wa, wb, zc, zs);
    float *o = out + 16 * g;
    if (add) {
      _mm256_storeu_ps(o, _mm256_fmadd_ps(zc, sd, _mm256_loadu_ps(o)));
      _mm256_storeu_ps(o + 8, _mm256_fmadd_ps(zs, sd, _mm256_loadu_ps(o + 8)));
    } else {
      _mm256_storeu_ps(o, _mm256_mul_ps(zc, sd));
      _mm256_storeu_ps(o + 8, _mm256_mul_ps(zs, sd));
    }
  }
}

}  // namespace gauss
}  // namespace dplora
