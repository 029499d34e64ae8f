// Module entry: each kernel family registers its functions from its own
// glue file.  No math here.
#include <napi.h>

#include "register.h"

namespace dplora_binding {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterCore(env, exports);
  RegisterLinalg(env, exports);
  RegisterRng(env, exports);
  RegisterFixed(env, exports);
  RegisterElementwise(env, exports);
  return exports;
}

}  // namespace dplora_binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return dplora_binding::Init(env, exports);
}

NODE_API_MODULE(dplora, InitModule)
