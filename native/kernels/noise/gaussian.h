// Single-precision Box-Muller shared by the ISA paths.  Every path computes
// exactly the same IEEE operations (explicit fused multiply-adds, correctly
// rounded division and square root, no contractable mul+add), so the
// samples are bitwise identical on all of them.
//
// Group layout (see dplora_rng_gaussian_f32): 16 stream words give 16
// samples; lane l < 8 uses words l (radius) and 8 + l (angle) and writes
// out[l] = r cos(theta), out[8 + l] = r sin(theta).
#pragma once
#include <cstdint>

namespace dplora {
namespace gauss {

// Coefficients (float32, written as exact hexadecimal literals).
// ln(m) = 2 s + s^3 (L3 + s^2 (L5 + s^2 (L7 + s^2 L9))), s = (m-1)/(m+1),
// the atanh series with L_k = 2/k; m in [sqrt(1/2), sqrt(2)).
constexpr float kL3 = 0x1.555556p-1f, kL5 = 0x1.99999ap-2f, kL7 = 0x1.24924ap-2f,
                kL9 = 0x1.c71c72p-3f;
// ln 2 split so that e * kLn2Hi is exact for |e| < 2^10.
constexpr float kLn2Hi = 0x1.63p-1f, kLn2Lo = -0x1.bd0106p-13f;
// sin(pi/2 x) = x (S1 + x^2 (S3 + ...)), cos(pi/2 x) = 1 + x^2 (C2 + ...):
// Taylor coefficients (pi/2)^k / k! with signs, |x| <= 1/2 (remainder
// below 2e-9 relative).
constexpr float kS1 = 0x1.921fb6p+0f, kS3 = -0x1.4abbcep-1f, kS5 = 0x1.466bc6p-4f,
                kS7 = -0x1.32d2ccp-8f, kS9 = 0x1.507834p-13f;
constexpr float kC2 = -0x1.3bd3ccp+0f, kC4 = 0x1.03c1f0p-2f, kC6 = -0x1.55d3c8p-6f,
                kC8 = 0x1.e1f506p-11f, kC10 = -0x1.a6d1f2p-16f;
// Mantissa bits of sqrt(2) as a float in [1, 2).
constexpr uint32_t kSqrt2Mant = 0x3504f3u;

// Transforms `ngroups` full groups: words[16 g ...] -> out[16 g ...].
// add != 0: out = fma(z, stdf, out), else out = z * stdf.
using GroupsFn = void (*)(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add);
void groups_scalar(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add);
void groups_avx2(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add);
void groups_avx512(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add);
void groups_neon(const uint32_t *words, int64_t ngroups, float *out, float stdf, int add);

}  // namespace gauss
}  // namespace dplora
