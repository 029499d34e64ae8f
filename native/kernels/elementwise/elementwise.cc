// Drivers of the elementwise and attention kernels (see elementwise.h): the
// active ISA's row kernels, work split over the pool by whole rows, samples
// or (sequence, head) pairs, so results never depend on the thread count.
#include "elementwise.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <vector>

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dplora {
namespace elem {
namespace {

bool mul_ok(int64_t x, int64_t y, int64_t *r) {
  return !__builtin_mul_overflow(x, y, r);
}

// Floats per chunk of a flat elementwise pass (64 KB).
constexpr int64_t kBlock = 16384;

// Runs fn(begin, end) over [0, n) in blocks of kBlock floats on the pool.
template <typename Fn>
void flat_for(int64_t n, Fn fn) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  parallel_for(blocks, 4, [&](int64_t b0, int64_t b1) {
    const int64_t i0 = b0 * kBlock, i1 = std::min(n, b1 * kBlock);
    fn(i0, i1 - i0);
  });
}

// The real keys of sequence b: their count if they are exactly a prefix
// [0, len) (seq without a mask), else -1.
int64_t prefix_len(const uint8_t *valid, int64_t b, int64_t seq) {
  if (valid == nullptr) return seq;
  const uint8_t *v = valid + b * seq;
  int64_t n = 0;
  while (n < seq && v[n] != 0) ++n;
  for (int64_t s = n; s < seq; ++s)
    if (v[s] != 0) return -1;
  return n;
}

// Per-thread scratch (grown on demand, kept: pool threads live for the process).
float *thread_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) {
    try {
      buf.resize(n);
    } catch (const std::bad_alloc &) {
      return nullptr;
    }
  }
  return buf.data();
}

}  // namespace

const RowKernels &row_kernels() {
#if defined(__x86_64__) || defined(_M_X64)
  const int isa = active_isa();
  if (isa == DPLORA_ISA_AVX512) return kRowAvx512;
  if (isa == DPLORA_ISA_AVX2) return kRowAvx2;
#endif
  return kRowScalar;
}

int layer_norm_forward(const float *x, int64_t rows, int64_t d, const float *gamma,
                       const float *beta, float eps, float *y, float *xhat, float *inv_std) {
  int64_t n = 0;
  if (rows < 0 || d < 1 || !mul_ok(rows, d, &n) || !(eps >= 0.0f)) return DPLORA_EINVAL;
  if (rows == 0) return DPLORA_OK;
  if (x == nullptr || gamma == nullptr || beta == nullptr || y == nullptr) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  parallel_for(rows, std::max<int64_t>(1, 32768 / d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float inv = R.ln_fwd(x + r * d, d, gamma, beta, eps, y + r * d,
                                 xhat != nullptr ? xhat + r * d : nullptr);
      if (inv_std != nullptr) inv_std[r] = inv;
    }
  });
  return DPLORA_OK;
}

int layer_norm_backward(const float *g, const float *xhat, const float *inv_std, const float *gamma,
                        int64_t batch, int64_t seq, int64_t d, float *gi, float *gw, float *gb) {
  int64_t rows = 0, n = 0;
  if (batch < 0 || seq < 0 || d < 1 || !mul_ok(batch, seq, &rows) || !mul_ok(rows, d, &n))
    return DPLORA_EINVAL;
  if (batch == 0) return DPLORA_OK;
  if ((g == nullptr || xhat == nullptr || inv_std == nullptr || gi == nullptr) && rows > 0)
    return DPLORA_EINVAL;
  if (gamma == nullptr) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  if (gw == nullptr && gb == nullptr) {
    parallel_for(rows, std::max<int64_t>(1, 32768 / d), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        R.ln_bwd(g + r * d, xhat + r * d, inv_std[r], gamma, d, gi + r * d, nullptr, nullptr);
    });
    return DPLORA_OK;
  }
  // Per-sample sums: each sample on one thread, its rows in order.
  parallel_for(batch, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, seq * d)),
               [&](int64_t b0, int64_t b1) {
                 for (int64_t b = b0; b < b1; ++b) {
                   float *w = gw != nullptr ? gw + b * d : nullptr;
                   float *bb = gb != nullptr ? gb + b * d : nullptr;
                   if (w != nullptr) std::fill(w, w + d, 0.0f);
                   if (bb != nullptr) std::fill(bb, bb + d, 0.0f);
                   for (int64_t t = 0; t < seq; ++t) {
                     const int64_t r = b * seq + t;
                     R.ln_bwd(g + r * d, xhat + r * d, inv_std[r], gamma, d, gi + r * d, w, bb);
                   }
                 }
               });
  return DPLORA_OK;
}

