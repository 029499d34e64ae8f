// Glue for the fixed-point kernels (quantizer, integer clipped sum,
// discrete Gaussian noise on the integer sum).
#include "args.h"
#include "register.h"
#include "rng_args.h"

namespace dplora_binding {
namespace {

int FracBits(Napi::Env env, Napi::Value v) {
  int64_t f = IntValue(env, v, "fracBits", 0);
  if (f > DPLORA_FIXED_MAX_FRAC_BITS) ThrowRange(env, "fracBits must be an integer in [0, 30]");
  return int(f);
}

// (x: Float32Array, fracBits, out: Int32Array) -> { saturated, nan }
Napi::Value FixedQuantize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  int f = FracBits(env, Arg(info, 1));
  Napi::Int32Array out = I32(env, Arg(info, 2), "out");
  CheckLength(env, out, int64_t(x.ElementLength()), "out");
  dplora_quantize_stats st{0, 0};
  CheckStatus(env, dplora_fixed_quantize(x.Data(), int64_t(x.ElementLength()), f, out.Data(), &st),
              "quantize");
  Napi::Object r = Napi::Object::New(env);
  r.Set("saturated", Napi::Number::New(env, double(st.saturated)));
  r.Set("nan", Napi::Number::New(env, double(st.nan)));
  return r;
}

// (q: Int32Array | BigInt64Array, fracBits, out: Float32Array | Float64Array)
Napi::Value FixedDequantize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Value qv = Arg(info, 0);
  int f = FracBits(env, Arg(info, 1));
  Napi::Value ov = Arg(info, 2);
  if (qv.IsTypedArray() && qv.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array q = qv.As<Napi::Int32Array>();
    Napi::Float32Array out = F32(env, ov, "out");
    CheckLength(env, out, int64_t(q.ElementLength()), "out");
    CheckStatus(env,
                dplora_fixed_dequantize_i32(q.Data(), int64_t(q.ElementLength()), f, out.Data()),
                "dequantize");
    return out;
  }
  if (qv.IsTypedArray() && qv.As<Napi::TypedArray>().TypedArrayType() == napi_bigint64_array) {
    Napi::BigInt64Array q = qv.As<Napi::BigInt64Array>();
    Napi::Float64Array out = F64(env, ov, "out");
    CheckLength(env, out, int64_t(q.ElementLength()), "out");
    CheckStatus(env,
                dplora_fixed_dequantize_i64(q.Data(), int64_t(q.ElementLength()), f, out.Data()),
                "dequantize");
    return out;
  }
  ThrowType(env, "q must be an Int32Array or BigInt64Array");
}

// (grads: Int32Array, batch, dim, clipInt, out: BigInt64Array) -> clipped rows
Napi::Value FixedClipSum(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Int32Array g = I32(env, Arg(info, 0), "grads");
  int64_t batch = IntValue(env, Arg(info, 1), "batch", 0);
  int64_t dim = IntValue(env, Arg(info, 2), "dim", 0);
  int64_t clip = IntValue(env, Arg(info, 3), "clipInt", 1);
  if (clip > DPLORA_FIXED_QMAX) ThrowRange(env, "clipInt must be <= 2^31 - 1");
  Napi::BigInt64Array out = I64(env, Arg(info, 4), "out");
  CheckLength(env, g, MulSize(env, batch, dim, "grads"), "grads");
  CheckLength(env, out, dim, "out");
  if (clip > 0 && batch > DPLORA_FIXED_SUM_BOUND / clip) {
    ThrowRange(
        env,
        "batch * clipInt must be <= 2^62 (the int64 sum keeps 2^62 of headroom for the noise)");
  }
  int64_t clipped = 0;
  CheckStatus(env, dplora_fixed_clip_sum(g.Data(), batch, dim, clip, out.Data(), &clipped),
              "fixedClipSum");
  return Napi::Number::New(env, double(clipped));
}

// (key, nonce, position, sum: BigInt64Array, num, den) -> { position, saturated }
Napi::Value FixedAddDiscreteGaussian(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = KeyArg(env, Arg(info, 0));
  Napi::Uint8Array nonce = NonceArg(env, Arg(info, 1));
  uint64_t pos = PositionArg(env, Arg(info, 2));
  Napi::BigInt64Array sum = I64(env, Arg(info, 3), "sum");
  uint64_t num = U64BigInt(env, Arg(info, 4), "sigmaSq.num");
  uint64_t den = U64BigInt(env, Arg(info, 5), "sigmaSq.den");
  if (num == 0 || den == 0) ThrowRange(env, "sigmaSq must be > 0");
  int64_t sat = 0;
  CheckStatus(env,
              dplora_fixed_add_discrete_gaussian(key.Data(), nonce.Data(), &pos, num, den,
                                                 sum.Data(), int64_t(sum.ElementLength()), &sat),
              "addDiscreteGaussianNoise");
  Napi::Object r = Napi::Object::New(env);
  r.Set("position", U64ToBigInt(env, pos));
  r.Set("saturated", Napi::Number::New(env, double(sat)));
  return r;
}

}  // namespace

void RegisterFixed(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "fixedQuantize", FixedQuantize);
  Export(env, exports, "fixedDequantize", FixedDequantize);
  Export(env, exports, "fixedClipSum", FixedClipSum);
  Export(env, exports, "fixedAddDiscreteGaussian", FixedAddDiscreteGaussian);
}

}  // namespace dplora_binding
