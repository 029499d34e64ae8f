// NEON per-sample norm kernels, double accumulation throughout (float64x2_t;
// float products are exact in double, so cancelling tokens stay accurate).
#include <arm_neon.h>

#include <algorithm>

#include "norms.h"

namespace dplora {
namespace linalg {
namespace {

inline float64x2_t lo_f64(float32x4_t v) {
  return vcvt_f64_f32(vget_low_f32(v));
}
inline float64x2_t hi_f64(float32x4_t v) {
  return vcvt_high_f64_f32(v);
}

// Up to 4 floats from x (n of them, 0..4), zero padded.
inline float32x4_t load_partial(const float *x, int64_t n) {
  if (n >= 4) return vld1q_f32(x);
  float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t i = 0; i < n; ++i) tmp[i] = x[i];
  return vld1q_f32(tmp);
}

// 4 rows of G (g columns pre-converted to double in gb[t*4+r]) times 8
// columns of a (the first `cols` valid); adds the squares to sq.
inline void direct_block(const float *a, int64_t d, const double *gb, int64_t T, int64_t cols,
                         int64_t ahead, const float *next, float64x2_t sq[4]) {
  float64x2_t acc[4][4];
  for (int r = 0; r < 4; ++r) {
    for (int q = 0; q < 4; ++q) acc[r][q] = vdupq_n_f64(0.0);
  }
  for (int64_t t = 0; t < T; ++t) {
    const float *ar = a + t * d;
    if (ahead) __builtin_prefetch(ar + ahead, 0, 3);
    if (next) __builtin_prefetch(next + t * d, 0, 2);
    float32x4_t u, v;
    if (cols == 8) {
      u = vld1q_f32(ar);
      v = vld1q_f32(ar + 4);
    } else {
      u = load_partial(ar, cols);
      v = load_partial(ar + 4, cols - 4);
    }
    const float64x2_t x[4] = {lo_f64(u), hi_f64(u), lo_f64(v), hi_f64(v)};
    const float64x2_t g01 = vld1q_f64(gb + t * 4), g23 = vld1q_f64(gb + t * 4 + 2);
    for (int q = 0; q < 4; ++q) {
      acc[0][q] = vfmaq_laneq_f64(acc[0][q], x[q], g01, 0);
      acc[1][q] = vfmaq_laneq_f64(acc[1][q], x[q], g01, 1);
      acc[2][q] = vfmaq_laneq_f64(acc[2][q], x[q], g23, 0);
      acc[3][q] = vfmaq_laneq_f64(acc[3][q], x[q], g23, 1);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int q = 0; q < 4; ++q) sq[q] = vfmaq_f64(sq[q], acc[r][q], acc[r][q]);
  }
}

// Dot products of rows tr[0..3] with rows sr[0..1] (length n), in double.
inline void dot_block(const float *const *tr, const float *const *sr, int64_t n, double out[4][2]) {
  float64x2_t acc[4][2];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = vdupq_n_f64(0.0);
  for (int64_t k = 0; k < n; k += 4) {
    const int64_t w = n - k;
    float64x2_t s[2][2], t[4][2];
    for (int q = 0; q < 2; ++q) {
      const float32x4_t v = w >= 4 ? vld1q_f32(sr[q] + k) : load_partial(sr[q] + k, w);
      s[q][0] = lo_f64(v);
      s[q][1] = hi_f64(v);
    }
    for (int r = 0; r < 4; ++r) {
      const float32x4_t v = w >= 4 ? vld1q_f32(tr[r] + k) : load_partial(tr[r] + k, w);
      t[r][0] = lo_f64(v);
      t[r][1] = hi_f64(v);
    }
    for (int r = 0; r < 4; ++r) {
      for (int q = 0; q < 2; ++q) {
        acc[r][q] = vfmaq_f64(acc[r][q], t[r][0], s[q][0]);
        acc[r][q] = vfmaq_f64(acc[r][q], t[r][1], s[q][1]);
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int q = 0; q < 2; ++q) out[r][q] = vaddvq_f64(acc[r][q]);
  }
}

// Narrow G (p <= 8, the LoRA case), as in the AVX2 kernel: a is streamed
// in blocks of 16 rows, all 8-column blocks of a row block in turn (16
// nearly sequential row streams instead of one column chunk at a time); the
// partial G (double) lives in scratch, one 4 x 8 tile per j-block and column
// block.  Same products and the same t order as the chunked loop.
double direct_narrow(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                     double *gbuf) {
  constexpr int64_t TB = 16;
  const int64_t nblk = (p + 3) / 4;
  const int64_t ncb = (d + 7) / 8;
  for (int64_t b = 0; b < nblk; ++b) g_block_to_double<4>(g, T, p, b * 4, gbuf + b * T * 4);
  double *G = gbuf + T * 8;
  for (int64_t x = 0; x < nblk * ncb * 32; ++x) G[x] = 0.0;
  for (int64_t t0 = 0; t0 < T; t0 += TB) {
    const int64_t t1 = std::min(T, t0 + TB);
    for (int64_t cb = 0; cb < ncb; ++cb) {
      const int64_t k = cb * 8, cols = std::min<int64_t>(8, d - k);
      for (int64_t b = 0; b < nblk; ++b) {
        double *tile = G + (b * ncb + cb) * 32;
        float64x2_t acc[4][4];
        for (int r = 0; r < 4; ++r) {
          for (int q = 0; q < 4; ++q) acc[r][q] = vld1q_f64(tile + 8 * r + 2 * q);
        }
        const double *gb = gbuf + b * T * 4;
        // Fetch the same line of the next row block into L2 once per line
        // (past the last block: the next sample's first rows; prefetches
        // never fault).
        const bool pf = b == 0 && (cb & 1) == 0;
        for (int64_t t = t0; t < t1; ++t) {
          const float *ar = a + t * d + k;
          if (pf) __builtin_prefetch(ar + TB * d, 0, 2);
          float32x4_t u, v;
          if (cols == 8) {
            u = vld1q_f32(ar);
            v = vld1q_f32(ar + 4);
          } else {
            u = load_partial(ar, cols);
            v = load_partial(ar + 4, cols - 4);
          }
          const float64x2_t x[4] = {lo_f64(u), hi_f64(u), lo_f64(v), hi_f64(v)};
          const float64x2_t g01 = vld1q_f64(gb + t * 4), g23 = vld1q_f64(gb + t * 4 + 2);
          for (int q = 0; q < 4; ++q) {
            acc[0][q] = vfmaq_laneq_f64(acc[0][q], x[q], g01, 0);
            acc[1][q] = vfmaq_laneq_f64(acc[1][q], x[q], g01, 1);
            acc[2][q] = vfmaq_laneq_f64(acc[2][q], x[q], g23, 0);
            acc[3][q] = vfmaq_laneq_f64(acc[3][q], x[q], g23, 1);
          }
        }
        for (int r = 0; r < 4; ++r) {
          for (int q = 0; q < 4; ++q) vst1q_f64(tile + 8 * r + 2 * q, acc[r][q]);
        }
      }
    }
  }
  float64x2_t sq0 = vdupq_n_f64(0.0), sq1 = sq0;
  for (int64_t x = 0; x < nblk * ncb * 32; x += 4) {
    const float64x2_t u = vld1q_f64(G + x), v = vld1q_f64(G + x + 2);
    sq0 = vfmaq_f64(sq0, u, u);
    sq1 = vfmaq_f64(sq1, v, v);
  }
  return vaddvq_f64(vaddq_f64(sq0, sq1));
}

}  // namespace

double sumsq_neon(const float *x, int64_t n) {
  float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t u = vld1q_f32(x + i), v = vld1q_f32(x + i + 4);
    const float64x2_t u0 = lo_f64(u), u1 = hi_f64(u), v0 = lo_f64(v), v1 = hi_f64(v);
    s0 = vfmaq_f64(s0, u0, u0);
    s1 = vfmaq_f64(s1, u1, u1);
    s2 = vfmaq_f64(s2, v0, v0);
    s3 = vfmaq_f64(s3, v1, v1);
  }
  for (; i < n; i += 4) {
    const float32x4_t u = load_partial(x + i, n - i);
    const float64x2_t u0 = lo_f64(u), u1 = hi_f64(u);
    s0 = vfmaq_f64(s0, u0, u0);
    s1 = vfmaq_f64(s1, u1, u1);
  }
  return vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
}

double norm_direct_neon(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                        double *gbuf, const float *pf, int64_t pf_n) {
  if (p <= 8) return direct_narrow(a, g, T, d, p, gbuf);
  float64x2_t sq[4] = {vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
  direct_norm_loop<4, 8>(
      a, g, T, d, p, gbuf, pf, pf_n,
      [&](const float *ak, const double *gb, int64_t cols, int64_t ahead, const float *next) {
        // 8 columns a block: prefetch each 16-float line once.
        if (((ak - a) & 15) != 0) next = nullptr;
        direct_block(ak, d, gb, T, cols, ahead, next, sq);
      });
  return vaddvq_f64(vaddq_f64(vaddq_f64(sq[0], sq[1]), vaddq_f64(sq[2], sq[3])));
}

// <a a^T, g g^T> over the lower triangle (off-diagonal terms twice), rows
// in blocks of 4 x 2.
double norm_ghost_neon(const float *a, const float *g, int64_t T, int64_t d, int64_t p, double *,
                       const float *, int64_t) {
  return ghost_norm_loop<2>(a, g, T, d, p,
                            [](const float *const *x, const float *const *y, int64_t n,
                               double(&out)[4][2]) { dot_block(x, y, n, out); });
}

}  // namespace linalg
}  // namespace dplora
