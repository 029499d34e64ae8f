// Per-sample gradients for floating-point-sound clipping (see dplora.h):
// materialize each sample's gradient as the float tensor that is summed, take
// its squared norm in double, and add the clipped tensors in double.  Every
// result is independent of the thread count (each output element is reduced
// by one thread in a fixed order).
#include <algorithm>
#include <cmath>
#include <vector>

#include "dplora.h"
#include "thread_pool.h"

namespace {

bool bad_dims(int64_t a, int64_t b, int64_t *prod) {
  return a < 0 || b < 0 || __builtin_mul_overflow(a, b, prod);
}

bool kept(float f) {
  return std::isfinite(f) && f != 0.0f;
}

// Items per chunk so that each chunk has at least ~2^17 multiply-adds: small
// calls (LoRA at one token per sample) run on the calling thread alone.
int64_t grain_for(int64_t work_per_item) {
  const int64_t w = work_per_item < 1 ? 1 : work_per_item;
  return (int64_t{1} << 17) / w + 1;
}

}  // namespace

extern "C" int dplora_per_sample_grads(const float *a, const float *g, int64_t batch, int64_t seq,
                                       int64_t in_dim, int64_t out_dim, float alpha, float *out) {
  int64_t bt = 0, x = 0, pd = 0;
  if (bad_dims(batch, seq, &bt) || bad_dims(bt, in_dim, &x) || bad_dims(bt, out_dim, &x) ||
      bad_dims(in_dim, out_dim, &pd) || bad_dims(batch, pd, &x)) {
    return DPLORA_EINVAL;
  }
  if (batch == 0 || pd == 0) return DPLORA_OK;
  if (out == nullptr || (seq > 0 && (a == nullptr || g == nullptr))) return DPLORA_EINVAL;
  for (int64_t i = 0; i < batch; ++i) {
    float *o = out + i * pd;
    if (seq == 0) {
      for (int64_t j = 0; j < pd; ++j) o[j] = 0.0f;
      continue;
    }
    // G_i[p, d] = alpha * g_i^T a_i (g_i: seq x p, a_i: seq x d).
    const int rc = dplora_sgemm(1, 0, out_dim, in_dim, seq, alpha, g + i * seq * out_dim, out_dim,
                                a + i * seq * in_dim, in_dim, 0.0f, o, in_dim);
    if (rc != DPLORA_OK) return rc;
  }
  return DPLORA_OK;
}

extern "C" int dplora_rows_sumsq_f64(const float *x, int64_t rows, int64_t n, double *out) {
  int64_t total = 0;
  if (bad_dims(rows, n, &total)) return DPLORA_EINVAL;
  if (rows == 0) return DPLORA_OK;
  if (out == nullptr || (total > 0 && x == nullptr)) return DPLORA_EINVAL;
  dplora::parallel_for(rows, grain_for(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float *row = x + r * n;
      // Four partial sums (exact squares of floats in double), fixed order.
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t j = 0;
      for (; j + 4 <= n; j += 4) {
        const double v0 = row[j], v1 = row[j + 1], v2 = row[j + 2], v3 = row[j + 3];
        s0 += v0 * v0;
        s1 += v1 * v1;
        s2 += v2 * v2;
        s3 += v3 * v3;
      }
      for (; j < n; ++j) s0 += static_cast<double>(row[j]) * row[j];
      out[r] = (s0 + s1) + (s2 + s3);
    }
  });
  return DPLORA_OK;
}

extern "C" int dplora_rows_scaled_sum_f64(const float *x, int64_t rows, int64_t n,
                                          const float *factors, double *out) {
  int64_t total = 0;
  if (bad_dims(rows, n, &total)) return DPLORA_EINVAL;
  if (rows == 0 || n == 0) return DPLORA_OK;
  if (out == nullptr || x == nullptr || factors == nullptr) return DPLORA_EINVAL;
  dplora::parallel_for(n, std::max<int64_t>(256, grain_for(rows)), [&](int64_t j0, int64_t j1) {
    for (int64_t r = 0; r < rows; ++r) {
      if (!kept(factors[r])) continue;
      const double f = factors[r];
      const float *row = x + r * n;
      for (int64_t j = j0; j < j1; ++j) out[j] += f * static_cast<double>(row[j]);
    }
  });
  return DPLORA_OK;
}

extern "C" int dplora_outer_scaled_sum_f64(const float *a, const float *g, int64_t rows,
                                           int64_t in_dim, int64_t out_dim, const float *factors,
                                           double scale, double *out) {
  int64_t x = 0;
  if (bad_dims(rows, in_dim, &x) || bad_dims(rows, out_dim, &x) || bad_dims(in_dim, out_dim, &x))
    return DPLORA_EINVAL;
  if (!std::isfinite(scale)) return DPLORA_EINVAL;
  if (rows == 0 || in_dim == 0 || out_dim == 0) return DPLORA_OK;
  if (out == nullptr || a == nullptr || g == nullptr || factors == nullptr) return DPLORA_EINVAL;
  if (in_dim < out_dim) {
    // Narrow input (LoRA's B: in_dim = r): one column k of out at a time, the
    // inner loop running along g's rows (contiguous), into a double buffer.
    dplora::parallel_for(in_dim, grain_for(rows * out_dim), [&](int64_t k0, int64_t k1) {
      std::vector<double> col(static_cast<size_t>(out_dim));
      for (int64_t k = k0; k < k1; ++k) {
        std::fill(col.begin(), col.end(), 0.0);
        for (int64_t r = 0; r < rows; ++r) {
          if (!kept(factors[r])) continue;
          const double c = (scale * factors[r]) * a[r * in_dim + k];
          const float *gr = g + r * out_dim;
          for (int64_t j = 0; j < out_dim; ++j) col[j] += c * static_cast<double>(gr[j]);
        }
        for (int64_t j = 0; j < out_dim; ++j) out[j * in_dim + k] += col[j];
      }
    });
    return DPLORA_OK;
  }
  dplora::parallel_for(out_dim, grain_for(rows * in_dim), [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double *o = out + j * in_dim;
      for (int64_t r = 0; r < rows; ++r) {
        if (!kept(factors[r])) continue;
        const double c = (scale * factors[r]) * g[r * out_dim + j];
        const float *ar = a + r * in_dim;
        for (int64_t k = 0; k < in_dim; ++k) o[k] += c * static_cast<double>(ar[k]);
      }
    }
  });
  return DPLORA_OK;
}
