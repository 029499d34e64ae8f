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
#define DPLORA_ESTALE (-5)    /* a packed operand was made for another ISA path */

/** Instruction-set paths. SCALAR is always built. */
typedef enum {
  DPLORA_ISA_SCALAR = 0,
  DPLORA_ISA_NEON = 1,
  DPLORA_ISA_AVX2 = 2,  /* AVX2 + FMA */
  DPLORA_ISA_AVX512 = 3 /* AVX-512 F/BW/DQ/VL */
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
int dplora_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc);

/**
 * A matrix op(B) packed once for repeated products with the active ISA's
 * GEMM kernel (a frozen weight: it never changes, so packing it on every
 * call, as dplora_sgemm must, is wasted work).  The handle owns a copy: later
 * changes to B are not seen (pack again).  op(B) is k x n: B is stored k x n
 * (trans_b = 0) or n x k (trans_b != 0) with row stride ldb.
 */
typedef struct dplora_packed_b dplora_packed_b;
int dplora_sgemm_pack_b(int trans_b, int64_t k, int64_t n, const float *b, int64_t ldb,
                        dplora_packed_b **out);
void dplora_packed_b_free(dplora_packed_b *p);
/** The ISA the handle was packed for (-1 for null). */
int dplora_packed_b_isa(const dplora_packed_b *p);
/** op(B)'s shape k x n (0 x 0 for null). */
void dplora_packed_b_dims(const dplora_packed_b *p, int64_t *k, int64_t *n);
/** Bytes the packed copy holds. */
int64_t dplora_packed_b_bytes(const dplora_packed_b *p);
/**
 * C = alpha * op(A) * op(B) + beta * C with op(B) from the handle (m x k op(A),
 * C m x n).  Bitwise equal to dplora_sgemm on the same B.  Returns
 * DPLORA_ESTALE if the active ISA changed since packing (pack again).
 */
int dplora_sgemm_packed(int trans_a, int64_t m, float alpha, const float *a, int64_t lda,
                        const dplora_packed_b *pb, float beta, float *c, int64_t ldc);
/**
 * dplora_sgemm_packed with a second product as the C init:
 * C = alpha * op(A) * B + (beta * C + alpha2 * A2 * B2), A2 m x k2 row-major (row stride
 * lda2), B2 (k2 x n) from another fp32 handle; each block of C rows gets the init right
 * before the main product, while it is in cache.  Bitwise equal to dplora_sgemm_packed(A2,
 * B2, alpha2, beta) followed by dplora_sgemm_packed(A, B, alpha, beta = 1).  fp32 handles
 * only and 1 <= k2 <= 64 (DPLORA_EINVAL otherwise); DPLORA_ESTALE when either handle was
 * packed for another ISA path.
 */
int dplora_sgemm_packed_init(int trans_a, int64_t m, float alpha, const float *a, int64_t lda,
                             const dplora_packed_b *pb, float beta, float *c, int64_t ldc,
                             float alpha2, const float *a2, int64_t lda2,
                             const dplora_packed_b *pb2);

/** Element types of a packed operand (dplora_packed_b_dtype). */
#define DPLORA_DTYPE_F32 0
#define DPLORA_DTYPE_BF16 1
/**
 * op(B) rounded to bf16 (round to nearest even) and packed once: a bf16
 * frozen weight, half the bytes of dplora_sgemm_pack_b's copy.
 * dplora_sgemm_packed with such a handle rounds op(A) to bf16 too and
 * accumulates the (exact) products in fp32: with vdpbf16ps where the CPU has
 * AVX512_BF16 and the AVX-512 path is active, else by widening both to fp32
 * for the active path's fp32 kernel.  Not bitwise equal to dplora_sgemm.
 */
int dplora_sgemm_pack_b_bf16(int trans_b, int64_t k, int64_t n, const float *b, int64_t ldb,
                             dplora_packed_b **out);
