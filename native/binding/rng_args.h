// Argument checkers shared by the rng and fixed glue: stream key, nonce,
// 64-bit position (BigInt) and rational sigma^2 (two BigInts).
#pragma once
#include "args.h"

namespace dplora_binding {

inline Napi::Uint8Array KeyArg(Napi::Env env, Napi::Value v) {
  Napi::Uint8Array k = U8(env, v, "key");
  if (k.ElementLength() != 32) ThrowRange(env, "key must be 32 bytes");
  return k;
}

inline Napi::Uint8Array NonceArg(Napi::Env env, Napi::Value v) {
  Napi::Uint8Array n = U8(env, v, "nonce");
  if (n.ElementLength() != 12) ThrowRange(env, "nonce must be 12 bytes");
  return n;
}

// A BigInt in [0, 2^64).
inline uint64_t U64BigInt(Napi::Env env, Napi::Value v, const char *name) {
  if (!v.IsBigInt()) ThrowType(env, Str(name) + " must be a bigint");
  int sign = 0;
  size_t count = 2;
  uint64_t words[2] = {0, 0};
  v.As<Napi::BigInt>().ToWords(&sign, &count, words);
  if (sign != 0) ThrowRange(env, Str(name) + " must be >= 0");
  if (count > 1) ThrowRange(env, Str(name) + " must be < 2^64");
  return count == 0 ? 0 : words[0];
}

inline uint64_t PositionArg(Napi::Env env, Napi::Value v) {
  return U64BigInt(env, v, "position");
}

inline Napi::Value U64ToBigInt(Napi::Env env, uint64_t v) {
  return Napi::BigInt::New(env, v);
}

// The (key, nonce, position) triple that opens every stream call.
struct StreamArgs {
  Napi::Uint8Array key, nonce;
  uint64_t pos;
};

// Reads the stream triple from arguments first, first + 1 and first + 2.
inline StreamArgs StreamArg(const Napi::CallbackInfo &info, size_t first = 0) {
  Napi::Env env = info.Env();
  StreamArgs s;
  s.key = KeyArg(env, Arg(info, first));
  s.nonce = NonceArg(env, Arg(info, first + 1));
  s.pos = PositionArg(env, Arg(info, first + 2));
  return s;
}

// A rational sigma^2 = num / den given as two BigInts, both > 0.
struct SigmaSq {
  uint64_t num, den;
};

inline SigmaSq SigmaSqArg(Napi::Env env, Napi::Value num, Napi::Value den) {
  SigmaSq r{U64BigInt(env, num, "sigmaSq.num"), U64BigInt(env, den, "sigmaSq.den")};
  if (r.num == 0 || r.den == 0) ThrowRange(env, "sigmaSq must be > 0");
  return r;
}

}  // namespace dplora_binding
