/*
 * dplora.h: C API of the dp-lora kernels.
 *
 * The same kernels back the Node addon and the standalone static library
 * (CMake target `dplora`) for programs that do not run Node, such as edge
 * devices.  All tensors are dense row-major; sizes are int64_t.  Functions
 * return DPLORA_OK (0) or a negative DPLORA_E* code and never abort.
 *
 * Each section below is owned by one kernel family; keep edits inside it.
 */
#ifndef DPLORA_H
#define DPLORA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- core -- */

#define DPLORA_OK 0
#define DPLORA_EINVAL (-1)    /* bad argument (shape, value, null pointer)   */
#define DPLORA_EOVERFLOW (-2) /* input could overflow an integer accumulator */
#define DPLORA_ENOMEM (-3)    /* scratch allocation failed                   */
#define DPLORA_EENTROPY (-4)  /* the OS entropy source failed                */

/** Instruction-set paths. SCALAR is always built. */
typedef enum {
  DPLORA_ISA_SCALAR = 0,
  DPLORA_ISA_NEON = 1,
  DPLORA_ISA_AVX2 = 2,   /* AVX2 + FMA */
  DPLORA_ISA_AVX512 = 3  /* AVX-512 F/BW/DQ/VL */
} dplora_isa;

/** Name of an ISA ("scalar", "neon", "avx2", "avx512"), or "unknown". */
const char *dplora_isa_name(int isa);
/** 1 if this build contains the path and this CPU can run it. */
int dplora_isa_supported(int isa);
/**
 * The path in use. Chosen once at first use: DPLORA_ISA from the
 * environment if set and supported, else the best the CPU supports.
 */
int dplora_active_isa(void);
/** Force a path (tests, benchmarks). Returns DPLORA_EINVAL if unsupported. */
int dplora_set_isa(int isa);
/** Threads in the native pool (DPLORA_THREADS, default: core count). */
int dplora_num_threads(void);
/** Resize the pool (n >= 1). */
int dplora_set_num_threads(int n);

/* ------------------------------------------------------------- linalg -- */

/**
 * C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T, single precision.
 * op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides.
 * beta == 0 means C is write-only (NaN in C is not propagated).
 */
int dplora_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *a, int64_t lda, const float *b,
                 int64_t ldb, float beta, float *c, int64_t ldc);

typedef enum {
  DPLORA_NORM_AUTO = 0,   /* cheaper exact method by flop count */
  DPLORA_NORM_DIRECT = 1, /* form G_i blockwise, sum squares     */
  DPLORA_NORM_GHOST = 2,  /* <a a^T, g g^T>                      */
  DPLORA_NORM_BOUND = 3   /* (sum_t |a_t| |g_t|)^2, upper bound   */
} dplora_norm_method;

/**
 * Squared Frobenius norm of G_i = sum_t g_{i,t} a_{i,t}^T for each sample i.
 * a: [batch, seq, in_dim], g: [batch, seq, out_dim], out: [batch] doubles.
 * Products and sums are in double (direct and ghost agree to ~1e-13 of the
 * bound even on cancelling tokens).  AUTO runs DIRECT when
 * T*d*p <= T(T+1)/2*(d+p) (the multiply-adds of the two kernels), else GHOST.
 * Samples are split over the pool; each sample is computed by one thread, so
 * results do not depend on the thread count.  A NaN/Inf input makes that
 * sample's norm non-finite.
 */
int dplora_grad_norm_sq(const float *a, const float *g, int64_t batch,
                        int64_t seq, int64_t in_dim, int64_t out_dim,
                        int method, double *out);

/**
 * out[out_dim, in_dim] (+)= sum_{i,t} factors_i g_{i,t} a_{i,t}^T as one
 * blocked matrix product.  accumulate != 0 adds to out, else overwrites.
 * Samples whose factor is 0 (or not finite) are skipped entirely: NaN/Inf in
 * their a or g rows never reaches out.
 */
int dplora_clipped_sum(const float *a, const float *g, int64_t batch,
                       int64_t seq, int64_t in_dim, int64_t out_dim,
                       const float *factors, float *out, int accumulate);

typedef struct {
  int64_t clipped;   /* samples whose factor is < 1        */
  int64_t nonfinite; /* samples with NaN/Inf norm: factor 0 */
} dplora_clip_stats;

/**
 * factors_i = min(1, C / (sqrt(norms_sq_i) + 1e-6)), rounded toward zero to
 * float; a NaN, infinite or negative norms_sq_i gives 0 (counted in
 * stats->nonfinite).  stats may be null.  C must be finite and > 0.
 */
int dplora_clip_factors(const double *norms_sq, int64_t batch, double max_norm,
                        float *factors, dplora_clip_stats *stats);

/**
 * Clip each row of x[batch, dim] in place to L2 norm <= max_norm (norms in
 * double); a row holding NaN/Inf is zeroed (factor 0, counted).  factors
 * (length batch) and stats may be null.
 */
int dplora_clip_rows(float *x, int64_t batch, int64_t dim, double max_norm,
                     float *factors, dplora_clip_stats *stats);

/**
 * Roofline probes for benchmarks, run over all pool threads with the active
 * ISA.  Read bandwidth: a float sum-of-squares loop over x[0..n), `repeats`
 * times; returns bytes/s (0 for bad arguments).  FMA peak: each pool thread
 * runs `iters` iterations of independent FMA chains; returns flop/s (an FMA
 * counts 2).  `checksum` (may be null) receives the loops' result.
 */
double dplora_bench_read_bandwidth(const float *x, int64_t n, int repeats, double *checksum);
double dplora_bench_fma_peak(int64_t iters, double *checksum);

/* ---------------------------------------------------------------- rng -- */
/* (owned by the noise kernels; see native/kernels/chacha20*.cc)           */

/* ------------------------------------------------------------- fixed -- */
/* (owned by the fixed-point kernels; see native/kernels/intonly/)         */

#ifdef __cplusplus
}
#endif
#endif /* DPLORA_H */
