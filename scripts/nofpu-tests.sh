#!/usr/bin/env bash
# Proof of the integer mode on CPUs without a floating-point unit.
#
# Builds the float-free units (native/kernels/intonly, native/kernels/fixed
# minus the threaded *_host.cc) and the test program native/nofpu/ (known
# answers + integer LoRA steps) freestanding (no libc, no exceptions, no
# heap) for three soft-float targets, then for each target:
#   1. scans every object and the linked program (scripts/fp-scan.js with the
#      target's binutils): FP instructions/registers, soft-float and libm
#      symbols (nm -u), FP build attributes;
#   2. links with -nostdlib against libgcc stripped of every floating-point
#      member (ARM) or no libgcc at all (RV64), so a float is a link error;
#   3. runs it under qemu on a CPU that traps on floating point:
#        RV64IMAC lp64     qemu-riscv64 -cpu rv64,f=false,d=false
#        Cortex-M3 (soft)  qemu-system-arm -M mps2-an385 -cpu cortex-m3, semihosting
#        ARMv5TE (soft)    qemu-arm -cpu pxa250
#      and requires its output to equal the x86-64 build's byte for byte;
#   4. runs the controls: the same program with an injected double multiply
#      must be caught by the scan and fail the freestanding link, and built
#      with FP instructions it must trap on the FPU-less CPU.
# Installs its Debian packages when missing (root + apt-get).  ~1-2 min.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build-nofpu
rm -rf "$OUT"
mkdir -p "$OUT"

