// Glue for the rng kernels (filled in by the rng work).
#include "args.h"
#include "register.h"

namespace dplora_binding {

void RegisterRng(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace dplora_binding
