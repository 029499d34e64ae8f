// Glue for the rng kernels.  The stream state (key, nonce, position) lives
// in JavaScript (lib/kernels/rng.ts); these functions are stateless and take
// the position as a BigInt.
#include <cfloat>
#include <cstring>
#include <memory>
#include <vector>

#include "args.h"
#include "register.h"
#include "rng_args.h"

namespace dplora_binding {
namespace {

Napi::Value Chacha20Block(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = KeyArg(env, Arg(info, 0));
  int64_t counter = IntValue(env, Arg(info, 1), "counter", 0);
  if (counter > 0xffffffffLL) ThrowRange(env, "counter must be < 2^32");
  Napi::Uint8Array nonce = NonceArg(env, Arg(info, 2));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, 64);
  CheckStatus(env, dplora_chacha20_block(key.Data(), uint32_t(counter), nonce.Data(), out.Data()),
              "chacha20Block");
  return out;
}

Napi::Value OsEntropy(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t n = IntValue(env, Arg(info, 0), "bytes", 0);
  if (n > 65536) ThrowRange(env, "bytes must be <= 65536");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, size_t(n));
  CheckStatus(env, dplora_os_entropy(out.Data(), size_t(n)), "osEntropy");
  return out;
}

// (key, nonce, position, out): fills out from the stream with `kernel`; `conv` reads out.
template <typename TA, typename T>
Napi::Value StreamFill(const Napi::CallbackInfo &info,
                       TA (*conv)(Napi::Env, Napi::Value, const char *),
                       int (*kernel)(const uint8_t *, const uint8_t *, uint64_t, T *, int64_t),
                       const char *what) {
  Napi::Env env = info.Env();
  StreamArgs st = StreamArg(info);
  TA out = conv(env, Arg(info, 3), "out");
  CheckStatus(
      env, kernel(st.key.Data(), st.nonce.Data(), st.pos, out.Data(), int64_t(out.ElementLength())),
      what);
  return out;
}

Napi::Value RngFillU32(const Napi::CallbackInfo &info) {
  return StreamFill(info, U32, dplora_rng_fill_u32, "fillUint32");
}

Napi::Value RngUniform(const Napi::CallbackInfo &info) {
  return StreamFill(info, F64, dplora_rng_uniform_f64, "uniform");
}

double StdArg(Napi::Env env, Napi::Value v) {
  double sd = FiniteValue(env, v, "std", false);
  if (sd < 0) ThrowRange(env, "std must be >= 0");
  return sd;
}

// Single-precision paths scale by float(std): it must not round to infinity.
void CheckStdF32(Napi::Env env, double sd) {
  if (sd > double(FLT_MAX))
    ThrowRange(env, "std must be <= 3.4028234663852886e38 (float32 range) for a Float32Array");
}

// (key, nonce, position, out: Float32Array | Float64Array, std, add)
Napi::Value RngGaussian(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  StreamArgs st = StreamArg(info);
  Napi::Value ov = Arg(info, 3);
  double sd = StdArg(env, Arg(info, 4));
  int add = Arg(info, 5).ToBoolean().Value() ? 1 : 0;
  if (IsTypedArrayOf(ov, napi_float64_array)) {
    Napi::Float64Array out = ov.As<Napi::Float64Array>();
    CheckStatus(env,
                dplora_rng_gaussian_f64(st.key.Data(), st.nonce.Data(), st.pos, out.Data(),
                                        int64_t(out.ElementLength()), sd, add),
                "gaussian");
    return out;
  }
  if (!IsTypedArrayOf(ov, napi_float32_array)) {
    ThrowType(env, "out must be a Float32Array or Float64Array");
  }
  Napi::Float32Array out = ov.As<Napi::Float32Array>();
  CheckStdF32(env, sd);
  CheckStatus(env,
              dplora_rng_gaussian_f32(st.key.Data(), st.nonce.Data(), st.pos, out.Data(),
                                      int64_t(out.ElementLength()), sd, add),
              "gaussian");
  return out;
}

// (key, nonce, position, buf: Float32Array, std) -> Promise<buf>, adds noise.
Napi::Value RngAddGaussianAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  StreamArgs st = StreamArg(info);
  Napi::Float32Array buf = F32(env, Arg(info, 3), "buf");
  double sd = StdArg(env, Arg(info, 4));
  CheckStdF32(env, sd);
  struct Job {
    uint8_t key[32], nonce[12];
  };
  auto job = std::make_shared<Job>();
  std::memcpy(job->key, st.key.Data(), 32);
  std::memcpy(job->nonce, st.nonce.Data(), 12);
  // Noise is added to a native copy, written back on the main thread (see CopyIn/CopyOut).
  auto data = CopyIn<float>(buf);
  return StartIntoCopy(env, "addGaussianNoiseAsync", buf, data, [job, pos = st.pos, data, sd]() {
    return dplora_rng_gaussian_f32(job->key, job->nonce, pos, data->data(), int64_t(data->size()),
                                   sd, 1);
  });
}

// (key, nonce, position, out: Int32Array | BigInt64Array, num, den) -> next position
Napi::Value RngDiscreteGaussian(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  StreamArgs st = StreamArg(info);
  Napi::Value ov = Arg(info, 3);
  const SigmaSq sq = SigmaSqArg(env, Arg(info, 4), Arg(info, 5));
  if (IsTypedArrayOf(ov, napi_bigint64_array)) {
    Napi::BigInt64Array out = ov.As<Napi::BigInt64Array>();
    CheckStatus(env,
                dplora_rng_discrete_gaussian(st.key.Data(), st.nonce.Data(), &st.pos, sq.num,
                                             sq.den, out.Data(), int64_t(out.ElementLength())),
                "discreteGaussian");
    return U64ToBigInt(env, st.pos);
  }
  if (!IsTypedArrayOf(ov, napi_int32_array)) {
    ThrowType(env, "out must be an Int32Array or BigInt64Array");
  }
  Napi::Int32Array out = ov.As<Napi::Int32Array>();
  std::vector<int64_t> tmp(out.ElementLength());
  CheckStatus(env,
              dplora_rng_discrete_gaussian(st.key.Data(), st.nonce.Data(), &st.pos, sq.num, sq.den,
                                           tmp.data(), int64_t(tmp.size())),
              "discreteGaussian");
  for (size_t i = 0; i < tmp.size(); ++i) {
    if (tmp[i] < INT32_MIN || tmp[i] > INT32_MAX) {
      ThrowRange(env,
                 "discreteGaussian: a sample does not fit an Int32Array (use a BigInt64Array)");
    }
    out[i] = int32_t(tmp[i]);
  }
  return U64ToBigInt(env, st.pos);
}

}  // namespace

void RegisterRng(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "chacha20Block", Chacha20Block);
  Export(env, exports, "osEntropy", OsEntropy);
  Export(env, exports, "rngFillU32", RngFillU32);
  Export(env, exports, "rngUniform", RngUniform);
  Export(env, exports, "rngGaussian", RngGaussian);
  Export(env, exports, "rngDiscreteGaussian", RngDiscreteGaussian);
  Export(env, exports, "rngAddGaussianAsync", RngAddGaussianAsync);
}

}  // namespace dplora_binding
