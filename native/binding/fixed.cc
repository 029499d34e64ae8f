// Glue for the fixed-point kernels (quantizer, integer clipped sum,
// discrete Gaussian noise on the integer sum).
#include <string>
#include <vector>

#include "args.h"
#include "dplora_fixed.h"
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
  if (IsTypedArrayOf(qv, napi_int32_array)) {
    Napi::Int32Array q = qv.As<Napi::Int32Array>();
    Napi::Float32Array out = F32(env, ov, "out");
    CheckLength(env, out, int64_t(q.ElementLength()), "out");
    CheckStatus(env,
                dplora_fixed_dequantize_i32(q.Data(), int64_t(q.ElementLength()), f, out.Data()),
                "dequantize");
    return out;
  }
  if (IsTypedArrayOf(qv, napi_bigint64_array)) {
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
  StreamArgs st = StreamArg(info);
  Napi::BigInt64Array sum = I64(env, Arg(info, 3), "sum");
  const SigmaSq sq = SigmaSqArg(env, Arg(info, 4), Arg(info, 5));
  int64_t sat = 0;
  CheckStatus(
      env,
      dplora_fixed_add_discrete_gaussian(st.key.Data(), st.nonce.Data(), &st.pos, sq.num, sq.den,
                                         sum.Data(), int64_t(sum.ElementLength()), &sat),
      "addDiscreteGaussianNoise");
  Napi::Object r = Napi::Object::New(env);
  r.Set("position", U64ToBigInt(env, st.pos));
  r.Set("saturated", Napi::Number::New(env, double(sat)));
  return r;
}

Napi::Int8Array I8(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Int8Array>(env, v, napi_int8_array, "Int8Array", name);
}

// A frozen requantized layer of the configuration: `key` (rows x cols Int8Array) with per-row
// multipliers `key`Mult (Int32Array) and shifts `key`Shift (Int8Array).  The pointers borrow
// the typed arrays' memory, which must outlive the call.
void LayerArg(Napi::Env env, Napi::Object o, const std::string &key, int64_t rows, int64_t cols,
              const int8_t **w, const int32_t **mult, const int8_t **shift) {
  const std::string wn = "config." + key, mn = wn + "Mult", sn = wn + "Shift";
  Napi::Int8Array wa = I8(env, o.Get(key), wn.c_str());
  Napi::Int32Array ma = I32(env, o.Get(key + "Mult"), mn.c_str());
  Napi::Int8Array sa = I8(env, o.Get(key + "Shift"), sn.c_str());
  CheckLength(env, wa, MulSize(env, rows, cols, wn.c_str()), wn.c_str());
  CheckLength(env, ma, rows, mn.c_str());
  CheckLength(env, sa, rows, sn.c_str());
  *w = wa.Data();
  *mult = ma.Data();
  *shift = sa.Data();
}

// The device configuration object of lib/kernels/fixed.ts (IntegerLoraConfig)
// as the C struct; the typed arrays must outlive the call.
dplora_fx_step_config StepConfig(Napi::Env env, Napi::Value v) {
  Napi::Object o = Obj(env, v, "config");
  dplora_fx_step_config c = {};
  c.d_in = int32_t(IntField(env, o, "dIn", 1));
  c.hidden = int32_t(IntField(env, o, "hidden", 1));
  c.rank = int32_t(IntField(env, o, "rank", 1));
  c.classes = int32_t(IntField(env, o, "classes", 2));
  LayerArg(env, o, "w0", c.hidden, c.d_in, &c.w0, &c.w0_mult, &c.w0_shift);
  c.frac_bits = int32_t(IntField(env, o, "fracBits", 1));
  c.clip_int = IntField(env, o, "clipInt", 1);
  c.sigma2_num = U64BigInt(env, o.Get("sigmaSqNum"), "config.sigmaSqNum");
  c.sigma2_den = U64BigInt(env, o.Get("sigmaSqDen"), "config.sigmaSqDen");
  c.sample_num = U64BigInt(env, o.Get("sampleNum"), "config.sampleNum");
  c.sample_den = U64BigInt(env, o.Get("sampleDen"), "config.sampleDen");
  c.lr_num = IntField(env, o, "lrNum", 1);
  c.lr_den = IntField(env, o, "lrDen", 1);
  c.expected_batch = IntField(env, o, "expectedBatch", 1);
  c.max_steps = U64BigInt(env, o.Get("maxSteps"), "config.maxSteps");
  c.loss = int32_t(IntField(env, o, "loss", 0));
  c.update = int32_t(IntField(env, o, "update", 0));
  c.beta_num = int32_t(IntField(env, o, "betaNum", 0));
  c.beta_den = int32_t(IntField(env, o, "betaDen", 1));
  // Extensions (absent: the one-layer model).
  auto opt_int = [&](const char *key, int64_t dflt) {
    return o.Get(key).IsUndefined() ? dflt : IntField(env, o, key, 0);
  };
  c.layers = int32_t(opt_int("layers", 1));
  c.in_shift = int32_t(opt_int("inShift", 0));
  c.lora_shift = int32_t(opt_int("loraShift", 0));
  c.head_bias = int32_t(opt_int("headBias", 0));
  auto bias = [&](const char *key, const char *name) -> const int32_t * {
    if (o.Get(key).IsUndefined()) return nullptr;
    Napi::Int32Array b = I32(env, o.Get(key), name);
    CheckLength(env, b, c.hidden, name);
    return b.Data();
  };
  c.bias0 = bias("bias0", "config.bias0");
  if (c.layers == 2) {
    LayerArg(env, o, "w1", c.hidden, c.hidden, &c.w1, &c.w1_mult, &c.w1_shift);
    c.bias1 = bias("bias1", "config.bias1");
  }
  if (dplora_fx_step_scratch_bytes(&c) == 0)
    ThrowRange(env, "config: invalid integer LoRA configuration");
  return c;
}