need=()
command -v riscv64-linux-gnu-g++ > /dev/null || need+=(g++-riscv64-linux-gnu)
command -v arm-none-eabi-g++ > /dev/null || need+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-riscv64 > /dev/null || need+=(qemu-user)
command -v qemu-system-arm > /dev/null || need+=(qemu-system-arm)
if ((${#need[@]})); then
  echo "nofpu: installing ${need[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > "$OUT/apt.log"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > "$OUT/apt.log"
  fi
fi

mapfile -t LIB_SRC < <(ls native/kernels/intonly/*.cc native/kernels/fixed/*.cc | grep -v '_host\.cc$')
PROG_SRC=(native/nofpu/kat.cc native/nofpu/platform.cc)
[[ -f native/nofpu/step_test.cc ]] && PROG_SRC+=(native/nofpu/step_test.cc)
STEP_DEF=()
[[ -f native/nofpu/step_test.cc ]] && STEP_DEF=(-DNOFPU_WITH_STEP)
COMMON=(-std=c++17 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -fno-exceptions -fno-rtti
  -fno-threadsafe-statics -fno-asynchronous-unwind-tables -fno-unwind-tables
  -fno-tree-loop-distribute-patterns -DDPLORA_FREESTANDING=1 "${STEP_DEF[@]}"
  -Inative/include -Inative/kernels -Inative/kernels/rng -Inative/nofpu)
fail=0
bad() {
  echo "nofpu: FAIL: $*"
  fail=1
}

# x86-64 reference: hosted, native __int128; and the same with the 128-bit
# struct forced (the two types checked against each other).
for v in native struct; do
  extra=()
  [[ $v == struct ]] && extra=(-DDPLORA_FORCE_U128_STRUCT)
  g++ "${COMMON[@]}" -DNOFPU_HOSTED "${extra[@]}" "${LIB_SRC[@]}" "${PROG_SRC[@]}" -o "$OUT/kat-x86-$v"
  "$OUT/kat-x86-$v" > "$OUT/x86-$v.txt" || bad "x86-64 ($v) known answers"
done
cmp -s "$OUT/x86-native.txt" "$OUT/x86-struct.txt" || bad "x86-64: native __int128 and the struct differ"
cp "$OUT/x86-native.txt" "$OUT/reference.txt"

# libgcc without any member that defines a floating-point helper.
int_libgcc() { # cxx flags... -> path of the filtered copy
  local cxx=$1 dir=$2
  shift 2
  local src
  src=$("$cxx" "$@" -print-libgcc-file-name)
  cp "$src" "$dir/libgcc-int.a"
  local members
  members=$(nm -A --defined-only "$dir/libgcc-int.a" 2> /dev/null | node -e '
    const { FP_SYMBOL } = require("./scripts/fp-scan.js");
    const out = new Set();
    for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
      const m = /^[^:]*:([^:]+):\S*\s+[A-Za-z]\s+(\S+)$/.exec(l.trim());
      if (m && FP_SYMBOL.test(m[2])) out.add(m[1]);
    }
    console.log([...out].join(" "));')
  # shellcheck disable=SC2086
  [[ -n $members ]] && ar d "$dir/libgcc-int.a" $members
  echo "$dir/libgcc-int.a"
}

# build NAME CXX PREFIX "CFLAGS" "LDFLAGS" LIBMODE -> $OUT/NAME/kat.elf
build() {
  local name=$1 cxx=$2 prefix=$3 cflags=$4 ldflags=$5 libmode=$6
  local dir="$OUT/$name"
  mkdir -p "$dir"
  local objs=() s o
  # shellcheck disable=SC2086
  for s in "${LIB_SRC[@]}" "${PROG_SRC[@]}" native/nofpu/int_helpers.cc; do
    o="$dir/$(basename "$s" .cc).o"
    "$cxx" "${COMMON[@]}" $cflags -c "$s" -o "$o"
    [[ $s == *int_helpers.cc && $libmode != helpers ]] && continue
    objs+=("$o")
  done
  node scripts/fp-scan.js --tool-prefix="$prefix" "${objs[@]}" > "$dir/scan-objects.txt" ||
    {
      cat "$dir/scan-objects.txt"
      bad "$name: floating point in the objects"
    }
  local lib=()
  # shellcheck disable=SC2086
  [[ $libmode == filtered ]] && lib=("$(int_libgcc "$cxx" "$dir" $cflags)")
  # shellcheck disable=SC2086
  if ! "$cxx" "${COMMON[@]}" $cflags -nostdlib -static $ldflags "${objs[@]}" "${lib[@]}" \
    -o "$dir/kat.elf" 2> "$dir/link.txt"; then
    cat "$dir/link.txt"
    bad "$name: freestanding link"
    return
  fi
  node scripts/fp-scan.js --tool-prefix="$prefix" "$dir/kat.elf" > "$dir/scan-elf.txt" ||
    {
      cat "$dir/scan-elf.txt"
      bad "$name: floating point in the linked program"
    }
  "${prefix}nm" -u "$dir/kat.elf" | grep . && bad "$name: undefined symbols left"
  "${prefix}size" "$dir/kat.elf" > "$dir/size.txt"
  return 0
}

# control NAME CXX PREFIX "CFLAGS" "LDFLAGS" LIBMODE "FPFLAGS" RUNNER...
control() {
  local name=$1 cxx=$2 prefix=$3 cflags=$4 ldflags=$5 libmode=$6 fpflags=$7
  shift 7
  local dir="$OUT/$name/control"
  mkdir -p "$dir"
  # (a) soft-float double: the scan must flag it and the link must fail.
  # shellcheck disable=SC2086
  "$cxx" "${COMMON[@]}" $cflags -c native/nofpu/control_float.cc -o "$dir/control.o"
  if node scripts/fp-scan.js --tool-prefix="$prefix" "$dir/control.o" > "$dir/scan.txt"; then
    bad "$name control: the scan missed a soft-float double multiply"
  fi
  local objs=() lib=() s
  # shellcheck disable=SC2086
  for s in "${LIB_SRC[@]}" "${PROG_SRC[@]}"; do
    "$cxx" "${COMMON[@]}" $cflags -DNOFPU_INJECT_FLOAT -c "$s" -o "$dir/$(basename "$s" .cc).o"
    objs+=("$dir/$(basename "$s" .cc).o")
  done
  [[ $libmode == helpers ]] && objs+=("$OUT/$name/int_helpers.o")
  # shellcheck disable=SC2086
  [[ $libmode == filtered ]] && lib=("$(int_libgcc "$cxx" "$dir" $cflags)")
  # shellcheck disable=SC2086
  if "$cxx" "${COMMON[@]}" $cflags -nostdlib -static $ldflags "${objs[@]}" "$dir/control.o" \
    "${lib[@]}" -o "$dir/soft.elf" 2> "$dir/link.txt"; then
    bad "$name control: a soft-float double linked freestanding"
  fi
  # (b) hardware FP instructions: must trap on the FPU-less CPU.
  # shellcheck disable=SC2086
  "$cxx" "${COMMON[@]}" $fpflags -c native/nofpu/control_float.cc -o "$dir/control-hw.o"
  # shellcheck disable=SC2086
  if ! "$cxx" "${COMMON[@]}" $cflags -nostdlib -static $ldflags "${objs[@]}" "$dir/control-hw.o" \
    "${lib[@]}" -o "$dir/hw.elf" 2> "$dir/link-hw.txt"; then
    cat "$dir/link-hw.txt"
    bad "$name control: the FP-instruction control did not link"
    return
  fi
  if node scripts/fp-scan.js --tool-prefix="$prefix" "$dir/control-hw.o" > "$dir/scan-hw.txt"; then
    bad "$name control: the scan missed FP instructions"
  fi
  local rc=0
  timeout 60 "$@" "$dir/hw.elf" > "$dir/run-hw.txt" 2>&1 || rc=$?
  # 132 = SIGILL (qemu-user); FAULT = the Cortex-M fault handler ran.
  if [[ $rc -eq 132 ]] || { [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q 'FAULT' "$dir/run-hw.txt"; }; then
    echo "nofpu: $name control trapped as it must (exit $rc)"
  else
    bad "$name control: FP instructions did not trap (exit $rc)"
  fi
}

# run NAME RUNNER... : output must equal the x86-64 reference
run() {
  local name=$1
  shift
  local dir="$OUT/$name"
  [[ -f $dir/kat.elf ]] || return 0
  # (semihosting writes to qemu's stderr: both streams are the output)
  if ! timeout 300 "$@" "$dir/kat.elf" > "$dir/run.txt" 2>&1; then
    cat "$dir/run.txt"
    bad "$name: the test program failed under qemu"
  fi
  if cmp -s "$dir/run.txt" "$OUT/reference.txt"; then
    echo "nofpu: $name: output identical to x86-64 ($(wc -l < "$dir/run.txt") lines, $(grep -c '^ok' "$dir/run.txt") checks ok)"
  else
    diff "$OUT/reference.txt" "$dir/run.txt" | head -20 || true
    bad "$name: output differs from x86-64"
  fi
}

RV_FLAGS="-march=rv64imac -mabi=lp64 -mcmodel=medany -mno-relax"
RV_RUN=(qemu-riscv64 -cpu rv64,f=false,d=false)
M3_FLAGS="-mcpu=cortex-m3 -mthumb -mfloat-abi=soft"
M3_RUN=(qemu-system-arm -M mps2-an385 -cpu cortex-m3 -nographic -monitor none -serial none
  -semihosting-config enable=on,target=native -kernel)
V5_FLAGS="-march=armv5te -marm -mfloat-abi=soft -DNOFPU_LINUX_ARM"
V5_RUN=(qemu-arm -cpu pxa250)

build rv64imac riscv64-linux-gnu-g++ riscv64-linux-gnu- "$RV_FLAGS" "-Wl,--no-relax" helpers
build cortex-m3 arm-none-eabi-g++ arm-none-eabi- "$M3_FLAGS" "-T native/nofpu/cortex-m3.ld" filtered
build armv5te arm-none-eabi-g++ arm-none-eabi- "$V5_FLAGS" "-Wl,-Ttext=0x10000" filtered

run rv64imac "${RV_RUN[@]}"
run cortex-m3 "${M3_RUN[@]}"
run armv5te "${V5_RUN[@]}"

control rv64imac riscv64-linux-gnu-g++ riscv64-linux-gnu- "$RV_FLAGS" "-Wl,--no-relax" helpers \
  "-march=rv64imafdc -mabi=lp64 -mcmodel=medany -mno-relax" "${RV_RUN[@]}"
control cortex-m3 arm-none-eabi-g++ arm-none-eabi- "$M3_FLAGS" "-T native/nofpu/cortex-m3.ld" filtered \
  "-mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=softfp" "${M3_RUN[@]}"
control armv5te arm-none-eabi-g++ arm-none-eabi- "$V5_FLAGS" "-Wl,-Ttext=0x10000" filtered \
  "-march=armv5te -marm -mfpu=vfpv2 -mfloat-abi=softfp" "${V5_RUN[@]}"

if [[ -f $OUT/cortex-m3/size.txt ]]; then
  echo "nofpu: Cortex-M3 program size (text = flash, data + bss = RAM; includes 32 KiB stack):"
  cat "$OUT/cortex-m3/size.txt"
fi
if ((fail)); then
  echo "nofpu: FAILED"
  exit 1
fi
echo "nofpu: all targets passed"
