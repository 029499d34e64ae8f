// Glue for the linalg kernels (filled in by the linalg work).
#include "args.h"
#include "register.h"

namespace dplora_binding {

void RegisterLinalg(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace dplora_binding
