// Per-ISA tables of the linalg kernels, selected on every call from
// dplora::active_isa() (one relaxed atomic load).
#include "cpu.h"
#include "linalg_kernels.h"

namespace dplora {
namespace linalg {
namespace {

const LinalgKernels kScalar = {
    {4, 8, 64, 256, 512, gemm_micro_scalar},
    norm_direct_scalar,
    norm_ghost_scalar,
    sumsq_scalar,
    read_probe_scalar,
    fma_probe_scalar,
    kFmaProbeFlopsScalar,
};

#if defined(__x86_64__) || defined(_M_X64)
const LinalgKernels kAvx2 = {
    {6, 16, 72, 256, 1024, gemm_micro_avx2},
    norm_direct_avx2,
    norm_ghost_avx2,
    sumsq_avx2,
    read_probe_avx2,
    fma_probe_avx2,
    kFmaProbeFlopsAvx2,
};
const LinalgKernels kAvx512 = {
    {12, 32, 96, 256, 1024, gemm_micro_avx512},
    norm_direct_avx512,
    norm_ghost_avx512,
    sumsq_avx512,
    read_probe_avx512,
    fma_probe_avx512,
    kFmaProbeFlopsAvx512,
};
#endif

#if defined(__aarch64__)
const LinalgKernels kNeon = {
    {8, 12, 128, 256, 960, gemm_micro_neon},
    norm_direct_neon,
    norm_ghost_neon,
    sumsq_neon,
    read_probe_neon,
    fma_probe_neon,
    kFmaProbeFlopsNeon,
};
#endif

}  // namespace

const LinalgKernels &kernels_for(int isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == DPLORA_ISA_AVX512) return kAvx512;
  if (isa == DPLORA_ISA_AVX2) return kAvx2;
#endif
#if defined(__aarch64__)
  if (isa == DPLORA_ISA_NEON) return kNeon;
#endif
  (void)isa;
  return kScalar;
}

const LinalgKernels &active_kernels() {
  return kernels_for(active_isa());
}

}  // namespace linalg
}  // namespace dplora