/** DPLORA_DTYPE_F32 or DPLORA_DTYPE_BF16 (-1 for null). */
int dplora_packed_b_dtype(const dplora_packed_b *p);
/** 1 if the active path multiplies bf16 handles natively (AVX512_BF16), 0 if it widens them. */
int dplora_bf16_native(void);
/**
 * dplora_sgemm_packed_init with a main handle pb that may also be bf16 (the init handle pb2
 * stays fp32): with a bf16 pb the init is the fp32 product written as the C init, block of C
 * rows by block of rows right before the bf16 updates; bitwise equal to
 * dplora_sgemm_packed(A2, B2, alpha2, beta) followed by dplora_sgemm_packed(A, B, alpha,
 * beta = 1).  An fp32 pb is dplora_sgemm_packed_init.  1 <= k2 <= 64.
 */
int dplora_sgemm_packed_base_init(int trans_a, int64_t m, float alpha, const float *a, int64_t lda,
                                  const dplora_packed_b *pb, float beta, float *c, int64_t ldc,
                                  float alpha2, const float *a2, int64_t lda2,
                                  const dplora_packed_b *pb2);
/**
 * Packs op(B) (the handle's k x n, B stored k x n or n x k when trans_b, row stride ldb) again
 * into the handle's own memory, in its element type: no allocation.  DPLORA_ESTALE when the
 * handle was packed for another ISA path (pack a new one).
 */
int dplora_packed_b_repack(dplora_packed_b *p, int trans_b, const float *b, int64_t ldb);

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
int dplora_grad_norm_sq(const float *a, const float *g, int64_t batch, int64_t seq, int64_t in_dim,
                        int64_t out_dim, int method, double *out);

/**
 * out[out_dim, in_dim] (+)= sum_{i,t} factors_i g_{i,t} a_{i,t}^T as one
 * blocked matrix product.  accumulate != 0 adds to out, else overwrites.
 * Samples whose factor is 0 (or not finite) are skipped entirely: NaN/Inf in
 * their a or g rows never reaches out.
 */
int dplora_clipped_sum(const float *a, const float *g, int64_t batch, int64_t seq, int64_t in_dim,
                       int64_t out_dim, const float *factors, float *out, int accumulate);

typedef struct {
  int64_t clipped;   /* samples whose factor is < 1        */
  int64_t nonfinite; /* samples with NaN/Inf norm: factor 0 */
} dplora_clip_stats;

/**
 * factors_i = min(1, C / (sqrt(norms_sq_i) + 1e-6)), rounded toward zero to
 * float; a NaN, infinite or negative norms_sq_i gives 0 (counted in
 * stats->nonfinite).  stats may be null.  C must be finite and > 0.
 */
int dplora_clip_factors(const double *norms_sq, int64_t batch, double max_norm, float *factors,
                        dplora_clip_stats *stats);

/**
 * Clip each row of x[batch, dim] in place to L2 norm <= max_norm (norms in
 * double); a row holding NaN/Inf is zeroed (factor 0, counted).  factors
 * (length batch) and stats may be null.
 */
int dplora_clip_rows(float *x, int64_t batch, int64_t dim, double max_norm, float *factors,
                     dplora_clip_stats *stats);

/*
 * Floating-point-sound per-sample clipping (the float tensor that is summed is
 * the one whose norm is clipped; sums of clipped tensors are taken in double).
 *
 * dplora_per_sample_grads: out[i] (out_dim x in_dim, row-major) =
 *   alpha * g_i^T a_i for each sample (a: batch x seq x in_dim, g: batch x seq
 *   x out_dim), each by one deterministic serial product (a narrow-side
 *   kernel when in_dim or out_dim <= 16 on AVX2/AVX-512, else SGEMM), the
 *   samples split over the pool.
 * dplora_rows_sumsq_f64: out[r] = sum_j x[r, j]^2 in double.
 * dplora_rows_scaled_sum_f64: out[j] += sum_r factors_r * x[r, j] in double;
 *   rows with a zero or non-finite factor are skipped (never read).
 * dplora_outer_scaled_sum_f64: out[j, k] += sum_r scale * factors_r * g[r, j]
 *   * a[r, k] in double (one token per sample); same skipping rule.  The
 *   narrow side's coefficient c = (scale * factors_r) * x takes two double
 *   roundings; the kept samples' terms c * y are summed from zero in
 *   ascending order, one multiply-add each (fused on AVX2/AVX-512), and the
 *   total is added to out once.  Both sums run the active ISA's kernel.
 * dplora_noisy_mean_f32: g[j] = float((sum[j] + g[j]) * scale) (g holds the
 *   float noise on entry); *nonfinite = how many results are not finite.
 */
