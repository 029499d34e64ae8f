// C API of the noise kernels: OS entropy, the bulk stream functions
// (split over the thread pool by element index, so the output never depends
// on the thread count); the ISA paths come from the dispatch table.
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "chacha20.h"
#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

#if defined(__linux__)
#include <sys/random.h>
#elif defined(__APPLE__)
#include <sys/random.h>
#include <unistd.h>
#endif

namespace dplora {
namespace {

// True when words [pos, pos + words) stay inside the 64-bit position space.
bool fits(uint64_t pos, uint64_t words) {
  return words <= ~uint64_t(0) - pos;
}

constexpr int64_t kChunkWords = 1024;  // stack buffer per worker step

inline double u53(uint32_t w0, uint32_t w1) {
  return double((uint64_t(w0 >> 5) << 26) | (w1 >> 6)) * 0x1p-53;
}

}  // namespace

namespace chacha {

void host_keystream(BlocksFn &blocks, int &batch) {
  // One read of the table: the SIMD paths fill 16 (AVX-512), 8 (AVX2) or 4
  // (NEON) blocks per pass; the scalar path one.
  const Kernels &k = kernels();
  blocks = k.chacha_blocks;
  batch = k.isa == DPLORA_ISA_AVX512 ? 16
          : k.isa == DPLORA_ISA_AVX2 ? 8
          : k.isa == DPLORA_ISA_NEON ? 4
                                     : 1;
}

}  // namespace chacha
}  // namespace dplora

using dplora::chacha::Stream;

extern "C" {

int dplora_os_entropy(uint8_t *buf, size_t n) {
  if (buf == nullptr && n > 0) return DPLORA_EINVAL;
#if defined(__linux__)
  size_t done = 0;
  while (done < n) {
    ssize_t r = getrandom(buf + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return DPLORA_EENTROPY;
    }
    done += size_t(r);
  }
  return DPLORA_OK;
#elif defined(__APPLE__)
  size_t done = 0;
  while (done < n) {
    size_t take = n - done < 256 ? n - done : 256;  // getentropy's limit
    if (getentropy(buf + done, take) != 0) return DPLORA_EENTROPY;
    done += take;
  }
  return DPLORA_OK;
#else
  (void)buf;
  (void)n;
  return DPLORA_EENTROPY;
#endif
}

int dplora_rng_fill_u32(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                        uint32_t *out, int64_t n) {
  if (key == nullptr || nonce == nullptr || n < 0 || (out == nullptr && n > 0))
    return DPLORA_EINVAL;
  if (!dplora::fits(position, uint64_t(n))) return DPLORA_EOVERFLOW;
  const Stream s = dplora::chacha::make_stream(key, nonce);
  const dplora::chacha::BlocksFn blocks = dplora::kernels().chacha_blocks;
  dplora::parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    dplora::chacha::words(s, position + uint64_t(b), out + b, e - b, blocks);
  });
  return DPLORA_OK;
}

int dplora_rng_uniform_f64(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                           double *out, int64_t n) {
  if (key == nullptr || nonce == nullptr || n < 0 || (out == nullptr && n > 0))
    return DPLORA_EINVAL;
  if (n > (int64_t(1) << 62) || !dplora::fits(position, 2 * uint64_t(n))) return DPLORA_EOVERFLOW;
  const Stream s = dplora::chacha::make_stream(key, nonce);
  const dplora::chacha::BlocksFn blocks = dplora::kernels().chacha_blocks;
  dplora::parallel_for(n, 1 << 13, [&](int64_t b, int64_t e) {
    uint32_t buf[dplora::kChunkWords];
    for (int64_t i = b; i < e;) {
      int64_t cnt = e - i < dplora::kChunkWords / 2 ? e - i : dplora::kChunkWords / 2;
      dplora::chacha::words(s, position + 2 * uint64_t(i), buf, 2 * cnt, blocks);
      for (int64_t j = 0; j < cnt; ++j) out[i + j] = dplora::u53(buf[2 * j], buf[2 * j + 1]);
      i += cnt;
    }
  });
  return DPLORA_OK;
}

uint64_t dplora_rng_gaussian_f32_words(int64_t n) {
  return n <= 0 ? 0 : 16 * ((uint64_t(n) + 15) / 16);
}
uint64_t dplora_rng_gaussian_f64_words(int64_t n) {
  return n <= 0 ? 0 : 4 * ((uint64_t(n) + 1) / 2);
}

