// ChaCha20 keystream, 16 blocks at a time with AVX-512F (one block per
// lane); the two 8-block halves are transposed with the AVX2 helper.
// Integer SIMD only: scripts/fp-scan.js --int-simd passes this unit
// (test/fp_scan_int_simd.test.ts).
// Produces exactly the words of chacha::blocks_scalar.
// GCC 12 warns (falsely) inside avx512fintrin.h, whose intrinsics start
// from _mm512_undefined_*; the CMake build treats warnings as errors.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "chacha20.h"
#include "chacha20_simd.h"

namespace dplora {
namespace chacha {

#define DPLORA_QR16(a, b, c, d)                     \
  a = _mm512_add_epi32(a, b);                       \
  d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 16); \
  c = _mm512_add_epi32(c, d);                       \
  b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 12); \
  a = _mm512_add_epi32(a, b);                       \
  d = _mm512_rol_epi32(_mm512_xor_si512(d, a), 8);  \
  c = _mm512_add_epi32(c, d);                       \
  b = _mm512_rol_epi32(_mm512_xor_si512(b, c), 7);

void blocks_avx512(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out) {
  const __m512i c0 = _mm512_set1_epi32(0x61707865), c1 = _mm512_set1_epi32(0x3320646e),
                c2 = _mm512_set1_epi32(0x79622d32), c3 = _mm512_set1_epi32(0x6b206574);
  __m512i k[8];
  for (int i = 0; i < 8; ++i) k[i] = _mm512_set1_epi32(int(s.key[i]));
  const __m512i n1 = _mm512_set1_epi32(int(s.nonce[1])), n2 = _mm512_set1_epi32(int(s.nonce[2]));
  int64_t i = 0;
  for (; i + 16 <= nb; i += 16) {
    alignas(64) uint32_t lo[16], hi[16];
    for (int j = 0; j < 16; ++j) {
      uint64_t b = b0 + uint64_t(i + j);
      lo[j] = uint32_t(b);
      hi[j] = s.nonce[0] + uint32_t(b >> 32);
    }
    const __m512i ctr = _mm512_load_si512(lo);
    const __m512i n0 = _mm512_load_si512(hi);
    __m512i x[16] = {c0,   c1,   c2,   c3,   k[0], k[1], k[2], k[3],
                     k[4], k[5], k[6], k[7], ctr,  n0,   n1,   n2};
    for (int r = 0; r < 10; ++r) {
      DPLORA_QR16(x[0], x[4], x[8], x[12])
      DPLORA_QR16(x[1], x[5], x[9], x[13])
      DPLORA_QR16(x[2], x[6], x[10], x[14])
      DPLORA_QR16(x[3], x[7], x[11], x[15])
      DPLORA_QR16(x[0], x[5], x[10], x[15])
      DPLORA_QR16(x[1], x[6], x[11], x[12])
      DPLORA_QR16(x[2], x[7], x[8], x[13])
      DPLORA_QR16(x[3], x[4], x[9], x[14])
    }
    const __m512i in[16] = {c0,   c1,   c2,   c3,   k[0], k[1], k[2], k[3],
                            k[4], k[5], k[6], k[7], ctr,  n0,   n1,   n2};
    // Through an aligned buffer with integer stores and loads: transposing
    // straight from the 16 state registers makes GCC spill and reload them
    // with FP-domain moves (vmovapd), which the float scan rejects.
    alignas(64) uint32_t st[16 * 16];  // st[16 w + j]: word w of block j
    for (int w = 0; w < 16; ++w) {
      _mm512_store_si512(reinterpret_cast<__m512i *>(st + 16 * w), _mm512_add_epi32(x[w], in[w]));
    }
    // Blocks 0-7 are the low 8 lanes of every word vector, 8-15 the high.
    for (int half = 0; half < 2; ++half) {
      for (int q = 0; q < 2; ++q) {  // words 0-7, then 8-15
        __m256i a[8];
        for (int w = 0; w < 8; ++w) {
          a[w] = _mm256_load_si256(
              reinterpret_cast<const __m256i *>(st + 16 * (8 * q + w) + 8 * half));
        }
        store8x8(a, out + 16 * (i + 8 * half) + 8 * q);
      }
    }
  }
  if (i < nb) blocks_avx2(s, b0 + uint64_t(i), nb - i, out + 16 * i);
}

#undef DPLORA_QR16

}  // namespace chacha
}  // namespace dplora
