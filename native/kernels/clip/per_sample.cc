// Per-sample gradients for floating-point-sound clipping (see dplora.h):
// materialize each sample's gradient as the float tensor that is summed, take
// its squared norm in double, and add the clipped tensors in double (the
// per-ISA kernels of clip_sum.h, through the dispatch table).  Every result is
// independent of the thread count (each output element is reduced by one
// thread in a fixed order: the kept samples in ascending order from zero, then
// one addition into the running sum).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <vector>

#include "dplora.h"
#include "kernels.h"
#include "ps_narrow.h"
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

// The per-sample narrow-gradient kernel of an ISA path, or null (then SGEMM).
dplora::clip::PsNarrowFn narrow_kernel(int isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == DPLORA_ISA_AVX512) return dplora::clip::ps_narrow_avx512;
  if (isa == DPLORA_ISA_AVX2) return dplora::clip::ps_narrow_avx2;
#endif
  (void)isa;
  return nullptr;
}

// A per-thread scratch of at least n floats (pool threads live for the whole process).
float *tls_scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) {
    try {
      buf.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc &) {
      return nullptr;
    }
  }
  return buf.data();
}

// dst (cols x rows) = src^T for src rows x cols, both row-major; in tiles of 8 x 64 so that
// both sides stay in L1.
void transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
  for (int64_t c0 = 0; c0 < cols; c0 += 64) {
    const int64_t c1 = std::min(cols, c0 + 64);
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
      const int64_t r1 = std::min(rows, r0 + 8);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
    }
  }
}

}  // namespace

extern "C" int dplora_per_sample_grads(const float *a, const float *g, int64_t batch, int64_t seq,
                                       int64_t in_dim, int64_t out_dim, float alpha, float *out) {
  int64_t bt = 0, x = 0, pd = 0, work = 0;
  if (bad_dims(batch, seq, &bt) || bad_dims(bt, in_dim, &x) || bad_dims(bt, out_dim, &x) ||
      bad_dims(in_dim, out_dim, &pd) || bad_dims(batch, pd, &x) || bad_dims(pd, seq, &work)) {
    return DPLORA_EINVAL;
  }
  if (batch == 0 || pd == 0) return DPLORA_OK;
  if (out == nullptr || (seq > 0 && (a == nullptr || g == nullptr))) return DPLORA_EINVAL;
  if (seq == 0) {
    for (int64_t j = 0; j < batch * pd; ++j) out[j] = 0.0f;
    return DPLORA_OK;
  }
  // G_i[p, d] = alpha * g_i^T a_i (g_i: seq x p, a_i: seq x d), one serial product per sample,
  // the samples split over the pool.  A per-sample product is small (LoRA at T = 128: 0.8 M
  // multiply-adds): split inside, every call would wake the pool for a few microseconds of
  // work per thread (measured: one thread busy, the other mostly waiting).  Each G_i is the
  // same whatever the split.
  const dplora::Kernels &K = dplora::kernels();
  const dplora::clip::PsNarrowFn narrow = narrow_kernel(K.isa);
  const bool narrow_out = out_dim <= in_dim;
  const int64_t nd = narrow_out ? out_dim : in_dim, nw = narrow_out ? in_dim : out_dim;
  const bool use_narrow = narrow != nullptr && nd <= dplora::clip::kPsNarrowMax;
  std::atomic<int> status{DPLORA_OK};
  dplora::parallel_for(batch, grain_for(work), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float *ai = a + i * seq * in_dim, *gi = g + i * seq * out_dim;
      float *o = out + i * pd;
      if (use_narrow && narrow_out) {
        // G_i (out_dim x in_dim) = alpha * g_i^T a_i, g_i the narrow side.
        narrow(seq, nd, nw, alpha, gi, out_dim, ai, in_dim, o, in_dim);
      } else if (use_narrow) {
        // G_i^T (in_dim x out_dim) = alpha * a_i^T g_i into a scratch, then transposed.
        float *tmp = tls_scratch(pd);
        if (tmp == nullptr) {
          status.store(DPLORA_ENOMEM);
          return;
        }
        narrow(seq, nd, nw, alpha, ai, in_dim, gi, out_dim, tmp, out_dim);
        transpose(tmp, nd, nw, o);
      } else {
        const int rc = dplora::linalg::gemm(K.gemm, true, false, out_dim, in_dim, seq, alpha, gi,
                                            out_dim, ai, in_dim, 0.0f, o, in_dim, nullptr, false);
        if (rc != DPLORA_OK) {
          status.store(rc);
          return;
        }
      }
    }
  });
  return status.load();
}

