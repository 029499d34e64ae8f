// The dispatch table of every kernel family: one table per ISA, and the
// active one chosen at load (DPLORA_ISA if set and supported, else the best
// path of the CPU) and swapped by dplora_set_isa().
#include <atomic>

#include "cpu.h"
#include "dplora.h"
#include "kernels.h"

namespace dplora {
namespace {

using namespace linalg;
using namespace clip;

// No native bf16 micro-kernel: bf16 panels are widened for the fp32 kernel.
constexpr GemmBf16Kernel kBf16Fallback = {0, 0, 0, 0, 0, nullptr, nullptr};

constexpr Kernels kScalar = {
    DPLORA_ISA_SCALAR,    {4, 8, 64, 256, 512, gemm_micro_scalar, nullptr, nullptr},
    norm_direct_scalar,   norm_ghost_scalar,
    sumsq_scalar,         chacha::blocks_scalar,
    gauss::groups_scalar, read_probe_scalar,
    fma_probe_scalar,     kFmaProbeFlopsScalar,
    outer_sum_scalar,     kBf16Fallback,
};

#if defined(__x86_64__) || defined(_M_X64)
constexpr Kernels kAvx2 = {
    DPLORA_ISA_AVX2,
    {6, 16, 72, 256, 1024, gemm_micro_avx2, gemm_skinny_avx2, gemm_micro_rows_avx2},
    norm_direct_avx2,
    norm_ghost_avx2,
    sumsq_avx2,
    chacha::blocks_avx2,
    gauss::groups_avx2,
    read_probe_avx2,
    fma_probe_avx2,
    kFmaProbeFlopsAvx2,
    outer_sum_avx2,
    kBf16Fallback,
};
constexpr Kernels kAvx512 = {
    DPLORA_ISA_AVX512,
    // KC 384: a 768-deep product in two k blocks; 0.7-1.2% faster than 256 (Zen 5, paired).
    {12, 32, 96, 384, 1024, gemm_micro_avx512, gemm_skinny_avx512, gemm_micro_rows_avx512},
    norm_direct_avx512,
    norm_ghost_avx512,
    sumsq_avx512,
    chacha::blocks_avx512,
    gauss::groups_avx512,
    read_probe_avx512,
    fma_probe_avx512,
    kFmaProbeFlopsAvx512,
    outer_sum_avx512,
    kBf16Fallback,
};
// The AVX-512 table with the AVX512_BF16 micro-kernel, used for the AVX-512
// path where the CPU has AVX512_BF16 (everything else is kAvx512's).
constexpr Kernels with_bf16(Kernels k) {
  // KC = 768: every pass over C costs a read and a write of C (from L3 for a large m), and a
  // 768-deep bf16 B slice (48 KB per 32 columns) still streams well.  Measured on Zen 5
  // (2048 x 768 x 768, one thread): KC 256 -> 0.54 of the bf16 peak, KC 768 -> 0.74.
  constexpr GemmBf16Kernel bf16 = {
      kBf16MrAvx512,         kBf16NrAvx512, 48, 768, 1024, gemm_bf16_micro_avx512bf16,
      pack_a_bf16_avx512bf16};
  k.bf16 = bf16;
  return k;
}
constexpr Kernels kAvx512Bf16 = with_bf16(kAvx512);
#endif

#if defined(__aarch64__)
constexpr Kernels kNeon = {
    DPLORA_ISA_NEON,    {8, 12, 128, 256, 960, gemm_micro_neon, nullptr, nullptr},
    norm_direct_neon,   norm_ghost_neon,
    sumsq_neon,         chacha::blocks_neon,
    gauss::groups_neon, read_probe_neon,
    fma_probe_neon,     kFmaProbeFlopsNeon,
    outer_sum_scalar,   kBf16Fallback,
};
#endif

// The active table; the function-local static makes first use safe even
// from another translation unit's static initializer.
std::atomic<const Kernels *> &active_slot() {
  static std::atomic<const Kernels *> slot{&kernels_for(initial_isa())};
  return slot;
}
// Fills the slot when the library is loaded, not at the first kernel call.
const bool kFilledAtLoad = (active_slot(), true);

}  // namespace

const Kernels &kernels_for(int isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == DPLORA_ISA_AVX512) return cpu_has_avx512bf16() ? kAvx512Bf16 : kAvx512;
  if (isa == DPLORA_ISA_AVX2) return kAvx2;
#endif
#if defined(__aarch64__)
  if (isa == DPLORA_ISA_NEON) return kNeon;
#endif
  (void)isa;
  return kScalar;
}

const Kernels &kernels() {
  return *active_slot().load(std::memory_order_relaxed);
}

int active_isa() {
  return kernels().isa;
}

bool set_isa(int isa) {
  if (!isa_supported(isa)) return false;
  active_slot().store(&kernels_for(isa), std::memory_order_relaxed);
  return true;
}

}  // namespace dplora

extern "C" {

int dplora_active_isa(void) {
  return dplora::active_isa();
}
int dplora_set_isa(int isa) {
  return dplora::set_isa(isa) ? DPLORA_OK : DPLORA_EINVAL;
}

}  // extern "C"
