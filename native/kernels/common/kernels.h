// The one dispatch table of the kernels: every kernel family (GEMM micro-
// kernels, gradient norms, clipping, the ChaCha20 keystream, the Gaussian
// transform, the roofline probes) reaches its ISA-specific code through it.
//
// One table per ISA is built at load (dispatch.cc); the active one is chosen
// once at load from the CPU features and DPLORA_ISA, and dplora_set_isa()
// swaps it.  Kernels read it with kernels() (one relaxed atomic load) at the
// start of a call and use that table for the whole call.
#pragma once
#include "chacha20.h"
#include "clip_sum.h"
#include "gaussian.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "norms.h"
#include "roofline.h"

namespace dplora {

struct Kernels {
  int isa;  // DPLORA_ISA_*
  // gemm
  linalg::GemmKernel gemm;
  // norms (and clipping, which uses sumsq)
  linalg::SampleNormFn direct, ghost;
  linalg::SumSqFn sumsq;
  // rng and noise
  chacha::BlocksFn chacha_blocks;
  gauss::GroupsFn gauss_groups;
  // roofline probes
  linalg::ReadProbeFn read_probe;
  linalg::FmaProbeFn fma_probe;
  double fma_flops_per_iter;  // flops one fma_probe iteration performs
  // clipped sums in double (dplora_outer_scaled_sum_f64, dplora_rows_scaled_sum_f64)
  clip::OuterSumFn outer_sum;
  // products with a bf16 frozen operand (micro null: widened to fp32 for `gemm`)
  linalg::GemmBf16Kernel bf16;
};

// The table of an ISA (the scalar table for a path this build lacks).
const Kernels &kernels_for(int isa);
// The table in use now.
const Kernels &kernels();
// The ISA in use now (kernels().isa).
int active_isa();
// Makes `isa` the active path; false (nothing changes) if the CPU or this
// build cannot run it.
bool set_isa(int isa);

}  // namespace dplora