int dplora_per_sample_grads(const float *a, const float *g, int64_t batch, int64_t seq,
                            int64_t in_dim, int64_t out_dim, float alpha, float *out);
int dplora_rows_sumsq_f64(const float *x, int64_t rows, int64_t n, double *out);
int dplora_rows_scaled_sum_f64(const float *x, int64_t rows, int64_t n, const float *factors,
                               double *out);
int dplora_outer_scaled_sum_f64(const float *a, const float *g, int64_t rows, int64_t in_dim,
                                int64_t out_dim, const float *factors, double scale, double *out);
int dplora_noisy_mean_f32(const double *sum, float *g, int64_t n, double scale, int64_t *nonfinite);

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
/*
 * ChaCha20 (RFC 8439) as a counter-based stream.  A stream is a 32-byte key
 * and a 12-byte nonce; it is a sequence of 32-bit words indexed by a 64-bit
 * POSITION.  Word j is word (j mod 16) of ChaCha20 block b = j / 16 (words
 * are the little-endian 32-bit words of the 64-byte block), where block b
 * uses the RFC 8439 state with
 *     state[12] = (uint32) b                       (the RFC block counter)
 *     state[13] = nonce word 0 + (uint32)(b >> 32)  (mod 2^32)
 *     state[14..15] = nonce words 1..2.
 * For b < 2^32 this is exactly RFC 8439 with counter b; with nonce word 0 = 0
 * it is Bernstein's original ChaCha20 with a 64-bit block counter.  The
 * keystream bytes are the stream words in little-endian order.
 *
 * Every bulk function reads fixed words determined only by the element index
 * and `position`, so results do not depend on the thread count or the ISA
 * path.  Words consumed (the caller advances its position by this much):
 *   fill_u32:          n
 *   uniform_f64:       2n   (element i: words 2i, 2i+1)
 *   gaussian_f32:      16 * ceil(n / 16)  (see dplora_rng_gaussian_f32)
 *   gaussian_f64:      4 * ceil(n / 2)
 *   discrete_gaussian: 2^26 * ceil(n / 64) (the function stores the new
 *                      position).
 * A call whose words would pass position 2^64 - 1 returns DPLORA_EOVERFLOW.
 */

/** One RFC 8439 ChaCha20 block (section 2.3): 64 bytes into out. */
int dplora_chacha20_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12],
                          uint8_t out[64]);

/** Fills buf with n bytes from the OS entropy source (getrandom/getentropy). */
int dplora_os_entropy(uint8_t *buf, size_t n);

/** Stream words [position, position + n) into out. */
int dplora_rng_fill_u32(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                        uint32_t *out, int64_t n);

/**
 * 53-bit uniforms in [0, 1): out[i] = ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53
 * with w0, w1 the words position + 2i, position + 2i + 1.
 */
int dplora_rng_uniform_f64(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                           double *out, int64_t n);

/** Words one Gaussian call of n elements consumes. */
uint64_t dplora_rng_gaussian_f32_words(int64_t n);
uint64_t dplora_rng_gaussian_f64_words(int64_t n);

/**
 * N(0, std^2) samples in single precision by Box-Muller.  Elements come in
 * groups of 16 using the 16 words position + 16g .. + 16g + 15: lane l < 8
 * takes u1 from word l and the angle from word 8 + l, and gives
 * out[16g + l] = r cos(theta), out[16g + 8 + l] = r sin(theta).
 * r = sqrt(-2 ln u1), u1 = float(w >> 1 | 1) * 2^-31 in (0, 1] (so |z| is
 * at most 6.56: the mass beyond that, 5e-11, is not produced);
 * theta = 2 pi w / 2^32.  add != 0 adds the noise to out in place
 * (out[i] = fma(z, (float) std, out[i])), else writes z * (float) std.
 * The result is bitwise identical on every ISA path and thread count.
 * std must be finite, >= 0 and at most FLT_MAX.
 */
int dplora_rng_gaussian_f32(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                            float *out, int64_t n, double std_dev, int add);

/**
 * Double-precision Box-Muller with the C library's log/sin/cos: pair p uses
 * words position + 4p .. + 4p + 3 (u1 = 1 - U53(w0, w1), theta = 2 pi
 * U53(w2, w3)), out[2p] = r cos, out[2p + 1] = r sin, times std.
 */
