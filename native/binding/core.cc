// Glue for ISA selection, thread count and build information.
#include "args.h"
#include "register.h"

namespace dplora_binding {
namespace {

Napi::Value IsaInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("active", dplora_isa_name(dplora_active_isa()));
  Napi::Array supported = Napi::Array::New(env);
  uint32_t n = 0;
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (dplora_isa_supported(isa)) supported.Set(n++, dplora_isa_name(isa));
  }
  o.Set("supported", supported);
  o.Set("threads", dplora_num_threads());
  o.Set("bf16Native", dplora_bf16_native() != 0);
  return o;
}

Napi::Value SetIsa(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Value v = Arg(info, 0);
  if (!v.IsString()) ThrowType(env, "isa must be a string");
  std::string name = v.As<Napi::String>();
  for (int isa = DPLORA_ISA_SCALAR; isa <= DPLORA_ISA_AVX512; ++isa) {
    if (name == dplora_isa_name(isa)) {
      if (dplora_set_isa(isa) != DPLORA_OK)
        ThrowRange(env, "isa '" + name + "' is not supported on this CPU");
      return env.Undefined();
    }
  }
  ThrowRange(env, "isa must be one of scalar, neon, avx2, avx512");
}

Napi::Value SetThreads(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t n = IntValue(env, Arg(info, 0), "threads", 1);
  if (n > 1024) ThrowRange(env, "threads must be <= 1024");
  CheckStatus(env, dplora_set_num_threads(static_cast<int>(n)), "setThreads");
  return env.Undefined();
}

}  // namespace

void RegisterCore(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "isaInfo", IsaInfo);
  Export(env, exports, "setIsa", SetIsa);
  Export(env, exports, "setThreads", SetThreads);
}

}  // namespace dplora_binding
