// NEON Box-Muller, 4 pairs per step (two steps per 16-word group); the
// operation sequence of gaussian_scalar.cc, so the samples match it
// bitwise.  vfmaq_f32 stands exactly where the scalar path calls std::fma;
// no product feeds an addition anywhere else, so the compiler's default
// floating-point contraction has nothing to fuse.
#include <arm_neon.h>

#include "gaussian.h"

namespace dplora {
namespace gauss {
namespace {

inline float32x4_t set(float v) {
  return vdupq_n_f32(v);
}
inline uint32x4_t setu(uint32_t v) {
  return vdupq_n_u32(v);
}
// std::fma(a, b, c)
inline float32x4_t fma4(float32x4_t a, float32x4_t b, float32x4_t c) {
  return vfmaq_f32(c, a, b);
}

inline void pair4(uint32x4_t wa, uint32x4_t wb, float32x4_t &zc, float32x4_t &zs) {
  const uint32x4_t one = setu(1);
  const float32x4_t u1 = vmulq_f32(
      vcvtq_f32_s32(vreinterpretq_s32_u32(vorrq_u32(vshrq_n_u32(wa, 1), one))), set(0x1p-31f));
  const uint32x4_t bits = vreinterpretq_u32_f32(u1);
  int32x4_t e = vsubq_s32(vreinterpretq_s32_u32(vshrq_n_u32(bits, 23)), vdupq_n_s32(127));
  uint32x4_t mb = vandq_u32(bits, setu(0x7fffffu));
  const uint32x4_t big = vcgtq_u32(mb, setu(kSqrt2Mant));
  mb = vorrq_u32(mb, vbslq_u32(big, setu(0x3f000000u), setu(0x3f800000u)));
  e = vsubq_s32(e, vreinterpretq_s32_u32(big));  // big is -1 where m was halved
  const float32x4_t m = vreinterpretq_f32_u32(mb);
  const float32x4_t s = vdivq_f32(vsubq_f32(m, set(1.0f)), vaddq_f32(m, set(1.0f)));
  const float32x4_t z = vmulq_f32(s, s);
  const float32x4_t p = fma4(z, fma4(z, fma4(z, set(kL9), set(kL7)), set(kL5)), set(kL3));
  const float32x4_t t = vmulq_f32(s, z);
  const float32x4_t lnm = fma4(t, p, vaddq_f32(s, s));
  const float32x4_t ef = vcvtq_f32_s32(e);
  const float32x4_t lnu = fma4(ef, set(kLn2Hi), fma4(ef, set(kLn2Lo), lnm));
  float32x4_t r2 = vmulq_f32(set(-2.0f), lnu);
  r2 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r2), vcgtq_f32(r2, set(0.0f))));
  const float32x4_t r = vsqrtq_f32(r2);

  const uint32x4_t q = vshrq_n_u32(vaddq_u32(wb, setu(0x20000000u)), 30);
  const int32x4_t xi = vreinterpretq_s32_u32(vsubq_u32(wb, vshlq_n_u32(q, 30)));
  const float32x4_t x = vmulq_f32(vcvtq_f32_s32(xi), set(0x1p-30f));
  const float32x4_t x2 = vmulq_f32(x, x);
  const float32x4_t sp = vmulq_f32(
      x, fma4(x2, fma4(x2, fma4(x2, fma4(x2, set(kS9), set(kS7)), set(kS5)), set(kS3)), set(kS1)));
  const float32x4_t cp = fma4(
      x2, fma4(x2, fma4(x2, fma4(x2, fma4(x2, set(kC10), set(kC8)), set(kC6)), set(kC4)), set(kC2)),
      set(1.0f));
  const uint32x4_t odd = vtstq_u32(q, one);
  const uint32x4_t two = setu(2);
  const uint32x4_t csign = vshlq_n_u32(vandq_u32(vaddq_u32(q, one), two), 30);
  const uint32x4_t ssign = vshlq_n_u32(vandq_u32(q, two), 30);
  const float32x4_t c =
      vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(vbslq_f32(odd, sp, cp)), csign));
  const float32x4_t sn =
      vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(vbslq_f32(odd, cp, sp)), ssign));
  zc = vmulq_f32(r, c);
  zs = vmulq_f32(r, sn);
}

}  // namespace

void groups_neon(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add) {
  const float32x4_t sd = vdupq_n_f32(stdf);
  for (int64_t g = 0; g < ngroups; ++g) {
    for (int h = 0; h < 8; h += 4) {
      const uint32x4_t wa = vld1q_u32(words + 16 * g + h);
      const uint32x4_t wb = vld1q_u32(words + 16 * g + 8 + h);
      float32x4_t zc, zs;
      pair4(wa, wb, zc, zs);
      float *o = out + 16 * g + h;
      if (add) {
        vst1q_f32(o, vfmaq_f32(vld1q_f32(o), zc, sd));
        vst1q_f32(o + 8, vfmaq_f32(vld1q_f32(o + 8), zs, sd));
      } else {
        vst1q_f32(o, vmulq_f32(zc, sd));
        vst1q_f32(o + 8, vmulq_f32(zs, sd));
      }
    }
  }
}

}  // namespace gauss
}  // namespace dplora
