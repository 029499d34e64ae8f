// Glue for the fixed kernels (filled in by the fixed work).
#include "args.h"
#include "register.h"

namespace dplora_binding {

void RegisterFixed(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace dplora_binding