extern "C" int dplora_rows_sumsq_f64(const float *x, int64_t rows, int64_t n, double *out) {
  int64_t total = 0;
  if (bad_dims(rows, n, &total)) return DPLORA_EINVAL;
  if (rows == 0) return DPLORA_OK;
  if (out == nullptr || (total > 0 && x == nullptr)) return DPLORA_EINVAL;
  const dplora::Kernels &kt = dplora::kernels();
  dplora::parallel_for(rows, grain_for(n), [&](int64_t r0, int64_t r1) {
    // Exact squares of floats in double, summed in the ISA's fixed order.
    for (int64_t r = r0; r < r1; ++r) out[r] = n > 0 ? kt.sumsq(x + r * n, n) : 0.0;
  });
  return DPLORA_OK;
}

namespace {

// Runs the ISA's clipped-sum kernel over the wide side in blocks of 64
// columns (each column's reduction is the same whatever the split).
void run_outer(const std::vector<double> &nar, int64_t np, int64_t ns, const float *wide,
               int64_t nw, const std::vector<int64_t> &kept_rows, double *out, int64_t ps,
               int64_t qs) {
  const dplora::clip::OuterSumFn fn = dplora::kernels().outer_sum;
  const int64_t m = static_cast<int64_t>(kept_rows.size());
  if (m == 0) return;
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (nw + kBlock - 1) / kBlock;
  // Chunks of at least 2^17 multiply-adds (tens of microseconds: the clipped sum of a LoRA
  // factor at batch 64, 64 x 6144 terms, took ~0.2 ms on one thread under the former 2^19
  // threshold while the other thread idled).
  dplora::parallel_for(blocks, (int64_t{1} << 17) / std::max<int64_t>(1, m * np * kBlock) + 1,
                       [&](int64_t b0, int64_t b1) {
                         fn(nar.data(), np, ns, wide, nw, kept_rows.data(), m, b0 * kBlock,
                            std::min(nw, b1 * kBlock), out, ps, qs);
                       });
}

}  // namespace

extern "C" int dplora_rows_scaled_sum_f64(const float *x, int64_t rows, int64_t n,
                                          const float *factors, double *out) {
  int64_t total = 0;
  if (bad_dims(rows, n, &total)) return DPLORA_EINVAL;
  if (rows == 0 || n == 0) return DPLORA_OK;
  if (out == nullptr || x == nullptr || factors == nullptr) return DPLORA_EINVAL;
  std::vector<int64_t> idx;
  std::vector<double> f;
  for (int64_t r = 0; r < rows; ++r) {
    if (!kept(factors[r])) continue;
    idx.push_back(r);
    f.push_back(factors[r]);  // exact
  }
  run_outer(f, 1, 1, x, n, idx, out, 0, 1);
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
  // The narrow side (LoRA: the rank-r one) is scaled into double
  // coefficients c = (scale * f_r) * narrow[r, p] (two roundings); the wide
  // side is read as float.  out[j, k] (out_dim x in_dim) is indexed as
  // out[p * ps + q * qs].
  const bool narrow_in = in_dim < out_dim;
  const float *nsrc = narrow_in ? a : g;
  const float *wide = narrow_in ? g : a;
  const int64_t np = narrow_in ? in_dim : out_dim, nw = narrow_in ? out_dim : in_dim;
  const int64_t ps = narrow_in ? 1 : in_dim, qs = narrow_in ? in_dim : 1;
  const int64_t ns = np == 1 ? 1
                             : (np + dplora::clip::kNarrowPad - 1) / dplora::clip::kNarrowPad *
                                   dplora::clip::kNarrowPad;
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < rows; ++r)
    if (kept(factors[r])) idx.push_back(r);
  std::vector<double> nar(idx.size() * static_cast<size_t>(ns), 0.0);
  for (size_t i = 0; i < idx.size(); ++i) {
    const int64_t r = idx[i];
    const double sf = scale * static_cast<double>(factors[r]);
    const float *src = nsrc + r * np;
    double *dst = nar.data() + static_cast<int64_t>(i) * ns;
    for (int64_t p = 0; p < np; ++p) dst[p] = sf * static_cast<double>(src[p]);
  }
  run_outer(nar, np, ns, wide, nw, idx, out, ps, qs);
  return DPLORA_OK;
}

extern "C" int dplora_noisy_mean_f32(const double *sum, float *g, int64_t n, double scale,
                                     int64_t *nonfinite) {
  if (n < 0 || nonfinite == nullptr || !std::isfinite(scale)) return DPLORA_EINVAL;
  *nonfinite = 0;
  if (n == 0) return DPLORA_OK;
  if (sum == nullptr || g == nullptr) return DPLORA_EINVAL;
  int64_t bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float v = static_cast<float>((sum[j] + static_cast<double>(g[j])) * scale);
    g[j] = v;
    bad += std::isfinite(v) ? 0 : 1;
  }
  *nonfinite = bad;
  return DPLORA_OK;
}