int attention_forward(const float *q, const float *k, const float *v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t dh, float scale, const uint8_t *valid, float *out,
                      float *probs) {
  int64_t d = 0, rows = 0, n = 0, tt = 0, np = 0, bh = 0;
  if (batch < 0 || seq < 0 || heads < 1 || dh < 1 || !mul_ok(heads, dh, &d) ||
      !mul_ok(batch, heads, &bh) || !mul_ok(batch, seq, &rows) || !mul_ok(rows, d, &n) ||
      !mul_ok(seq, seq, &tt) || !mul_ok(tt, bh, &np) || !std::isfinite(scale))
    return DPLORA_EINVAL;
  if (batch == 0 || seq == 0) return DPLORA_OK;
  if (q == nullptr || k == nullptr || v == nullptr || out == nullptr || probs == nullptr)
    return DPLORA_EINVAL;
  const Kernels &K = kernels();
  const RowKernels &R = row_kernels();
  std::vector<int64_t> len(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) len[static_cast<size_t>(b)] = prefix_len(valid, b, seq);
  std::atomic<int> rc{DPLORA_OK};
  parallel_for(bh, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads, h = i % heads;
      const int64_t off = b * seq * d + h * dh;
      const int64_t L = len[static_cast<size_t>(b)];
      float *p = probs + i * tt;
      int64_t nk = seq;  // keys read
      if (L == 0) {
        // No real key at all: uniform weights (as a finite -1e9 bias gives in TF).
        std::fill(p, p + tt, 1.0f / static_cast<float>(seq));
      } else {
        if (L > 0) nk = L;
        int r = linalg::gemm(K.gemm, false, true, seq, nk, dh, scale, q + off, d, k + off, d, 0.0f,
                             p, seq, nullptr, false);
        if (r != DPLORA_OK) {
          rc = r;
          continue;
        }
        for (int64_t t = 0; t < seq; ++t) {
          float *row = p + t * seq;
          if (L < 0) {
            const uint8_t *vb = valid + b * seq;
            for (int64_t s = 0; s < seq; ++s)
              if (vb[s] == 0) row[s] = -INFINITY;
          }
          R.softmax(row, nk, seq);
        }
      }
      const int r = linalg::gemm(K.gemm, false, false, seq, dh, nk, 1.0f, p, seq, v + off, d, 0.0f,
                                 out + off, d, nullptr, false);
      if (r != DPLORA_OK) rc = r;
    }
  });
  return rc.load();
}