int dplora_rng_gaussian_f64(const uint8_t key[32], const uint8_t nonce[12], uint64_t position,
                            double *out, int64_t n, double std_dev, int add);

/**
 * Exact discrete Gaussian N_Z(0, sigma^2), sigma^2 = num / den > 0
 * (rejection from a staircase envelope with the Bernoulli(exp(-gamma))
 * tests of Canonne, Kamath and Steinke 2020; see
 * native/kernels/intonly/discrete_gaussian.cc), integer arithmetic only.
 * Samples come in groups of 64; group g reads the stream
 * sequentially from its own region of 2^26 words starting at
 * *position + g * 2^26, so groups run in parallel and the output does not
 * depend on the thread count.  *position advances by ceil(n / 64) * 2^26.
 * A sample that does not fit int64 (|y| >= 2^63), or a group needing more
 * than 2^26 words (expected: about 600-800)
 * gives DPLORA_EOVERFLOW (the output is then unspecified, *position kept).
 */
int dplora_rng_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12], uint64_t *position,
                                 uint64_t sigma_sq_num, uint64_t sigma_sq_den, int64_t *out,
                                 int64_t n);

/* ------------------------------------------------------------- fixed -- */
/*
 * Fixed-point DP-SGD.  The quantizer is the only floating-point code; the
 * clipping, summation and noise run in integer-only translation units
 * (native/kernels/intonly/, compiled with -mgeneral-regs-only and scanned
 * for floating-point instructions by test/fixed_no_float.test.ts).
 */

#define DPLORA_FIXED_MAX_FRAC_BITS 30
/** Largest |value| the quantizer produces (symmetric range). */
#define DPLORA_FIXED_QMAX 2147483647
/** batch * clip_int must be <= this (2^62), leaving 2^62 of int64 for noise. */
#define DPLORA_FIXED_SUM_BOUND (INT64_C(1) << 62)

typedef struct {
  int64_t saturated; /* finite or infinite values clamped to +-QMAX */
  int64_t nan;       /* NaN values, stored as 0                    */
} dplora_quantize_stats;

/**
 * out[i] = round-half-even(x[i] * 2^frac_bits), clamped to
 * [-QMAX, QMAX]; NaN -> 0.  0 <= frac_bits <= 30.
 */
int dplora_fixed_quantize(const float *x, int64_t n, int frac_bits, int32_t *out,
                          dplora_quantize_stats *stats);
/** out[i] = q[i] * 2^-frac_bits (exact for float when |q| < 2^24). */
int dplora_fixed_dequantize_i32(const int32_t *q, int64_t n, int frac_bits, float *out);
/** out[i] = q[i] * 2^-frac_bits, rounded to double. */
int dplora_fixed_dequantize_i64(const int64_t *q, int64_t n, int frac_bits, double *out);

/**
 * Clipped sum in integers.  grads is [batch, dim] row-major; for each sample
 * n2 = sum g^2 (exact, 128-bit); if n2 > clip_int^2 the row is scaled by
 * k / 2^32 with k = floor(clip_int * 2^32 / ceil_isqrt(n2)), each magnitude
 * truncated toward zero, so the clipped row has sum v^2 <= clip_int^2.
 * sum[dim] = sum over samples (overwritten), exact in int64.
 * Requires 1 <= clip_int <= 2^31 - 1 and batch * clip_int <= 2^62 (else
 * DPLORA_EOVERFLOW), so |sum| <= 2^62 whatever the input.
 * clipped (may be NULL) receives the number of rows that were scaled.
 */
int dplora_fixed_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                          int64_t *sum, int64_t *clipped);

/**
 * sum[i] += DGauss(sigma^2 = num/den), the noise drawn as by
 * dplora_rng_discrete_gaussian from *position (advanced); the addition is
 * exact and then saturated to [INT64_MIN, INT64_MAX] (saturated counts it).
 */
int dplora_fixed_add_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12],
                                       uint64_t *position, uint64_t num, uint64_t den, int64_t *sum,
                                       int64_t n, int64_t *saturated);

#ifdef __cplusplus
}
#endif
#endif /* DPLORA_H */
