// The float side of the fixed-point mode: the quantizer and dequantizers
// (the only floating-point code of the mode, kept apart from the float-free
// units; the integer entry points live in fixed/api.cc and
// fixed/api_host.cc).
#include "fixed_point.h"

#include <cmath>

#include "dplora.h"

extern "C" {

int dplora_fixed_quantize(const float *x, int64_t n, int frac_bits, int32_t *out,
                          dplora_quantize_stats *stats) {
  if (n < 0 || ((x == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, frac_bits);
  const double qmax = double(DPLORA_FIXED_QMAX);
  int64_t sat = 0, nan = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = double(x[i]);
    if (std::isnan(v)) {
      out[i] = 0;
      ++nan;
      continue;
    }
    // x * 2^f is exact in double (float input, power-of-two scale);
    // nearbyint rounds half to even in the default rounding mode.
    const double r = std::nearbyint(v * scale);
    if (r > qmax) {
      out[i] = DPLORA_FIXED_QMAX;
      ++sat;
    } else if (r < -qmax) {
      out[i] = -DPLORA_FIXED_QMAX;
      ++sat;
    } else {
      out[i] = int32_t(r);
    }
  }
  if (stats != nullptr) {
    stats->saturated = sat;
    stats->nan = nan;
  }
  return DPLORA_OK;
}

int dplora_fixed_dequantize_i32(const int32_t *q, int64_t n, int frac_bits, float *out) {
  if (n < 0 || ((q == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, -frac_bits);
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(q[i]) * scale);
  return DPLORA_OK;
}

int dplora_fixed_dequantize_i64(const int64_t *q, int64_t n, int frac_bits, double *out) {
  if (n < 0 || ((q == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, -frac_bits);
  for (int64_t i = 0; i < n; ++i) out[i] = double(q[i]) * scale;
  return DPLORA_OK;
}

}  // extern "C"