int attention_backward(const float *gout, const float *q, const float *k, const float *v,
                       const float *probs, int64_t batch, int64_t seq, int64_t heads, int64_t dh,
                       float scale, const uint8_t *valid, float *gq, float *gk, float *gv) {
  int64_t d = 0, rows = 0, n = 0, tt = 0, np = 0, bh = 0;
  if (batch < 0 || seq < 0 || heads < 1 || dh < 1 || !mul_ok(heads, dh, &d) ||
      !mul_ok(batch, heads, &bh) || !mul_ok(batch, seq, &rows) || !mul_ok(rows, d, &n) ||
      !mul_ok(seq, seq, &tt) || !mul_ok(tt, bh, &np) || !std::isfinite(scale))
    return DPLORA_EINVAL;
  if (batch == 0 || seq == 0) return DPLORA_OK;
  if (gout == nullptr || q == nullptr || k == nullptr || v == nullptr || probs == nullptr ||
      gq == nullptr || gk == nullptr || gv == nullptr)
    return DPLORA_EINVAL;
  const Kernels &K = kernels();
  const RowKernels &R = row_kernels();
  std::vector<int64_t> len(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) len[static_cast<size_t>(b)] = prefix_len(valid, b, seq);
  std::atomic<int> rc{DPLORA_OK};
  parallel_for(bh, 1, [&](int64_t i0, int64_t i1) {
    float *dp = thread_scratch(static_cast<size_t>(tt));
    if (dp == nullptr) {
      rc = DPLORA_ENOMEM;
      return;
    }
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads, h = i % heads;
      const int64_t off = b * seq * d + h * dh;
      const int64_t L = len[static_cast<size_t>(b)];
      const int64_t nk = L > 0 ? L : seq;  // keys with a nonzero weight (all: uniform or a mask)
      const float *p = probs + i * tt;
      auto gemm = [&](bool ta, bool tb, int64_t m, int64_t nn, int64_t kk, const float *a,
                      int64_t lda, const float *bm, int64_t ldb, float *c, int64_t ldc) {
        const int r = linalg::gemm(K.gemm, ta, tb, m, nn, kk, 1.0f, a, lda, bm, ldb, 0.0f, c, ldc,
                                   nullptr, false);
        if (r != DPLORA_OK) rc = r;
      };
      // gv_h = P^T gout_h (rows of the keys read), 0 on the other keys
      gemm(true, false, nk, dh, seq, p, seq, gout + off, d, gv + off, d);
      // dP = gout_h v_h^T  [seq, nk]
      gemm(false, true, seq, nk, dh, gout + off, d, v + off, d, dp, nk);
      // dS = scale * P * (dP - rowsum(P * dP))
      for (int64_t t = 0; t < seq; ++t) R.softmax_bwd(p + t * seq, dp + t * nk, nk, scale);
      // gq_h = dS k_h ; gk_h = dS^T q_h
      gemm(false, false, seq, dh, nk, dp, nk, k + off, d, gq + off, d);
      gemm(true, false, nk, dh, seq, dp, nk, q + off, d, gk + off, d);
      for (int64_t s = nk; s < seq; ++s) {
        std::fill(gv + off + s * d, gv + off + s * d + dh, 0.0f);
        std::fill(gk + off + s * d, gk + off + s * d + dh, 0.0f);
      }
    }
  });
  return rc.load();
}

// Real tokens of sequence b (seq without a mask).
int64_t real_count(const uint8_t *valid, int64_t b, int64_t seq) {
  if (valid == nullptr) return seq;
  int64_t n = 0;
  for (int64_t t = 0; t < seq; ++t) n += valid[b * seq + t] != 0;
  return n;
}

int token_mean(const float *x, int64_t batch, int64_t seq, int64_t f, const uint8_t *valid,
               float *out, bool accumulate) {
  int64_t rows = 0, n = 0;
  if (batch < 0 || seq < 0 || f < 0 || !mul_ok(batch, seq, &rows) || !mul_ok(rows, f, &n))
    return DPLORA_EINVAL;
  if (batch == 0 || f == 0) return DPLORA_OK;
  if (out == nullptr || (x == nullptr && n > 0)) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  std::atomic<int> rc{DPLORA_OK};
  parallel_for(batch, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, seq * f)),
               [&](int64_t b0, int64_t b1) {
                 float *acc = thread_scratch(static_cast<size_t>(f));
                 if (acc == nullptr) {
                   rc = DPLORA_ENOMEM;
                   return;
                 }
                 for (int64_t b = b0; b < b1; ++b) {
                   float *o = out + b * f;
                   const int64_t cnt = real_count(valid, b, seq);
                   if (cnt == 0) {
                     if (!accumulate) std::fill(o, o + f, 0.0f);
                     continue;
                   }
                   std::fill(acc, acc + f, 0.0f);
                   for (int64_t t = 0; t < seq; ++t)
                     if (valid == nullptr || valid[b * seq + t] != 0)
                       R.add(acc, x + (b * seq + t) * f, f);
                   const float inv = static_cast<float>(1.0 / static_cast<double>(cnt));
                   if (accumulate) {
                     for (int64_t j = 0; j < f; ++j) o[j] += acc[j] * inv;
                   } else {
                     for (int64_t j = 0; j < f; ++j) o[j] = acc[j] * inv;
                   }
                 }
               });
  return rc.load();
}

