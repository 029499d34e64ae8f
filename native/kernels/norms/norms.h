// Per-sample gradient norms: the drivers the ISA paths share and the per-ISA
// kernels (direct, ghost, sum of squares).
#pragma once
#include <algorithm>
#include <cstdint>

namespace dplora {
namespace linalg {

// Per-sample squared norm of G = g^T a (a: T x d, g: T x p), accumulated in
// double.  `gbuf` is scratch of at least kNormScratch(T, d) doubles (d >= p).  The a
// block is read column-chunk by column-chunk, which hardware prefetchers do
// not follow, so the kernel prefetches the next sample's a (`pf`, null if
// none, same T x d layout, `pf_n` floats) while it computes.
constexpr int64_t kGAllDoubles = 16384;  // g of one sample converted at once if it fits
// Scratch (doubles) the direct kernels need for T tokens and wide dimension w.
inline int64_t kNormScratch(int64_t T, int64_t w) {
  return T * 8 + kGAllDoubles + 8 * (w + 16);
}

// Column block j0..j0+R-1 of g (T x p) as doubles, row-major T x R, zero
// padded past column p.
template <int R>
inline void g_block_to_double(const float *g, int64_t T, int64_t p, int64_t j0, double *dst) {
  const int64_t rows = p - j0 < R ? p - j0 : R;
  for (int64_t t = 0; t < T; ++t) {
    const float *gr = g + t * p + j0;
    for (int r = 0; r < R; ++r) dst[t * R + r] = r < rows ? static_cast<double>(gr[r]) : 0.0;
  }
}

// Ghost-norm driver shared by the ISAs: <a a^T, g g^T> over the lower
// triangle (off-diagonal terms twice), token rows in blocks of 4 x S.
// `dot(x_rows, y_rows, n, out)` fills out[r][q] = x_rows[r] . y_rows[q] in
// double for 4 x S rows of length n (each ISA passes its own SIMD kernel).
template <int S, typename Dot>
inline double ghost_norm_loop(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                              Dot dot) {
  double total = 0;
  for (int64_t t0 = 0; t0 < T; t0 += 4) {
    const float *ta[4], *tg[4];
    for (int r = 0; r < 4; ++r) {
      const int64_t t = std::min(T - 1, t0 + r);
      ta[r] = a + t * d;
      tg[r] = g + t * p;
    }
    for (int64_t s0 = 0; s0 < std::min(T, t0 + 4); s0 += S) {
      const float *sa[S], *sg[S];
      for (int q = 0; q < S; ++q) {
        const int64_t s = std::min(T - 1, s0 + q);
        sa[q] = a + s * d;
        sg[q] = g + s * p;
      }
      double da[4][S], dg[4][S];
      dot(ta, sa, d, da);
      dot(tg, sg, p, dg);
      for (int r = 0; r < 4; ++r) {
        for (int q = 0; q < S; ++q) {
          const int64_t t = t0 + r, s = s0 + q;
          if (t >= T || s >= T || s > t) continue;
          total += (s == t ? 1.0 : 2.0) * (da[r][q] * dg[r][q]);
        }
      }
    }
  }
  return total;
}

// Direct-norm driver shared by the ISAs: a's columns in L1-sized chunks of
// width `chunk` (multiple of C); for each block of R columns of g (converted
// to double once per sample when all of them fit in the scratch), `block`
// (a + k, gblock, k_end - k, ahead, next) adds the squares of a R x C block
// of G; `ahead` is the distance (floats) to the same columns of the next
// chunk, for prefetching into L1 (0 in the last chunk), and `next` (null if
// none) the same columns kPfChunks chunks later in the order the kernel reads
// a, for prefetching into L2 (past the last chunk that is the next sample's
// a, `pf`, which must then have the same T x d layout: pf_n >= T * d).
// Hardware prefetchers do not follow this column-chunk order, and a sequential
// software stream of the next sample did not keep up (measured on Zen 5,
// scripts/norms-micro.sh): a short, in-order distance streams best.
constexpr int64_t kPfChunks = 2;
template <int R, int C, typename Block>
inline void direct_norm_loop(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                             double *gbuf, const float *pf, int64_t pf_n, Block block) {
  const int64_t chunk = std::max<int64_t>(C, (4096 / std::max<int64_t>(T, 1)) / C * C);
  const int64_t nblk = (p + R - 1) / R;
  const bool all = T * R * nblk <= kGAllDoubles;
  if (pf_n < T * d) pf = nullptr;
  if (all) {
    for (int64_t b = 0; b < nblk; ++b) g_block_to_double<R>(g, T, p, b * R, gbuf + b * T * R);
  }
  for (int64_t k0 = 0; k0 < d; k0 += chunk) {
    const int64_t k1 = std::min(d, k0 + chunk);
    for (int64_t b = 0; b < nblk; ++b) {
      const double *gb = gbuf + b * T * R;
      if (!all) {
        g_block_to_double<R>(g, T, p, b * R, gbuf);
        gb = gbuf;
      }
      const int64_t ahead = (b == 0 && k1 + chunk <= d) ? chunk : 0;
      for (int64_t k = k0; k < k1; k += C) {
        const int64_t kn = k + kPfChunks * chunk;  // column of the prefetched block
        const float *next = b != 0                          ? nullptr
                            : kn < d                        ? a + kn
                            : (pf != nullptr && kn - d < d) ? pf + (kn - d)
                                                            : nullptr;
        block(a + k, gb, std::min<int64_t>(C, k1 - k), ahead, next);
      }
    }
  }
}

using SampleNormFn = double (*)(const float *a, const float *g, int64_t t, int64_t d, int64_t p,
                                double *gbuf, const float *pf, int64_t pf_n);
// Sum of squares of x[0..n) accumulated in double.
using SumSqFn = double (*)(const float *x, int64_t n);
// Per-ISA kernels (the *_scalar.cc, *_avx2.cc, *_avx512.cc and *_neon.cc files).
double norm_direct_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *,
                          const float *, int64_t);
double norm_ghost_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *,
                         const float *, int64_t);
double sumsq_scalar(const float *, int64_t);

#if defined(__x86_64__) || defined(_M_X64)
double norm_direct_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *,
                        const float *, int64_t);
double norm_ghost_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *,
                       const float *, int64_t);
double sumsq_avx2(const float *, int64_t);

double norm_direct_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *,
                          const float *, int64_t);
double norm_ghost_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *,
                         const float *, int64_t);
double sumsq_avx512(const float *, int64_t);
#endif

#if defined(__aarch64__)
double norm_direct_neon(const float *, const float *, int64_t, int64_t, int64_t, double *,
                        const float *, int64_t);
double norm_ghost_neon(const float *, const float *, int64_t, int64_t, int64_t, double *,
                       const float *, int64_t);
double sumsq_neon(const float *, int64_t);
#endif

}  // namespace linalg
}  // namespace dplora
