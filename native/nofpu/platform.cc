// See platform.h.  Float-free; built with -ffreestanding on the targets.
#include "platform.h"

#if defined(NOFPU_HOSTED)
#include <stdlib.h>
#include <unistd.h>
#endif

namespace nofpu {
namespace {

size_t length(const char *s) {
  size_t n = 0;
  while (s[n] != 0) ++n;
  return n;
}

#if defined(NOFPU_HOSTED)
void write_out(const char *s, size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(1, s, n);
    if (k <= 0) return;
    s += k;
    n -= size_t(k);
  }
}
[[noreturn]] void do_exit(int status) {
  ::exit(status);
}
#elif defined(__riscv)
long sys3(long nr, long a0, long a1, long a2) {
  register long x10 __asm__("a0") = a0;
  register long x11 __asm__("a1") = a1;
  register long x12 __asm__("a2") = a2;
  register long x17 __asm__("a7") = nr;
  __asm__ volatile("ecall" : "+r"(x10) : "r"(x11), "r"(x12), "r"(x17) : "memory");
  return x10;
}
void write_out(const char *s, size_t n) {
  sys3(64, 1, long(s), long(n));
}
[[noreturn]] void do_exit(int status) {
  for (;;) sys3(93, status, 0, 0);
}
#elif defined(__arm__) && (defined(__linux__) || defined(NOFPU_LINUX_ARM))
long sys3(long nr, long a0, long a1, long a2) {
  register long r0 __asm__("r0") = a0;
  register long r1 __asm__("r1") = a1;
  register long r2 __asm__("r2") = a2;
  register long r7 __asm__("r7") = nr;
  __asm__ volatile("svc #0" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
  return r0;
}
void write_out(const char *s, size_t n) {
  sys3(4, 1, long(s), long(n));
}
[[noreturn]] void do_exit(int status) {
  for (;;) sys3(1, status, 0, 0);
}
#elif defined(__arm__)
// ARM semihosting (bkpt 0xAB on M-profile).
int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
void write_out(const char *s, size_t) {
  semihost(0x04, s);
}  // SYS_WRITE0
[[noreturn]] void do_exit(int status) {
  // SYS_EXIT: ApplicationExit (qemu exits 0) or RunTimeErrorUnknown (1).
  const uintptr_t reason = status == 0 ? 0x20026u : 0x20023u;
  for (;;) semihost(0x18, reinterpret_cast<const void *>(reason));
}
#else
#error "no platform layer for this target"
#endif

}  // namespace

void put(const char *s) {
  write_out(s, length(s));
}

void put_hex(uint64_t v) {
  char b[17];
  for (int i = 0; i < 16; ++i) b[i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  b[16] = 0;
  put(b);
}

[[noreturn]] void finish(int status) {
  do_exit(status);
}

}  // namespace nofpu

#if defined(NOFPU_HOSTED)
int main() {
  nofpu::finish(nofpu_main());
}
#else
// Freestanding: the compiler may emit calls to these.
extern "C" {
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *dp = static_cast<unsigned char *>(d);
  const unsigned char *sp = static_cast<const unsigned char *>(s);
  for (size_t i = 0; i < n; ++i) dp[i] = sp[i];
  return d;
}
void *memmove(void *d, const void *s, size_t n) {
  unsigned char *dp = static_cast<unsigned char *>(d);
  const unsigned char *sp = static_cast<const unsigned char *>(s);
  if (dp < sp) {
    for (size_t i = 0; i < n; ++i) dp[i] = sp[i];
  } else {
    for (size_t i = n; i > 0; --i) dp[i - 1] = sp[i - 1];
  }
  return d;
}
void *memset(void *d, int c, size_t n) {
  unsigned char *dp = static_cast<unsigned char *>(d);
  for (size_t i = 0; i < n; ++i) dp[i] = static_cast<unsigned char>(c);
  return d;
}
int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = static_cast<const unsigned char *>(a);
  const unsigned char *y = static_cast<const unsigned char *>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

#if defined(__arm__) && !defined(__linux__) && !defined(NOFPU_LINUX_ARM)
// Bare Cortex-M: vector table (initial stack, reset) and reset handler.
extern char __bss_start__[], __bss_end__[];
static uint64_t stack_area[4096];  // 32 KiB
void reset_handler() {
  for (char *p = __bss_start__; p < __bss_end__; ++p) *p = 0;
  nofpu::finish(nofpu_main());
}
void fault_handler() {
  nofpu::put("FAULT\n");  // e.g. an FP instruction on a core without an FPU
  nofpu::finish(3);
}
__attribute__((section(".vectors"), used)) void *const vectors[16] = {
    reinterpret_cast<char *>(stack_area) + sizeof(stack_area),
    reinterpret_cast<void *>(reset_handler),
    reinterpret_cast<void *>(fault_handler),  // NMI
    reinterpret_cast<void *>(fault_handler),  // HardFault
    reinterpret_cast<void *>(fault_handler),  // MemManage
    reinterpret_cast<void *>(fault_handler),  // BusFault
    reinterpret_cast<void *>(fault_handler),  // UsageFault
};
#else
// Linux user mode: the kernel enters here with the stack set up.
void _start() {
  nofpu::finish(nofpu_main());
}
#endif
}  // extern "C"
#endif