struct StepState {
  dplora_fx_step_state st;
  Napi::Int32Array a, b, head, m, a2, b2, head_b;
};

StepState StateArg(Napi::Env env, const dplora_fx_step_config &c, Napi::Value v) {
  Napi::Object o = Obj(env, v, "state");
  StepState s;
  s.a = I32(env, o.Get("a"), "state.a");
  s.b = I32(env, o.Get("b"), "state.b");
  s.head = I32(env, o.Get("head"), "state.head");
  CheckLength(env, s.a, MulSize(env, c.rank, c.d_in, "state.a"), "state.a");
  CheckLength(env, s.b, MulSize(env, c.hidden, c.rank, "state.b"), "state.b");
  CheckLength(env, s.head, MulSize(env, c.classes, c.hidden, "state.head"), "state.head");
  s.st.a = s.a.Data();
  s.st.b = s.b.Data();
  s.st.head = s.head.Data();
  s.st.m = nullptr;
  s.st.a2 = nullptr;
  s.st.b2 = nullptr;
  s.st.head_b = nullptr;
  size_t n_params = s.a.ElementLength() + s.b.ElementLength() + s.head.ElementLength();
  if (c.layers == 2) {
    s.a2 = I32(env, o.Get("a2"), "state.a2");
    s.b2 = I32(env, o.Get("b2"), "state.b2");
    CheckLength(env, s.a2, MulSize(env, c.rank, c.hidden, "state.a2"), "state.a2");
    CheckLength(env, s.b2, MulSize(env, c.hidden, c.rank, "state.b2"), "state.b2");
    s.st.a2 = s.a2.Data();
    s.st.b2 = s.b2.Data();
    n_params += s.a2.ElementLength() + s.b2.ElementLength();
  }
  if (c.head_bias == 1) {
    s.head_b = I32(env, o.Get("headB"), "state.headB");
    CheckLength(env, s.head_b, size_t(c.classes), "state.headB");
    s.st.head_b = s.head_b.Data();
    n_params += s.head_b.ElementLength();
  }
  if (c.update != DPLORA_FX_SGD) {
    s.m = I32(env, o.Get("m"), "state.m");
    CheckLength(env, s.m, n_params, "state.m");
    s.st.m = s.m.Data();
  }
  s.st.steps = U64BigInt(env, o.Get("steps"), "state.steps");
  s.st.position = U64BigInt(env, o.Get("position"), "state.position");
  return s;
}

// (config, state, key, nonce, x: Int8Array, y: Int32Array) -> { steps, position, batch };
// state.a/b/head are updated in place.
Napi::Value FixedLoraStep(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const dplora_fx_step_config c = StepConfig(env, Arg(info, 0));
  StepState s = StateArg(env, c, Arg(info, 1));
  Napi::Uint8Array key = KeyArg(env, Arg(info, 2));
  Napi::Uint8Array nonce = NonceArg(env, Arg(info, 3));
  Napi::Int8Array x = I8(env, Arg(info, 4), "x");
  Napi::Int32Array y = I32(env, Arg(info, 5), "y");
  const int64_t n = int64_t(y.ElementLength());
  CheckLength(env, x, MulSize(env, n, c.d_in, "x"), "x");
  std::vector<uint64_t> scratch((dplora_fx_step_scratch_bytes(&c) + 7) / 8);
  int64_t batch = 0;
  const int rc = dplora_fx_step(&c, &s.st, key.Data(), nonce.Data(), x.Data(), y.Data(), n,
                                scratch.data(), scratch.size() * 8, &batch);
  if (rc == DPLORA_EBUDGET)
    throw Napi::Error::New(env, "fixedLoraStep: the planned step budget is spent");
  CheckStatus(env, rc, "fixedLoraStep");
  Napi::Object r = Napi::Object::New(env);
  r.Set("steps", U64ToBigInt(env, s.st.steps));
  r.Set("position", U64ToBigInt(env, s.st.position));
  r.Set("batch", Napi::Number::New(env, double(batch)));
  return r;
}

// (config, state, x: Int8Array [n, dIn]) -> Int32Array of predicted classes
Napi::Value FixedLoraPredict(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const dplora_fx_step_config c = StepConfig(env, Arg(info, 0));
  StepState s = StateArg(env, c, Arg(info, 1));
  Napi::Int8Array x = I8(env, Arg(info, 2), "x");
  if (x.ElementLength() % size_t(c.d_in) != 0)
    ThrowRange(env, "x: length must be a multiple of dIn");
  const int64_t n = int64_t(x.ElementLength()) / c.d_in;
  std::vector<uint64_t> scratch((dplora_fx_step_scratch_bytes(&c) + 7) / 8);
  Napi::Int32Array out = Napi::Int32Array::New(env, size_t(n));
  for (int64_t r = 0; r < n; ++r) {
    const int32_t p =
        dplora_fx_predict(&c, &s.st, x.Data() + r * c.d_in, scratch.data(), scratch.size() * 8);
    CheckStatus(env, p < 0 ? p : DPLORA_OK, "fixedLoraPredict");
    out[size_t(r)] = p;
  }
  return out;
}

}  // namespace

void RegisterFixed(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "fixedQuantize", FixedQuantize);
  Export(env, exports, "fixedDequantize", FixedDequantize);
  Export(env, exports, "fixedClipSum", FixedClipSum);
  Export(env, exports, "fixedAddDiscreteGaussian", FixedAddDiscreteGaussian);
  Export(env, exports, "fixedLoraStep", FixedLoraStep);
  Export(env, exports, "fixedLoraPredict", FixedLoraPredict);
}

}  // namespace dplora_binding
