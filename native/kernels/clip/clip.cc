// Clipping factors from per-sample squared norms, and in-place clipping of
// materialized per-sample gradient rows.
#include <cmath>

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

namespace {

// min(1, C / (sqrt(n2) + 1e-6)) rounded toward zero to float, so that
// factor * norm never exceeds C through rounding of the factor; 0 for a
// NaN, infinite or negative n2.
float clip_factor(double n2, double max_norm, bool *clipped, bool *nonfinite) {
  *clipped = false;
  *nonfinite = false;
  if (!std::isfinite(n2) || n2 < 0) {
    *nonfinite = true;
    return 0.0f;
  }
  const double f = max_norm / (std::sqrt(n2) + 1e-6);
  if (f >= 1.0) return 1.0f;
  *clipped = true;
  float ff = static_cast<float>(f);
  if (static_cast<double>(ff) > f) ff = std::nextafter(ff, 0.0f);
  return ff;
}

bool valid_max_norm(double c) {
  return std::isfinite(c) && c > 0;
}

}  // namespace

extern "C" int dplora_clip_factors(const double *norms_sq, int64_t batch, double max_norm,
                                   float *factors, dplora_clip_stats *stats) {
  if (batch < 0 || !valid_max_norm(max_norm)) return DPLORA_EINVAL;
  if (batch > 0 && (norms_sq == nullptr || factors == nullptr)) return DPLORA_EINVAL;
  dplora_clip_stats s{0, 0};
  for (int64_t i = 0; i < batch; ++i) {
    bool c, nf;
    factors[i] = clip_factor(norms_sq[i], max_norm, &c, &nf);
    s.clipped += c;
    s.nonfinite += nf;
  }
  if (stats) *stats = s;
  return DPLORA_OK;
}

extern "C" int dplora_clip_rows(float *x, int64_t batch, int64_t dim, double max_norm,
                                float *factors, dplora_clip_stats *stats) {
  if (batch < 0 || dim < 0 || !valid_max_norm(max_norm)) return DPLORA_EINVAL;
  int64_t total = 0;
  if (__builtin_mul_overflow(batch, dim, &total)) return DPLORA_EINVAL;
  if (total > 0 && x == nullptr) return DPLORA_EINVAL;
  const auto &K = dplora::kernels();
  dplora_clip_stats s{0, 0};
  for (int64_t i = 0; i < batch; ++i) {
    float *row = x + i * dim;
    bool c, nf;
    const float f = clip_factor(dim > 0 ? K.sumsq(row, dim) : 0.0, max_norm, &c, &nf);
    if (f != 1.0f) {
      // A non-finite row is zeroed outright (0 * Inf would be NaN).
      for (int64_t j = 0; j < dim; ++j) row[j] = nf ? 0.0f : row[j] * f;
    }
    if (factors) factors[i] = f;
    s.clipped += c;
    s.nonfinite += nf;
  }
  if (stats) *stats = s;
  return DPLORA_OK;
}
