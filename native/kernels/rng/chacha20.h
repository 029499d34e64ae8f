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

// The keystream of the host's active dispatch table and the number of
// blocks it produces per pass (host builds only: defined in rng.cc, not part
// of the freestanding library).
void host_keystream(BlocksFn &blocks, int &batch);

// Sequential reader over the stream (integer only, no exceptions), used by
// the discrete Gaussian sampler: whole words or bits, most significant bit
// first.  It buffers `batch` blocks at a time, produced by `blocks` (a SIMD
// keystream on the host) or the scalar block function when `blocks` is
// null; the words it hands out do not depend on either.
class Reader {
 public:
#if defined(DPLORA_FREESTANDING)
  static constexpr int kMaxBatch = 1;  // 64 bytes of stack on a microcontroller
#else
  static constexpr int kMaxBatch = 16;
#endif
  // Reads words [pos, limit); asking for the word at `limit` sets the sticky
  // failed() flag and returns 0 (the default limit 2^64 - 1 is the end of
  // the space).  Callers must check failed() in every loop.
  Reader(const Stream &s, uint64_t pos, uint64_t limit = ~uint64_t(0), BlocksFn blocks = nullptr,
         int batch = 1)
      : s_(s),
        pos_(pos),
        limit_(limit),
        blocks_(blocks),
        batch_(batch < 1           ? 1
               : batch > kMaxBatch ? kMaxBatch
                                   : batch) {}
  bool failed() const {
    return failed_;
  }
  uint32_t word() {
    if (pos_ >= limit_) {
      failed_ = true;
      return 0;
    }
    if (pos_ - buf_pos_ >= uint64_t(16 * buf_blocks_)) refill();
    return buf_[pos_++ - buf_pos_];
  }
  // The next `n` (1..64) bits as an integer.
  uint64_t bits(int n) {
    if (n > bitcount_) {
      if (n > 32) return bits_slow(n);
      bitbuf_ = (bitbuf_ << 32) | word();  // bitcount_ < n <= 32: room for a word
      bitcount_ += 32;
    }
    bitcount_ -= n;
    return (bitbuf_ >> bitcount_) & ((uint64_t(1) << n) - 1);
  }
  uint32_t bit() {
    return uint32_t(bits(1));
  }
  // Position of the next word not yet (even partly) used.
  uint64_t position() const {
    return pos_;
  }

 private:
  void refill();
  uint64_t bits_slow(int n);
  const Stream &s_;
  uint64_t pos_;    // next word to hand out
  uint64_t limit_;  // first word not available
  BlocksFn blocks_;
  int batch_;
  uint64_t buf_pos_ = 0;  // stream position of buf_[0] (a block boundary)
  int buf_blocks_ = 0;    // blocks held in buf_
  uint32_t buf_[16 * kMaxBatch];
  uint64_t bitbuf_ = 0;  // words read for bits, the low `bitcount_` bits unused
  int bitcount_ = 0;
  bool failed_ = false;
};

}  // namespace chacha
}  // namespace dplora
