// ChaCha20 keystream, 8 blocks at a time with AVX2 (one block per 32-bit
// lane).  Produces exactly the words of chacha::blocks_scalar.
#include <immintrin.h>

#include "chacha20.h"
#include "chacha20_simd.h"

namespace dplora {
namespace chacha {
namespace {

template <int N>
inline __m256i rotl(__m256i x) {
  return _mm256_or_si256(_mm256_slli_epi32(x, N), _mm256_srli_epi32(x, 32 - N));
}
inline __m256i rotl16(__m256i x) {
  const __m256i m = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0,
                                     1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  return _mm256_shuffle_epi8(x, m);
}
inline __m256i rotl8(__m256i x) {
  const __m256i m = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1,
                                     2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
  return _mm256_shuffle_epi8(x, m);
}

#define DPLORA_QR(a, b, c, d)           \
  a = _mm256_add_epi32(a, b);           \
  d = rotl16(_mm256_xor_si256(d, a));   \
  c = _mm256_add_epi32(c, d);           \
  b = rotl<12>(_mm256_xor_si256(b, c)); \
  a = _mm256_add_epi32(a, b);           \
  d = rotl8(_mm256_xor_si256(d, a));    \
  c = _mm256_add_epi32(c, d);           \
  b = rotl<7>(_mm256_xor_si256(b, c));

}  // namespace

void blocks_avx2(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out) {
  const __m256i c0 = _mm256_set1_epi32(0x61707865), c1 = _mm256_set1_epi32(0x3320646e),
                c2 = _mm256_set1_epi32(0x79622d32), c3 = _mm256_set1_epi32(0x6b206574);
  __m256i k[8];
  for (int i = 0; i < 8; ++i) k[i] = _mm256_set1_epi32(int(s.key[i]));
  const __m256i n1 = _mm256_set1_epi32(int(s.nonce[1])), n2 = _mm256_set1_epi32(int(s.nonce[2]));
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    alignas(32) uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; ++j) {
      uint64_t b = b0 + uint64_t(i + j);
      lo[j] = uint32_t(b);
      hi[j] = s.nonce[0] + uint32_t(b >> 32);
    }
    const __m256i ctr = _mm256_load_si256(reinterpret_cast<const __m256i *>(lo));
    const __m256i n0 = _mm256_load_si256(reinterpret_cast<const __m256i *>(hi));
    __m256i x0 = c0, x1 = c1, x2 = c2, x3 = c3, x4 = k[0], x5 = k[1], x6 = k[2], x7 = k[3],
            x8 = k[4], x9 = k[5], x10 = k[6], x11 = k[7], x12 = ctr, x13 = n0, x14 = n1, x15 = n2;
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
    const __m256i lo8[8] = {_mm256_add_epi32(x0, c0),   _mm256_add_epi32(x1, c1),
                            _mm256_add_epi32(x2, c2),   _mm256_add_epi32(x3, c3),
                            _mm256_add_epi32(x4, k[0]), _mm256_add_epi32(x5, k[1]),
                            _mm256_add_epi32(x6, k[2]), _mm256_add_epi32(x7, k[3])};
    const __m256i hi8[8] = {_mm256_add_epi32(x8, k[4]),  _mm256_add_epi32(x9, k[5]),
                            _mm256_add_epi32(x10, k[6]), _mm256_add_epi32(x11, k[7]),
                            _mm256_add_epi32(x12, ctr),  _mm256_add_epi32(x13, n0),
                            _mm256_add_epi32(x14, n1),   _mm256_add_epi32(x15, n2)};
    store8x8(lo8, out + 16 * i);
    store8x8(hi8, out + 16 * i + 8);
  }
  if (i < nb) blocks_scalar(s, b0 + uint64_t(i), nb - i, out + 16 * i);
}

#undef DPLORA_QR

}  // namespace chacha
}  // namespace dplora