int dplora_rng_gaussian_f32(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                            float *out, int64_t n, double std_dev, int add) {
  if (key == nullptr || nonce == nullptr || n < 0 || (out == nullptr && n > 0))
    return DPLORA_EINVAL;
  if (!std::isfinite(std_dev) || std_dev < 0 || std_dev > double(FLT_MAX)) return DPLORA_EINVAL;
  if (n > (int64_t(1) << 58) || !dplora::fits(position, dplora_rng_gaussian_f32_words(n))) {
    return DPLORA_EOVERFLOW;
  }
  const float stdf = float(std_dev);
  const Stream s = dplora::chacha::make_stream(key, nonce);
  const dplora::Kernels &K = dplora::kernels();  // one table for the whole call
  const dplora::chacha::BlocksFn blocks = K.chacha_blocks;
  const dplora::gauss::GroupsFn groups = K.gauss_groups;
  const int64_t ngroups = (n + 15) / 16;
  const int64_t full = n / 16;  // groups entirely inside out
  constexpr int64_t kGroups = dplora::kChunkWords / 16;
  dplora::parallel_for(ngroups, 512, [&](int64_t gb, int64_t ge) {
    alignas(64) uint32_t buf[dplora::kChunkWords];
    for (int64_t g = gb; g < ge;) {
      const int64_t cnt = ge - g < kGroups ? ge - g : kGroups;
      dplora::chacha::words(s, position + 16 * uint64_t(g), buf, 16 * cnt, blocks);
      const int64_t nfull = (g + cnt <= full) ? cnt : full - g;
      if (nfull > 0) groups(buf, nfull, out + 16 * g, stdf, add);
      if (nfull < cnt) {  // the last, partial group
        const int64_t base = 16 * (g + nfull), rest = n - base;
        alignas(64) float tmp[16] = {0};
        if (add) std::memcpy(tmp, out + base, size_t(rest) * sizeof(float));
        groups(buf + 16 * nfull, 1, tmp, stdf, add);
        std::memcpy(out + base, tmp, size_t(rest) * sizeof(float));
      }
      g += cnt;
    }
  });
  return DPLORA_OK;
}

int dplora_rng_gaussian_f64(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                            double *out, int64_t n, double std_dev, int add) {
  if (key == nullptr || nonce == nullptr || n < 0 || (out == nullptr && n > 0))
    return DPLORA_EINVAL;
  if (!std::isfinite(std_dev) || std_dev < 0) return DPLORA_EINVAL;
  if (n > (int64_t(1) << 58) || !dplora::fits(position, dplora_rng_gaussian_f64_words(n))) {
    return DPLORA_EOVERFLOW;
  }
  const Stream s = dplora::chacha::make_stream(key, nonce);
  const dplora::chacha::BlocksFn blocks = dplora::kernels().chacha_blocks;
  const int64_t npairs = (n + 1) / 2;
  constexpr int64_t kPairs = dplora::kChunkWords / 4;
  const double two_pi = 6.283185307179586476925286766559;
  dplora::parallel_for(npairs, 2048, [&](int64_t pb, int64_t pe) {
    uint32_t buf[dplora::kChunkWords];
    for (int64_t p = pb; p < pe;) {
      const int64_t cnt = pe - p < kPairs ? pe - p : kPairs;
      dplora::chacha::words(s, position + 4 * uint64_t(p), buf, 4 * cnt, blocks);
      for (int64_t j = 0; j < cnt; ++j) {
        const uint32_t *w = buf + 4 * j;
        const double u1 = 1.0 - dplora::u53(w[0], w[1]);  // (0, 1]
        const double th = two_pi * dplora::u53(w[2], w[3]);
        const double r = std::sqrt(-2.0 * std::log(u1)) * std_dev;
        const int64_t i = 2 * (p + j);
        const double zc = r * std::cos(th);
        if (add)
          out[i] += zc;
        else
          out[i] = zc;
        if (i + 1 < n) {
          const double zs = r * std::sin(th);
          if (add)
            out[i + 1] += zs;
          else
            out[i + 1] = zs;
        }
      }
      p += cnt;
    }
  });
  return DPLORA_OK;
}

}  // extern "C"
