// ISA detection and selection shared by every kernel family's dispatch.
#pragma once
#include "dplora.h"

namespace dplora {

// The ISA in use; resolved once (environment override DPLORA_ISA, else the
// best path the CPU supports).  Kernel dispatchers read it on every call,
// which is one relaxed atomic load.
int active_isa();
bool isa_supported(int isa);
bool set_isa(int isa);

}  // namespace dplora
