// Integer helpers shared by the integer-only translation units.
#pragma once
#include <stdint.h>

namespace dplora {
namespace intmath {

// floor(sqrt(n)) for an unsigned integer type U (uint64_t or unsigned
// __int128), by the bit-by-bit method: exact, no floating point.
template <typename U>
inline U isqrt_floor(U n) {
  U r = 0;
  U bit = U(1) << (sizeof(U) * 8 - 2);
  while (bit > n) bit >>= 2;
  while (bit != 0) {
    if (n >= r + bit) {
      n -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
    bit >>= 2;
  }
  return r;
}

}  // namespace intmath
}  // namespace dplora
