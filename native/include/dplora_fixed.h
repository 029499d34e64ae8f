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

#ifdef __cplusplus
}
#endif
#endif /* DPLORA_FIXED_H */
