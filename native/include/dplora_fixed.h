/*
 * dp-lora integer mode, freestanding C API (no floating point, no heap, no
 * threads, no exceptions).  Everything declared here is implemented in the
 * float-free units native/kernels/intonly/ and native/kernels/fixed/, which
 * build for 32- and 64-bit soft-float targets (scripts/nofpu-tests.sh runs
 * them on RV64IMAC, Cortex-M3 and ARMv5TE under qemu with the FPU disabled).
 * Functions return DPLORA_OK (0) or a negative DPLORA_E* code.  Scratch
 * buffers are supplied by the caller; entropy comes from a caller key or a
 * TRNG callback.
 */
#ifndef DPLORA_FIXED_H
#define DPLORA_FIXED_H
#include <stddef.h>
#include <stdint.h>

#include "dplora.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A hardware random source: fill buf with n bytes, return 0 on success. */
typedef int (*dplora_trng_fn)(void *ctx, uint8_t *buf, size_t n);

/** key[32] from the TRNG (DPLORA_EENTROPY when it reports failure). */
int dplora_fx_key_from_trng(dplora_trng_fn trng, void *ctx, uint8_t key[32]);

/**
 * dplora_fixed_clip_sum on one thread; scratch holds `batch` int64 values.
 */
int dplora_fx_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                       int64_t *sum, int64_t *clipped, int64_t *scratch);

/** dplora_rng_discrete_gaussian on one thread (same samples, same positions). */
int dplora_fx_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12], uint64_t *position,
                                uint64_t num, uint64_t den, int64_t *out, int64_t n);

/**
 * dplora_fixed_add_discrete_gaussian on one thread; scratch holds n int64
 * values (the noise, drawn before sum is touched).
 */
int dplora_fx_add_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12],
                                    uint64_t *position, uint64_t num, uint64_t den, int64_t *sum,
                                    int64_t n, int64_t *saturated, int64_t *scratch);

/* ------------------------------------------------- integer LoRA step -- */
/*
 * One private LoRA step in integers (fixed/step.cc).  Model: a frozen int8
 * base W0 [hidden][d_in] requantized per output channel (acc * mult >>
 * shift, rounded, as TFLite Micro / CMSIS-NN), LoRA A [rank][d_in] and
 * B [hidden][rank] and a head [classes][hidden] in fixed point with
 * frac_bits fraction bits:
 *   z = A x,  h = W0q(x) + (B z) >> f,  a = relu(h),  s = (head a) >> f,
 * and with the extensions (layers = 2, biases, input and LoRA scale shifts, head bias):
 *   z = (A x) >> in_shift,  h1 = W0q(x) + bias0 + (B z) >> (f - lora_shift),  a1 = relu(h1),
 *   z2 = (A2 a1) >> f,  h2 = W1q(a1) + bias1 + (B2 z2) >> (f - lora_shift),  a = relu(h2),
 *   s = (head a) >> f + head_b;
 * parameters trained, in this order: A, B, [A2, B2], head, [head_b],
 * loss = squared error of s against the one-hot target 2^f
 * (DPLORA_FX_SQUARED) or softmax cross-entropy (DPLORA_FX_CROSS_ENTROPY,
 * exp by an integer polynomial and squaring).  Per record the LoRA and head gradients
 * are materialized as one int32 row (saturated), clipped exactly to
 * clip_int (integer norm, dplora_fixed_clip_sum's rule), summed in int64;
 * discrete Gaussian noise N_Z(0, sigma2_num / sigma2_den) is added once per
 * step.  Update (post-processing of the noisy sum; g = noisy_sum /
 * expected_batch, truncated toward zero):
 *   DPLORA_FX_SGD:       param -= g * lr_num / lr_den (truncated);
 *   DPLORA_FX_SIGN_MOMENTUM: m = (m * beta_num + g * (beta_den - beta_num)) /
 *     beta_den (truncated; state.m), param -= sign(m) * floor(lr_num 2^f /
 *     lr_den)  (sign descent with momentum, an integer stand-in for Adam);
 *   DPLORA_FX_MOMENTUM:  m as above, param -= m * lr_num / lr_den (truncated; heavy-ball
 *     momentum in exponential-average form).  Records are
 * Poisson-sampled with exact Bernoulli(sample_num / sample_den) on the ChaCha20 stream. The state's
 * step counter refuses a step past max_steps (DPLORA_EBUDGET) before any update.  Stream use per
 * step: words [position, position + 2^26) for sampling, then the noise (advances position).
 */
