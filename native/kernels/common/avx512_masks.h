// Lane masks for the AVX-512 kernels: the first n lanes of a 16-float or
// 8-double vector (none for n <= 0, all for n at or above the width).
// Include only from translation units built with AVX-512 flags.  The helpers
// are static so that each such unit keeps its own copy: an inline function
// shared across units built with different ISA flags could be resolved to one
// compiled for a wider ISA than the caller's.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace dplora {

static inline __mmask16 mask16(int64_t n) {
  return n <= 0    ? static_cast<__mmask16>(0)
         : n >= 16 ? static_cast<__mmask16>(0xFFFF)
                   : static_cast<__mmask16>((1u << n) - 1u);
}

static inline __mmask8 mask8(int64_t n) {
  return n <= 0   ? static_cast<__mmask8>(0)
         : n >= 8 ? static_cast<__mmask8>(0xFF)
                  : static_cast<__mmask8>((1u << n) - 1u);
}

}  // namespace dplora
