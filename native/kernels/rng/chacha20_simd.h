// AVX2 helper shared by the AVX2 and AVX-512 keystreams.  Internal linkage
// on purpose: each translation unit gets its own copy compiled for its ISA.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace dplora {
namespace chacha {
namespace {

// Transposes 8 vectors of 8 words (x[w] lane j = word w of block j) so that
// out + 16 * j receives words 0..7 of block j.
inline void store8x8(const __m256i x[8], uint32_t *out) {
  __m256i t0 = _mm256_unpacklo_epi32(x[0], x[1]);
  __m256i t1 = _mm256_unpackhi_epi32(x[0], x[1]);
  __m256i t2 = _mm256_unpacklo_epi32(x[2], x[3]);
  __m256i t3 = _mm256_unpackhi_epi32(x[2], x[3]);
  __m256i t4 = _mm256_unpacklo_epi32(x[4], x[5]);
  __m256i t5 = _mm256_unpackhi_epi32(x[4], x[5]);
  __m256i t6 = _mm256_unpacklo_epi32(x[6], x[7]);
  __m256i t7 = _mm256_unpackhi_epi32(x[6], x[7]);
  __m256i u0 = _mm256_unpacklo_epi64(t0, t2);
  __m256i u1 = _mm256_unpackhi_epi64(t0, t2);
  __m256i u2 = _mm256_unpacklo_epi64(t1, t3);
  __m256i u3 = _mm256_unpackhi_epi64(t1, t3);
  __m256i u4 = _mm256_unpacklo_epi64(t4, t6);
  __m256i u5 = _mm256_unpackhi_epi64(t4, t6);
  __m256i u6 = _mm256_unpacklo_epi64(t5, t7);
  __m256i u7 = _mm256_unpackhi_epi64(t5, t7);
  // u0: words 0-3 of blocks 0 (low 128) and 4 (high 128); u4: words 4-7 likewise.
  const __m256i r[8] = {
      _mm256_permute2x128_si256(u0, u4, 0x20), _mm256_permute2x128_si256(u1, u5, 0x20),
      _mm256_permute2x128_si256(u2, u6, 0x20), _mm256_permute2x128_si256(u3, u7, 0x20),
      _mm256_permute2x128_si256(u0, u4, 0x31), _mm256_permute2x128_si256(u1, u5, 0x31),
      _mm256_permute2x128_si256(u2, u6, 0x31), _mm256_permute2x128_si256(u3, u7, 0x31)};
  for (int j = 0; j < 8; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + 16 * j), r[j]);
}

}  // namespace
}  // namespace chacha
}  // namespace dplora
