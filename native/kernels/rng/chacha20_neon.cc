// ChaCha20 keystream, 4 blocks at a time with NEON (one block per 32-bit
// lane of uint32x4_t).  Produces exactly the words of chacha::blocks_scalar.
#include <arm_neon.h>

#include "chacha20.h"

namespace dplora {
namespace chacha {
namespace {

template <int N>
inline uint32x4_t rotl(uint32x4_t x) {
  return vsriq_n_u32(vshlq_n_u32(x, N), x, 32 - N);
}
inline uint32x4_t rotl16(uint32x4_t x) {
  return vreinterpretq_u32_u16(vrev32q_u16(vreinterpretq_u16_u32(x)));
}
inline uint32x4_t rotl8(uint32x4_t x) {
  static const uint8_t kIdx[16] = {3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14};
  return vreinterpretq_u32_u8(vqtbl1q_u8(vreinterpretq_u8_u32(x), vld1q_u8(kIdx)));
}

// Words w..w+3 of 4 blocks (x[i] lane j = word w+i of block j) to out + 16 j + w.
inline void store4x4(uint32x4_t x0, uint32x4_t x1, uint32x4_t x2, uint32x4_t x3, uint32_t *out) {
  const uint32x4x2_t t0 = vtrnq_u32(x0, x1), t1 = vtrnq_u32(x2, x3);
  vst1q_u32(out, vcombine_u32(vget_low_u32(t0.val[0]), vget_low_u32(t1.val[0])));
  vst1q_u32(out + 16, vcombine_u32(vget_low_u32(t0.val[1]), vget_low_u32(t1.val[1])));
  vst1q_u32(out + 32, vcombine_u32(vget_high_u32(t0.val[0]), vget_high_u32(t1.val[0])));
  vst1q_u32(out + 48, vcombine_u32(vget_high_u32(t0.val[1]), vget_high_u32(t1.val[1])));
}

#define DPLORA_QR(a, b, c, d)    \
  a = vaddq_u32(a, b);           \
  d = rotl16(veorq_u32(d, a));   \
  c = vaddq_u32(c, d);           \
  b = rotl<12>(veorq_u32(b, c)); \
  a = vaddq_u32(a, b);           \
  d = rotl8(veorq_u32(d, a));    \
  c = vaddq_u32(c, d);           \
  b = rotl<7>(veorq_u32(b, c));

}  // namespace

void blocks_neon(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out) {
  const uint32x4_t c0 = vdupq_n_u32(0x61707865u), c1 = vdupq_n_u32(0x3320646eu),
                   c2 = vdupq_n_u32(0x79622d32u), c3 = vdupq_n_u32(0x6b206574u);
  uint32x4_t k[8];
  for (int i = 0; i < 8; ++i) k[i] = vdupq_n_u32(s.key[i]);
  const uint32x4_t n1 = vdupq_n_u32(s.nonce[1]), n2 = vdupq_n_u32(s.nonce[2]);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    uint32_t lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      const uint64_t b = b0 + uint64_t(i + j);
      lo[j] = uint32_t(b);
      hi[j] = s.nonce[0] + uint32_t(b >> 32);
    }
    const uint32x4_t ctr = vld1q_u32(lo), n0 = vld1q_u32(hi);
    uint32x4_t x0 = c0, x1 = c1, x2 = c2, x3 = c3, x4 = k[0], x5 = k[1], x6 = k[2], x7 = k[3],
               x8 = k[4], x9 = k[5], x10 = k[6], x11 = k[7], x12 = ctr, x13 = n0, x14 = n1,
               x15 = n2;
    for (int r = 0; r < 10; ++r) {
      DPLORA_QR(x0, x4, x8, x12)
      DPLORA_QR(x1, x5, x9, x13)
      DPLORA_QR(x2, x6, x10, x14)
      DPLORA_QR(x3, x7, x11, x15)
      DPLORA_QR(x0, x5, x10, x15)
      DPLORA_QR(x1, x6, x11, x12)
      DPLORA_QR(x2, x7, x8, x13)
      DPLORA_QR(x3, x4, x9, x14)
    }
    uint32_t *o = out + 16 * i;
    store4x4(vaddq_u32(x0, c0), vaddq_u32(x1, c1), vaddq_u32(x2, c2), vaddq_u32(x3, c3), o);
    store4x4(vaddq_u32(x4, k[0]), vaddq_u32(x5, k[1]), vaddq_u32(x6, k[2]), vaddq_u32(x7, k[3]),
             o + 4);
    store4x4(vaddq_u32(x8, k[4]), vaddq_u32(x9, k[5]), vaddq_u32(x10, k[6]), vaddq_u32(x11, k[7]),
             o + 8);
    store4x4(vaddq_u32(x12, ctr), vaddq_u32(x13, n0), vaddq_u32(x14, n1), vaddq_u32(x15, n2),
             o + 12);
  }
  if (i < nb) blocks_scalar(s, b0 + uint64_t(i), nb - i, out + 16 * i);
}

#undef DPLORA_QR

}  // namespace chacha
}  // namespace dplora
