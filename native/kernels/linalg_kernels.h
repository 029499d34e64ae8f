// Internal interface of the linalg kernels: one table of function pointers
// per ISA (filled in linalg_dispatch.cc) and the blocked SGEMM driver that
// sgemm.cc, clipped_sum.cc and the tests share.
#pragma once
#include <cstdint>

namespace dplora {
namespace linalg {

// SGEMM micro-kernel: C[m x n] += alpha * Ap * Bp, where Ap holds kc steps of
// MR packed values of op(A) and Bp kc steps of NR packed values of op(B)
// (zero padded).  m <= MR and n <= NR select the edge-tile path.
using GemmMicroFn = void (*)(int64_t kc, const float *ap, const float *bp, float *c,
                             int64_t ldc, int64_t m, int64_t n, float alpha);

struct GemmKernel {
  int mr, nr;              // register tile
  int64_t mc, kc, nc;      // cache blocks (mc % mr == 0, nc % nr == 0)
  GemmMicroFn micro;
};

// Per-sample squared norm of G = g^T a (a: T x d, g: T x p), accumulated in
// double.  `gbuf` is scratch of at least T * 8 doubles.
using SampleNormFn = double (*)(const float *a, const float *g, int64_t t, int64_t d,
                                int64_t p, double *gbuf);
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
// null, column k of op(A) is multiplied by kscale[k] while packing, and both
// op(A)'s column k and op(B)'s row k are packed as exact zeros where
// kscale[k] == 0 (so non-finite values of a dropped sample never reach C).
// parallel: split over the pool.  Returns a DPLORA_* status.
int gemm(const GemmKernel &kern, bool trans_a, bool trans_b, int64_t m, int64_t n,
         int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
         float beta, float *c, int64_t ldc, const float *kscale, bool parallel);

// Per-ISA kernels (defined in the *_scalar.cc, *_avx2.cc, *_avx512.cc files).
void gemm_micro_scalar(int64_t, const float *, const float *, float *, int64_t, int64_t,
                       int64_t, float);
double norm_direct_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *);
double norm_ghost_scalar(const float *, const float *, int64_t, int64_t, int64_t, double *);
double sumsq_scalar(const float *, int64_t);
float read_probe_scalar(const float *, int64_t);
double fma_probe_scalar(int64_t);
// 8 independent float multiply-adds per iteration (2 flops each).
constexpr double kFmaProbeFlopsScalar = 16.0;

#if defined(__x86_64__) || defined(_M_X64)
void gemm_micro_avx2(int64_t, const float *, const float *, float *, int64_t, int64_t,
                     int64_t, float);
double norm_direct_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *);
double norm_ghost_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *);
double sumsq_avx2(const float *, int64_t);
float read_probe_avx2(const float *, int64_t);
double fma_probe_avx2(int64_t);
// 12 ymm FMAs per iteration: 12 * 8 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx2 = 192.0;

void gemm_micro_avx512(int64_t, const float *, const float *, float *, int64_t, int64_t,
                       int64_t, float);
double norm_direct_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *);
double norm_ghost_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *);
double sumsq_avx512(const float *, int64_t);
float read_probe_avx512(const float *, int64_t);
double fma_probe_avx512(int64_t);
// 24 zmm FMAs per iteration: 24 * 16 lanes * 2 flops.
constexpr double kFmaProbeFlopsAvx512 = 768.0;
#endif

}  // namespace linalg
}  // namespace dplora
