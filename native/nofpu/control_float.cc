// Control for scripts/nofpu-tests.sh: a floating-point multiply that the
// FPU-less checks must catch (soft-float helper symbol, failed freestanding
// link, or a trap when built with FP instructions and run on a CPU without
// an FPU).  Linked into the KAT program only when NOFPU_INJECT_FLOAT is set.
#include <stdint.h>

volatile double nofpu_control_x = 3.0;

extern "C" uint64_t nofpu_control_float(uint64_t v) {
  // 32-bit conversions: the VFP has instructions for them (no helper).
  return uint32_t(nofpu_control_x * double(uint32_t(v & 0xffff)));
}
