// Runtime ISA detection with the DPLORA_ISA override (the dispatch table in
// dispatch.cc reads it once at load).
#include "cpu.h"

#include <cstdlib>
#include <cstring>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace dplora {
namespace {

bool cpu_has(int isa) {
  switch (isa) {
    case DPLORA_ISA_SCALAR:
      return true;
#if defined(__x86_64__) || defined(__i386__)
    case DPLORA_ISA_AVX2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case DPLORA_ISA_AVX512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
#if defined(__aarch64__)
    case DPLORA_ISA_NEON:
      return true;  // Advanced SIMD is mandatory on AArch64.
#endif
    default:
      return false;
  }
}

int best_isa() {
  if (cpu_has(DPLORA_ISA_AVX512)) return DPLORA_ISA_AVX512;
  if (cpu_has(DPLORA_ISA_AVX2)) return DPLORA_ISA_AVX2;
  if (cpu_has(DPLORA_ISA_NEON)) return DPLORA_ISA_NEON;
  return DPLORA_ISA_SCALAR;
}

}  // namespace

bool isa_supported(int isa) {
  return cpu_has(isa);
}
bool cpu_has_avx512bf16() {
#if defined(__x86_64__)
  static const bool has = [] {
    if (!cpu_has(DPLORA_ISA_AVX512)) return false;
    // CPUID leaf 7 sub-leaf 1, EAX bit 5 (AVX512_BF16); the OS state of the zmm
    // registers is what the AVX-512 check above verified.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) == 0) return false;
    return (eax & (1u << 5)) != 0;
  }();
  return has;
#else
  return false;
#endif
}

int initial_isa() {
  const char *env = std::getenv("DPLORA_ISA");
  if (env != nullptr && *env != '\0') {
    for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
      if (std::strcmp(env, dplora_isa_name(isa)) == 0 && cpu_has(isa)) return isa;
    }
    // An unknown or unsupported request falls back to the best path; the
    // Node loader reports the mismatch (capabilities().isaRequested).
  }
  return best_isa();
}

}  // namespace dplora

extern "C" {

const char *dplora_isa_name(int isa) {
  switch (isa) {
    case DPLORA_ISA_SCALAR:
      return "scalar";
    case DPLORA_ISA_NEON:
      return "neon";
    case DPLORA_ISA_AVX2:
      return "avx2";
    case DPLORA_ISA_AVX512:
      return "avx512";
    default:
      return "unknown";
  }
}
int dplora_isa_supported(int isa) {
  return dplora::isa_supported(isa) ? 1 : 0;
}
}  // extern "C"
