// ChaCha20 block function (RFC 8439 section 2.3) and the scalar keystream.
// Integer-only translation unit: compiled with -mgeneral-regs-only because
// the fixed-point mode draws its noise from here.
#include "chacha20.h"

#include "dplora.h"

namespace dplora {
namespace chacha {
namespace {

inline uint32_t rotl(uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

inline void quarter(uint32_t *x, int a, int b, int c, int d) {
  x[a] += x[b];
  x[d] ^= x[a];
  x[d] = rotl(x[d], 16);
  x[c] += x[d];
  x[b] ^= x[c];
  x[b] = rotl(x[b], 12);
  x[a] += x[b];
  x[d] ^= x[a];
  x[d] = rotl(x[d], 8);
  x[c] += x[d];
  x[b] ^= x[c];
  x[b] = rotl(x[b], 7);
}

inline uint32_t load_le(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// RFC 8439 state: constants, key, counter, nonce.
void core(const uint32_t key[8], uint32_t counter, uint32_t n0, uint32_t n1, uint32_t n2,
          uint32_t out[16]) {
  uint32_t in[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u, key[0], key[1],
                     key[2],      key[3],      key[4],      key[5],      key[6], key[7],
                     counter,     n0,          n1,          n2};
  uint32_t x[16];
  for (int i = 0; i < 16; ++i) x[i] = in[i];
  for (int r = 0; r < 10; ++r) {
    quarter(x, 0, 4, 8, 12);
    quarter(x, 1, 5, 9, 13);
    quarter(x, 2, 6, 10, 14);
    quarter(x, 3, 7, 11, 15);
    quarter(x, 0, 5, 10, 15);
    quarter(x, 1, 6, 11, 12);
    quarter(x, 2, 7, 8, 13);
    quarter(x, 3, 4, 9, 14);
  }
  for (int i = 0; i < 16; ++i) out[i] = x[i] + in[i];
}

}  // namespace

Stream make_stream(const uint8_t key[32], const uint8_t nonce[12]) {
  Stream s;
  for (int i = 0; i < 8; ++i) s.key[i] = load_le(key + 4 * i);
  for (int i = 0; i < 3; ++i) s.nonce[i] = load_le(nonce + 4 * i);
  return s;
}

void block_words(const Stream &s, uint64_t b, uint32_t out[16]) {
  core(s.key, uint32_t(b), s.nonce[0] + uint32_t(b >> 32), s.nonce[1], s.nonce[2], out);
}

void blocks_scalar(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out) {
  for (int64_t i = 0; i < nb; ++i) block_words(s, b0 + uint64_t(i), out + 16 * i);
}

void words(const Stream &s, uint64_t pos, uint32_t *out, int64_t n, BlocksFn blocks) {
  if (n <= 0) return;
  uint32_t tmp[16];
  uint64_t b = pos >> 4;
  int off = int(pos & 15);
  if (off != 0) {  // partial first block
    block_words(s, b, tmp);
    int take = 16 - off;
    if (int64_t(take) > n) take = int(n);
    for (int i = 0; i < take; ++i) out[i] = tmp[off + i];
    out += take;
    n -= take;
    ++b;
  }
  int64_t full = n >> 4;
  if (full > 0) {
    blocks(s, b, full, out);
    out += 16 * full;
    n -= 16 * full;
    b += uint64_t(full);
  }
  if (n > 0) {  // partial last block
    block_words(s, b, tmp);
    for (int64_t i = 0; i < n; ++i) out[i] = tmp[i];
  }
}

void Reader::refill() {
  // From the block holding pos_: `batch_` blocks, fewer where the 64-bit
  // block counter would wrap (the words past the end of the space are never
  // handed out).
  const uint64_t b = pos_ >> 4;
  const uint64_t room = (~uint64_t(0) >> 4) - b + 1;  // blocks up to the end of the space
  const int nb = uint64_t(batch_) < room ? batch_ : int(room);
  if (blocks_ != nullptr && nb > 1) {
    blocks_(s_, b, nb, buf_);
  } else {
    for (int i = 0; i < nb; ++i) block_words(s_, b + uint64_t(i), buf_ + 16 * i);
  }
  buf_pos_ = b << 4;
  buf_blocks_ = nb;
}

uint64_t Reader::bits_slow(int n) {
  // 33..64 bits: the high part, then the low 32 (each through bits()).
  const uint64_t hi = bits(n - 32);
  return (hi << 32) | bits(32);
}

}  // namespace chacha
}  // namespace dplora

extern "C" int dplora_chacha20_block(const uint8_t key[32], uint32_t counter,
                                     const uint8_t nonce[12], uint8_t out[64]) {
  if (key == nullptr || nonce == nullptr || out == nullptr) return DPLORA_EINVAL;
  dplora::chacha::Stream s = dplora::chacha::make_stream(key, nonce);
  uint32_t w[16];
  dplora::chacha::core(s.key, counter, s.nonce[0], s.nonce[1], s.nonce[2], w);
  for (int i = 0; i < 16; ++i) {
    out[4 * i] = uint8_t(w[i]);
    out[4 * i + 1] = uint8_t(w[i] >> 8);
    out[4 * i + 2] = uint8_t(w[i] >> 16);
    out[4 * i + 3] = uint8_t(w[i] >> 24);
  }
  return DPLORA_OK;
}
