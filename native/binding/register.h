// One registration function per glue file (see addon.cc).
#pragma once
#include <napi.h>

namespace dplora_binding {

// exports[name] = a JS function called `name` that runs fn.
inline void Export(Napi::Env env, Napi::Object exports, const char *name,
                   Napi::Function::Callback fn) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

void RegisterCore(Napi::Env env, Napi::Object exports);         // core.cc
void RegisterLinalg(Napi::Env env, Napi::Object exports);       // linalg.cc
void RegisterRng(Napi::Env env, Napi::Object exports);          // rng.cc
void RegisterFixed(Napi::Env env, Napi::Object exports);        // fixed.cc
void RegisterElementwise(Napi::Env env, Napi::Object exports);  // elementwise.cc
}  // namespace dplora_binding
