// CPU feature detection and the DPLORA_ISA request, read by the dispatch
// table (kernels.h) when the library loads.
#pragma once
#include "dplora.h"

namespace dplora {

// True if this build contains the path and this CPU can run it.
bool isa_supported(int isa);
// DPLORA_ISA from the environment if set and supported, else the best path
// the CPU supports.
int initial_isa();
// True if the CPU has AVX512_BF16 (with the AVX-512 path) and this build has its kernel.
bool cpu_has_avx512bf16();

}  // namespace dplora
