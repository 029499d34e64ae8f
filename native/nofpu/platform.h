// Minimal platform layer of the FPU-less test programs: text output and
// exit, with no libc.  One implementation per target in platform.cc:
// Linux system calls (RISC-V 64, ARM EABI), ARM semihosting (bare
// Cortex-M under qemu-system-arm), or the C library (the x86-64 reference).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace nofpu {
void put(const char *s);
void put_hex(uint64_t v);  // 16 hex digits
[[noreturn]] void finish(int status);
}  // namespace nofpu

// The test program's body; returns the exit status.
int nofpu_main();