int token_spread(const float *g, int64_t batch, int64_t seq, int64_t f, const uint8_t *valid,
                 float *gx, bool accumulate) {
  int64_t rows = 0, n = 0;
  if (batch < 0 || seq < 0 || f < 0 || !mul_ok(batch, seq, &rows) || !mul_ok(rows, f, &n))
    return DPLORA_EINVAL;
  if (batch == 0 || f == 0 || seq == 0) return DPLORA_OK;
  if (gx == nullptr || g == nullptr) return DPLORA_EINVAL;
  parallel_for(batch, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, seq * f)),
               [&](int64_t b0, int64_t b1) {
                 for (int64_t b = b0; b < b1; ++b) {
                   const int64_t cnt = real_count(valid, b, seq);
                   const float inv =
                       cnt == 0 ? 0.0f : static_cast<float>(1.0 / static_cast<double>(cnt));
                   const float *gb = g + b * f;
                   for (int64_t t = 0; t < seq; ++t) {
                     float *row = gx + (b * seq + t) * f;
                     const bool real = valid == nullptr || valid[b * seq + t] != 0;
                     if (!real) {
                       if (!accumulate) std::fill(row, row + f, 0.0f);
                     } else if (accumulate) {
                       for (int64_t j = 0; j < f; ++j) row[j] += gb[j] * inv;
                     } else {
                       for (int64_t j = 0; j < f; ++j) row[j] = gb[j] * inv;
                     }
                   }
                 }
               });
  return DPLORA_OK;
}

int gather_rows(const float *table, int64_t vocab, int64_t d, const float *ids, int64_t n,
                float scale, float *y) {
  int64_t total = 0, tn = 0;
  if (vocab < 0 || d < 0 || n < 0 || !mul_ok(n, d, &total) || !mul_ok(vocab, d, &tn))
    return DPLORA_EINVAL;
  if (n == 0 || d == 0) return DPLORA_OK;
  if (ids == nullptr || y == nullptr || (table == nullptr && tn > 0)) return DPLORA_EINVAL;
  for (int64_t r = 0; r < n; ++r) {
    const float id = ids[r];
    if (id != -1.0f && !(id >= 0.0f && id < static_cast<float>(vocab) && std::floor(id) == id))
      return DPLORA_EINVAL;
  }
  parallel_for(n, std::max<int64_t>(1, 32768 / d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float *row = y + r * d;
      if (ids[r] == -1.0f) {
        std::fill(row, row + d, 0.0f);
        continue;
      }
      const float *src = table + static_cast<int64_t>(ids[r]) * d;
      for (int64_t j = 0; j < d; ++j) row[j] = scale * src[j];
    }
  });
  return DPLORA_OK;
}

int mse_loss(const float *pred, const float *target, int64_t batch, int64_t per, float *losses,
             float *grad) {
  int64_t n = 0;
  if (batch < 0 || per < 0 || !mul_ok(batch, per, &n)) return DPLORA_EINVAL;
  if (batch == 0) return DPLORA_OK;
  if (losses == nullptr || (n > 0 && (pred == nullptr || target == nullptr || grad == nullptr)))
    return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  const double dper = static_cast<double>(per);
  // Whole samples per task, at least ~64K elements each.
  parallel_for(
      batch, std::max<int64_t>(1, 65536 / std::max<int64_t>(per, 1)), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const double s = R.mse_row(pred + i * per, target + i * per, per, dper, grad + i * per);
          losses[i] = static_cast<float>(s / dper);
        }
      });
  return DPLORA_OK;
}

int relu_forward(const float *x, float *y, int64_t n) {
  if (n < 0) return DPLORA_EINVAL;
  if (n == 0) return DPLORA_OK;
  if (x == nullptr || y == nullptr) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  flat_for(n, [&](int64_t i, int64_t m) { R.relu(x + i, y + i, m); });
  return DPLORA_OK;
}

int relu_backward(const float *y, const float *g, float *gi, int64_t n) {
  if (n < 0) return DPLORA_EINVAL;
  if (n == 0) return DPLORA_OK;
  if (y == nullptr || g == nullptr || gi == nullptr) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  flat_for(n, [&](int64_t i, int64_t m) { R.relu_bwd(y + i, g + i, gi + i, m); });
  return DPLORA_OK;
}

int add_inplace(float *y, const float *x, int64_t n) {
  if (n < 0) return DPLORA_EINVAL;
  if (n == 0) return DPLORA_OK;
  if (x == nullptr || y == nullptr) return DPLORA_EINVAL;
  const RowKernels &R = row_kernels();
  flat_for(n, [&](int64_t i, int64_t m) { R.add(y + i, x + i, m); });
  return DPLORA_OK;
}

}  // namespace elem
}  // namespace dplora
