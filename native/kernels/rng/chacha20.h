// ChaCha20 stream internals shared by the scalar (integer-only) and SIMD
// keystream generators.  See the "rng" section of dplora.h for the stream
// layout (64-bit position, block counter extended into nonce word 0).
#pragma once
#include <stdint.h>

namespace dplora {
namespace chacha {

// A keyed stream: key and nonce as little-endian 32-bit words.
struct Stream {
  uint32_t key[8];
  uint32_t nonce[3];
};

Stream make_stream(const uint8_t key[32], const uint8_t nonce[12]);

// The 16 output words of block b of the stream.
void block_words(const Stream &s, uint64_t b, uint32_t out[16]);

// Full blocks [b0, b0 + nb) into out (16 * nb words), one function per ISA.
// All produce the same words.
using BlocksFn = void (*)(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out);
void blocks_scalar(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out);
void blocks_avx2(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out);
void blocks_avx512(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out);
void blocks_neon(const Stream &s, uint64_t b0, int64_t nb, uint32_t *out);

// Words [pos, pos + n) of the stream into out using `blocks` for whole
// blocks and the scalar block function for partial ones (single thread).
void words(const Stream &s, uint64_t pos, uint32_t *out, int64_t n, BlocksFn blocks);

// Sequential reader over the stream (integer only, no exceptions), used by
// the discrete Gaussian sampler: whole words or bits, most significant bit
// first.
class Reader {
 public:
  // Reads words [pos, limit); asking for the word at `limit` sets the sticky
  // failed() flag and returns 0 (the default limit 2^64 - 1 is the end of
  // the space).  Callers must check failed() in every loop.
  Reader(const Stream &s, uint64_t pos, uint64_t limit = ~uint64_t(0))
      : s_(s), pos_(pos), limit_(limit) {}
  bool failed() const { return failed_; }
  uint32_t word() {
    if (pos_ >= limit_) {
      failed_ = true;
      return 0;
    }
    if (buf_at_ >= 16) refill();
    ++pos_;
    return buf_[buf_at_++];
  }
  // The next `n` (1..64) bits as an integer.
  uint64_t bits(int n) {
    if (n <= bitcount_) {  // fast path: inside the current word
      bitcount_ -= n;
      return (uint64_t(bitbuf_) >> bitcount_) & ((uint64_t(1) << n) - 1);
    }
    return bits_slow(n);
  }
  uint32_t bit() {
    if (bitcount_ == 0) {
      bitbuf_ = word();
      bitcount_ = 32;
    }
    --bitcount_;
    return (bitbuf_ >> bitcount_) & 1u;
  }
  // Position of the next word not yet (even partly) used.
  uint64_t position() const { return pos_; }

 private:
  void refill();
  uint64_t bits_slow(int n);
  const Stream &s_;
  uint64_t pos_;    // next word to hand out
  uint64_t limit_;  // first word not available
  uint32_t buf_[16];
  int buf_at_ = 16;      // index in buf_ of the word at pos_
  uint32_t bitbuf_ = 0;  // current word, its low `bitcount_` bits unused
  int bitcount_ = 0;
  bool failed_ = false;
};

}  // namespace chacha
}  // namespace dplora
