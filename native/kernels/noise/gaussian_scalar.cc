// Portable Box-Muller (the reference path): the same operation sequence as
// the SIMD paths, lane by lane.  std::fma is used wherever the SIMD code
// fuses, and nowhere else is a product added, so results match bitwise.
#include <cmath>
#include <cstring>

#include "gaussian.h"

namespace dplora {
namespace gauss {
namespace {

inline float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// One Box-Muller pair from a radius word and an angle word.
inline void pair(uint32_t wa, uint32_t wb, float &zc, float &zs) {
  // u1 = float(wa >> 1 | 1) * 2^-31 in (0, 1]; ln u1 = e ln2 + ln m.
  const float u1 = float(int32_t((wa >> 1) | 1u)) * 0x1p-31f;
  const uint32_t bits = to_bits(u1);
  int32_t e = int32_t(bits >> 23) - 127;
  uint32_t mb = bits & 0x7fffffu;
  if (mb > kSqrt2Mant) {
    mb |= 0x3f000000u;
    e += 1;
  } else {
    mb |= 0x3f800000u;
  }
  const float m = from_bits(mb);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float z = s * s;
  const float p = std::fma(z, std::fma(z, std::fma(z, kL9, kL7), kL5), kL3);
  const float t = s * z;
  const float lnm = std::fma(t, p, s + s);
  const float ef = float(e);
  const float lnu = std::fma(ef, kLn2Hi, std::fma(ef, kLn2Lo, lnm));
  float r2 = -2.0f * lnu;
  if (!(r2 > 0.0f)) r2 = 0.0f;
  const float r = std::sqrt(r2);
  // theta = pi/2 (q + x), q = round(4 wb / 2^32) mod 4, x in [-1/2, 1/2).
  const uint32_t q = (wb + 0x20000000u) >> 30;
  const int32_t xi = int32_t(wb - (q << 30));
  const float x = float(xi) * 0x1p-30f;
  const float x2 = x * x;
  const float sp =
      x * std::fma(x2, std::fma(x2, std::fma(x2, std::fma(x2, kS9, kS7), kS5), kS3), kS1);
  const float cp = std::fma(
      x2, std::fma(x2, std::fma(x2, std::fma(x2, std::fma(x2, kC10, kC8), kC6), kC4), kC2), 1.0f);
  float c = (q & 1u) ? sp : cp;
  float sn = (q & 1u) ? cp : sp;
  c = from_bits(to_bits(c) ^ (((q + 1u) & 2u) << 30));
  sn = from_bits(to_bits(sn) ^ ((q & 2u) << 30));
  zc = r * c;
  zs = r * sn;
}

}  // namespace

void groups_scalar(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add) {
  for (int64_t g = 0; g < ngroups; ++g) {
    const uint32_t *w = words + 16 * g;
    float *o = out + 16 * g;
    for (int l = 0; l < 8; ++l) {
      float zc, zs;
      pair(w[l], w[8 + l], zc, zs);
      if (add) {
        o[l] = std::fma(zc, stdf, o[l]);
        o[8 + l] = std::fma(zs, stdf, o[8 + l]);
      } else {
        o[l] = zc * stdf;
        o[8 + l] = zs * stdf;
      }
    }
  }
}

}  // namespace gauss
}  // namespace dplora
