// AVX-512 Box-Muller, two 16-word groups (16 pairs) per step; the operation
// sequence of gaussian_scalar.cc, so the samples match it bitwise.  An odd
// last group goes to the AVX2 path (same results).
// GCC 12 warns (falsely) inside avx512fintrin.h, whose intrinsics start
// from _mm512_undefined_*; the CMake build treats warnings as errors.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "gaussian.h"

namespace dplora {
namespace gauss {
namespace {

inline __m512 fma16(__m512 a, __m512 b, __m512 c) {
  return _mm512_fmadd_ps(a, b, c);
}
inline __m512 set(float v) {
  return _mm512_set1_ps(v);
}

inline void pair16(__m512i wa, __m512i wb, __m512 &zc, __m512 &zs) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512 u1 = _mm512_mul_ps(
      _mm512_cvtepi32_ps(_mm512_or_si512(_mm512_srli_epi32(wa, 1), one)), set(0x1p-31f));
  const __m512i bits = _mm512_castps_si512(u1);
  __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127));
  __m512i mb = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffff));
  const __mmask16 big = _mm512_cmpgt_epi32_mask(mb, _mm512_set1_epi32(int(kSqrt2Mant)));
  mb = _mm512_or_si512(mb, _mm512_mask_blend_epi32(big, _mm512_set1_epi32(0x3f800000),
                                                   _mm512_set1_epi32(0x3f000000)));
  e = _mm512_mask_add_epi32(e, big, e, one);
  const __m512 m = _mm512_castsi512_ps(mb);
  const __m512 s = _mm512_div_ps(_mm512_sub_ps(m, set(1.0f)), _mm512_add_ps(m, set(1.0f)));
  const __m512 z = _mm512_mul_ps(s, s);
  const __m512 p = fma16(z, fma16(z, fma16(z, set(kL9), set(kL7)), set(kL5)), set(kL3));
  const __m512 t = _mm512_mul_ps(s, z);
  const __m512 lnm = fma16(t, p, _mm512_add_ps(s, s));
  const __m512 ef = _mm512_cvtepi32_ps(e);
  const __m512 lnu = fma16(ef, set(kLn2Hi), fma16(ef, set(kLn2Lo), lnm));
  __m512 r2 = _mm512_mul_ps(set(-2.0f), lnu);
  r2 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r2, _mm512_setzero_ps(), _CMP_GT_OQ), r2);
  const __m512 r = _mm512_sqrt_ps(r2);

  const __m512i q = _mm512_srli_epi32(_mm512_add_epi32(wb, _mm512_set1_epi32(0x20000000)), 30);
  const __m512i xi = _mm512_sub_epi32(wb, _mm512_slli_epi32(q, 30));
  const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(xi), set(0x1p-30f));
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 sp = _mm512_mul_ps(
      x,
      fma16(x2, fma16(x2, fma16(x2, fma16(x2, set(kS9), set(kS7)), set(kS5)), set(kS3)), set(kS1)));
  const __m512 cp = fma16(
      x2,
      fma16(x2, fma16(x2, fma16(x2, fma16(x2, set(kC10), set(kC8)), set(kC6)), set(kC4)), set(kC2)),
      set(1.0f));
  const __mmask16 odd = _mm512_test_epi32_mask(q, one);
  __m512 c = _mm512_mask_blend_ps(odd, cp, sp);
  __m512 sn = _mm512_mask_blend_ps(odd, sp, cp);
  const __m512i two = _mm512_set1_epi32(2);
  c = _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(c),
                       _mm512_slli_epi32(_mm512_and_si512(_mm512_add_epi32(q, one), two), 30)));
  sn = _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(sn), _mm512_slli_epi32(_mm512_and_si512(q, two), 30)));
  zc = _mm512_mul_ps(r, c);
  zs = _mm512_mul_ps(r, sn);
}

}  // namespace

void groups_avx512(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add) {
  const __m512 sd = _mm512_set1_ps(stdf);
  // Lanes 0-7 come from group g, 8-15 from group g + 1.
  const __m512i lo_idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i hi_idx =
      _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  int64_t g = 0;
  for (; g + 2 <= ngroups; g += 2) {
    const __m512i v0 = _mm512_loadu_si512(words + 16 * g);
    const __m512i v1 = _mm512_loadu_si512(words + 16 * g + 16);
    const __m512i wa = _mm512_permutex2var_epi32(v0, lo_idx, v1);
    const __m512i wb = _mm512_permutex2var_epi32(v0, hi_idx, v1);
    __m512 zc, zs;
    pair16(wa, wb, zc, zs);
    // out[16g .. 16g+31] = zc[0..7], zs[0..7], zc[8..15], zs[8..15].
    const __m512 o0z = _mm512_permutex2var_ps(zc, lo_idx, zs);
    const __m512 o1z = _mm512_permutex2var_ps(zc, hi_idx, zs);
    float *o = out + 16 * g;
    if (add) {
      _mm512_storeu_ps(o, _mm512_fmadd_ps(o0z, sd, _mm512_loadu_ps(o)));
      _mm512_storeu_ps(o + 16, _mm512_fmadd_ps(o1z, sd, _mm512_loadu_ps(o + 16)));
    } else {
      _mm512_storeu_ps(o, _mm512_mul_ps(o0z, sd));
      _mm512_storeu_ps(o + 16, _mm512_mul_ps(o1z, sd));
    }
  }
  if (g < ngroups) groups_avx2(words + 16 * g, ngroups - g, out + 16 * g, stdf, add);
}

}  // namespace gauss
}  // namespace dplora