#define DPLORA_EBUDGET (-16) /* the planned privacy budget is spent */
#define DPLORA_FX_SQUARED 0
#define DPLORA_FX_CROSS_ENTROPY 1
#define DPLORA_FX_SGD 0
#define DPLORA_FX_SIGN_MOMENTUM 1
#define DPLORA_FX_MOMENTUM 2

typedef struct {
  int32_t d_in, hidden, rank, classes;
  const int8_t *w0;       /* [hidden][d_in] frozen base                  */
  const int32_t *w0_mult; /* [hidden] requantization multipliers (> 0)   */
  const int8_t *w0_shift; /* [hidden] right shifts, 0..62                */
  int32_t frac_bits;      /* 1..24                                       */
  int64_t clip_int;       /* C_int, 1..2^31-1                            */
  uint64_t sigma2_num, sigma2_den;
  uint64_t sample_num, sample_den; /* Poisson rate, den <= 2^32         */
  int64_t lr_num, lr_den;          /* learning rate as a rational > 0   */
  int64_t expected_batch;          /* sample rate * dataset size, >= 1  */
  uint64_t max_steps;              /* the planned step budget           */
  int32_t loss;                    /* DPLORA_FX_SQUARED or _CROSS_ENTROPY */
  int32_t update;                  /* DPLORA_FX_SGD or _SIGN_MOMENTUM   */
  int32_t beta_num, beta_den;      /* momentum, 0 <= num < den <= 2^16  */
  /* Extensions; all zero (and NULL) is the one-layer model above. */
  int32_t layers;         /* 0 or 1: one layer; 2: a second frozen layer W1 with LoRA A2, B2 */
  const int8_t *w1;       /* [hidden][hidden] second frozen layer (layers == 2)          */
  const int32_t *w1_mult; /* [hidden] real row scale of W1 = w1_mult / 2^w1_shift (> 0)  */
  const int8_t *w1_shift; /* [hidden] 16..62                                             */
  const int32_t *bias0;   /* [hidden] bias of the first frozen layer, Q f (NULL: none)    */
  const int32_t *bias1;   /* [hidden] bias of the second frozen layer, Q f (NULL: none)   */
  int32_t in_shift;       /* 0..16: z = (A x) >> in_shift (A in Q f per 2^in_shift inputs) */
  int32_t lora_shift;     /* 0..min(8, frac_bits - 1): LoRA output scaled by 2^lora_shift  */
  int32_t head_bias;      /* 1: a trainable head bias state.head_b [classes]             */
} dplora_fx_step_config;

typedef struct {
  int32_t *a;    /* [rank][d_in]      */
  int32_t *b;    /* [hidden][rank]    */
  int32_t *head; /* [classes][hidden] */
  int32_t *m;    /* momentum, one per parameter (A, B, head order); NULL for SGD */
  uint64_t steps;
  uint64_t position;
  int32_t *a2;     /* [rank][hidden] LoRA A of the second layer (layers == 2) */
  int32_t *b2;     /* [hidden][rank] LoRA B of the second layer (layers == 2) */
  int32_t *head_b; /* [classes] head bias (head_bias == 1)                    */
} dplora_fx_step_state;

/** Scratch bytes dplora_fx_step needs (0 for a bad configuration). */
size_t dplora_fx_step_scratch_bytes(const dplora_fx_step_config *cfg);

/**
 * One step over the dataset x [n][d_in] (int8), labels y [n] in
 * [0, classes).  batch (may be NULL) receives the number of records sampled.
 */
int dplora_fx_step(const dplora_fx_step_config *cfg, dplora_fx_step_state *st,
                   const uint8_t key[32], const uint8_t nonce[12], const int8_t *x,
                   const int32_t *y, int64_t n, void *scratch, size_t scratch_bytes,
                   int64_t *batch);

/** Predicted class of one record (argmax of the scores). */
int32_t dplora_fx_predict(const dplora_fx_step_config *cfg, const dplora_fx_step_state *st,
                          const int8_t *x, void *scratch, size_t scratch_bytes);

#ifdef __cplusplus
}
#endif
#endif /* DPLORA_FIXED_H */
