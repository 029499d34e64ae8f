// One registration function per glue file (see addon.cc).
#pragma once
#include <napi.h>

namespace dplora_binding {
void RegisterCore(Napi::Env env, Napi::Object exports);    // core.cc
void RegisterLinalg(Napi::Env env, Napi::Object exports);  // linalg.cc
void RegisterRng(Napi::Env env, Napi::Object exports);     // rng.cc
void RegisterFixed(Napi::Env env, Napi::Object exports);   // fixed.cc
}  // namespace dplora_binding
