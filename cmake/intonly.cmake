# Float-free units of the integer mode: native/kernels/intonly/*.cc (the
# kernels) and native/kernels/fixed/*.cc (C entry points, the integer LoRA
# step).  Included from CMakeLists.txt right after INTONLY_SRC is globbed:
# both folders are compiled with -mgeneral-regs-only there and scanned.
#
# DPLORA_FREESTANDING=ON also builds libdplora_fixed_freestanding.a: the same
# units without the threaded host wrappers, with -ffreestanding
# -fno-exceptions -fno-rtti (single thread, return codes, caller scratch).
# scripts/nofpu-tests.sh cross-builds the same list for soft-float targets.
file(GLOB DPLORA_FIXED_SRC CONFIGURE_DEPENDS ${K}/fixed/*.cc)
list(APPEND INTONLY_SRC ${DPLORA_FIXED_SRC})

option(DPLORA_FREESTANDING "Also build the freestanding integer-mode library" OFF)
if(DPLORA_FREESTANDING)
  set(DPLORA_FREESTANDING_SRC ${INTONLY_SRC})
  list(FILTER DPLORA_FREESTANDING_SRC EXCLUDE REGEX "_host\\.cc$")
  add_library(dplora_fixed_freestanding STATIC ${DPLORA_FREESTANDING_SRC})
  target_include_directories(dplora_fixed_freestanding PUBLIC native/include PRIVATE native/kernels native/kernels/rng)
  target_compile_definitions(dplora_fixed_freestanding PRIVATE DPLORA_FREESTANDING=1)
  target_compile_options(dplora_fixed_freestanding PRIVATE -O2 -ffreestanding -fno-exceptions
    -fno-rtti -fno-asynchronous-unwind-tables ${DPLORA_WARN})
endif()
