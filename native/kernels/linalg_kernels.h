// Internal interface of the linalg kernels: one table of function pointers
// per ISA (filled in linalg_dispatch.cc) and the blocked SGEMM driver that
// sgemm.cc, clipped_sum.cc and the tests share.
#pragma once
#include <algorithm>
#include <cstdint>

namespace dplora {
namespace linalg {

// SGEMM micro-kernel: C[m x n] += alpha * Ap * Bp, where Ap holds kc steps of
// MR packed values of op(A) and Bp kc rows of NR values of op(B), rows ldbp
// floats apart (NR for a packed panel; the row stride of B when B is read in
// place).  m <= MR and n <= NR select the edge-tile path (only the first n
// values of a B row are then meaningful, but all NR are read).
using GemmMicroFn = void (*)(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                             int64_t ldc, int64_t m, int64_t n, float alpha);

struct GemmKernel {
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks (mc % mr == 0, nc % nr == 0)
  GemmMicroFn micro;
};

// Per-sample squared norm of G = g^T a (a: T x d, g: T x p), accumulated in
// double.  `gbuf` is scratch of at least kNormScratch(T, d) doubles (d >= p).  The a
// block is read column-chunk by column-chunk, which hardware prefetchers do
// not follow, so the kernel prefetches the next sample's `pf_n` floats at
// `pf` (may be null) sequentially while it computes.
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
// (a + k, gblock, k_end - k, ahead) adds the squares of a R x C block of G;
// `ahead` is the distance (floats) to the same columns of the next chunk,
// for prefetching (0 in the last chunk).
template <int R, int C, typename Block>
inline void direct_norm_loop(const float *a, const float *g, int64_t T, int64_t d, int64_t p,
                             double *gbuf, const float *pf, int64_t pf_n, Block block) {
  const int64_t chunk = std::max<int64_t>(C, (4096 / std::max<int64_t>(T, 1)) / C * C);
  const int64_t nblk = (p + R - 1) / R;
  const bool all = T * R * nblk <= kGAllDoubles;
  // Prefetch of the next sample: 16 floats (one line) at a time, spread
  // evenly over the block calls.
  const int64_t calls = ((d + chunk - 1) / chunk) * nblk * ((chunk + C - 1) / C);
  const int64_t pf_lines = pf ? (pf_n + 15) / 16 : 0;
  const int64_t per_call = (pf_lines + calls - 1) / std::max<int64_t>(calls, 1);
  int64_t pf_next = 0;
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
        for (int64_t q = 0; q < per_call && pf_next < pf_lines; ++q, ++pf_next) {
          __builtin_prefetch(pf + pf_next * 16, 0, 2);
        }
        block(a + k, gb, std::min<int64_t>(C, k1 - k), ahead);
      }
    }
  }
}

using SampleNormFn = double (*)(const float *a, const float *g, int64_t t, int64_t d, int64_t p,
                                double *gbuf, const float *pf, int64_t pf_n);
// Sum of squares of x[0..n) accumulated in double.
using SumSqFn = double (*)(const float *x, int64_t n);
// Roofline probes: a float sum-of-squares read loop, and an FMA loop with
// enough independent accumulators to saturate the FMA units.
using ReadProbeFn = float (*)(const float *x, int64_t n);
using FmaProbeFn = double (*)(int64_t iters);

struct LinalgKernels {
  GemmKernel gemm;
  SampleNormFn direct, ghost;
  SumSqFn sumsq;
  ReadProbeFn read_probe;
  FmaProbeFn fma_probe;
  double fma_flops_per_iter;  // flops one fma_probe iteration performs
};

// The table for an ISA (falls back to scalar for paths without kernels).
const LinalgKernels &kernels_for(int isa);
// The table for the ISA active now.
const LinalgKernels &active_kernels();

// C = alpha op(A) op(B) + beta C with the given kernel.  When kscale is not
// null, column k of op(A) is multiplied by kscale[k] while packing (an exact
// zero where kscale[k] == 0; op(B) is still read, so callers that must drop
// rows holding NaN skip them instead).  When op(A) has few rows and B is not
// transposed, B is read in place instead of being packed (each B value is
// used by at most two micro-panels, so a packed copy would cost more than it
// saves).  parallel: split over the pool.  Returns a DPLORA_* status.
int gemm(const GemmKernel &kern, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
         float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
         float *c, int64_t ldc, const float *kscale, bool parallel);

// Per-ISA kernels (defined in the *_scalar.cc, *_avx2.cc, *_avx512.cc and
// *_neon.cc files).
void gemm_micro_scalar(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                       int64_t, float);
double norm_direct_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *,
                          const float *, int64_t);
double norm_ghost_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *,
                         const float *, int64_t);
double sumsq_scalar(const float *, int64_t);
float read_probe_scalar(const float *, int64_t);
double fma_probe_scalar(int64_t);
// 32 independent float multiply-adds per iteration (2 flops each).
constexpr double kFmaProbeFlopsScalar = 64.0;

#if defined(__x86_64__) || defined(_M_X64)
void gemm_micro_avx2(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                     int64_t, float);
double norm_direct_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *,
                        const float *, int64_t);
double norm_ghost_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *,
                       const float *, int64_t);
double sumsq_avx2(const float *, int64_t);
float read_probe_avx2(const float *, int64_t);
double fma_probe_avx2(int64_t);
// 12 ymm FMAs per iteration: 12 * 8 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx2 = 192.0;

void gemm_micro_avx512(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                       int64_t, float);
double norm_direct_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *,
                          const float *, int64_t);
double norm_ghost_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *,
                         const float *, int64_t);
double sumsq_avx512(const float *, int64_t);
float read_probe_avx512(const float *, int64_t);
double fma_probe_avx512(int64_t);
// 24 zmm FMAs per iteration: 24 * 16 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx512 = 768.0;
#endif

#if defined(__aarch64__)
void gemm_micro_neon(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                     int64_t, float);
double norm_direct_neon(const float *, const float *, int64_t, int64_t, int64_t, double *,
                        const float *, int64_t);
double norm_ghost_neon(const float *, const float *, int64_t, int64_t, int64_t, double *,
                       const float *, int64_t);
double sumsq_neon(const float *, int64_t);
float read_probe_neon(const float *, int64_t);
double fma_probe_neon(int64_t);
// 16 q-register FMAs per iteration: 16 * 4 lanes * 2 flops.
constexpr double kFmaProbeFlopsNeon = 128.0;
#endif

}  // namespace linalg
}  // namespace dplora
