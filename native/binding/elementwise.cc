// Glue for the transformer's elementwise and attention kernels
// (native/kernels/elementwise): argument validation and zero-copy typed
// arrays.  No math here.
#include <string>
#include <vector>

#include "args.h"
#include "elementwise.h"
#include "register.h"

namespace dplora_binding {
namespace {

// An input or output array with its name, for the length and overlap checks.
struct Buf {
  mutable Napi::Float32Array arr;
  const char *name;
  float *data() const { return arr.Data(); }
};

// A Float32Array argument, or an absent one (null or undefined) when `optional`.
bool OptF32(Napi::Env env, const Napi::CallbackInfo &info, size_t i, const char *name,
            Napi::Float32Array *out) {
  Napi::Value v = Arg(info, i);
  if (v.IsNull() || v.IsUndefined()) return false;
  *out = F32(env, v, name);
  return true;
}

void NeedLength(Napi::Env env, const Buf &b, int64_t n) {
  if (static_cast<int64_t>(b.arr.ElementLength()) < n) {
    ThrowRange(env, Str(b.name) + " has length " + std::to_string(b.arr.ElementLength()) +
                        " but the shape needs at least " + std::to_string(n));
  }
}

// Byte ranges [first, first + n floats) of two arrays' used parts intersect.
bool Intersect(const float *a, int64_t na, const float *b, int64_t nb) {
  if (na == 0 || nb == 0) return false;
  return a < b + nb && b < a + na;
}

// Every output must not share memory with any input or other output, except
// the pairs in `same` (output index, input index) that may be the very same
// elements (in-place kernels).
void CheckDisjoint(Napi::Env env, const std::vector<std::pair<Buf, int64_t>> &outs,
                   const std::vector<std::pair<Buf, int64_t>> &ins,
                   const std::vector<std::pair<size_t, size_t>> &same = {}) {
  for (size_t o = 0; o < outs.size(); ++o) {
    const Buf &ob = outs[o].first;
    for (size_t i = 0; i < ins.size(); ++i) {
      const Buf &ib = ins[i].first;
      bool allowed = false;
      for (const auto &s : same)
        if (s.first == o && s.second == i && ob.data() == ib.data()) allowed = true;
      if (!allowed && Intersect(ob.data(), outs[o].second, ib.data(), ins[i].second))
        ThrowRange(env, Str(ob.name) + " must not share memory with " + ib.name);
    }
    for (size_t p = o + 1; p < outs.size(); ++p) {
      const Buf &pb = outs[p].first;
      if (Intersect(ob.data(), outs[o].second, pb.data(), outs[p].second))
        ThrowRange(env, Str(ob.name) + " must not share memory with " + pb.name);
    }
  }
}

float FloatArg(Napi::Env env, Napi::Value v, const char *name) {
  const double x = FiniteValue(env, v, name, false);
  if (std::fabs(x) > 3.4028234663852886e38)
    ThrowRange(env, Str(name) + " is outside the float range");
  return static_cast<float>(x);
}

// layerNormForward(x, gamma, beta, rows, d, eps, y, xhat?, invStd?)
Napi::Value LayerNormForward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int64_t rows = IntValue(env, Arg(info, 3), "rows");
  const int64_t d = IntValue(env, Arg(info, 4), "d", 1);
  const float eps = FloatArg(env, Arg(info, 5), "eps");
  if (!(eps >= 0.0f)) ThrowRange(env, "eps must be >= 0");
  const int64_t n = MulSize(env, rows, d, "x");
  Buf x{F32(env, Arg(info, 0), "x"), "x"}, gamma{F32(env, Arg(info, 1), "gamma"), "gamma"},
      beta{F32(env, Arg(info, 2), "beta"), "beta"}, y{F32(env, Arg(info, 6), "y"), "y"};
  Buf xhat{Napi::Float32Array(), "xhat"}, inv{Napi::Float32Array(), "invStd"};
  const bool hx = OptF32(env, info, 7, "xhat", &xhat.arr);
  const bool hi = OptF32(env, info, 8, "invStd", &inv.arr);
  NeedLength(env, x, n);
  NeedLength(env, gamma, d);
  NeedLength(env, beta, d);
  NeedLength(env, y, n);
  std::vector<std::pair<Buf, int64_t>> outs = {{y, n}};
  if (hx) {
    NeedLength(env, xhat, n);
    outs.push_back({xhat, n});
  }
  if (hi) {
    NeedLength(env, inv, rows);
    outs.push_back({inv, rows});
  }
  CheckDisjoint(env, outs, {{x, n}, {gamma, d}, {beta, d}});
  CheckStatus(
      env,
      dplora::elem::layer_norm_forward(x.data(), rows, d, gamma.data(), beta.data(), eps, y.data(),
                                       hx ? xhat.data() : nullptr, hi ? inv.data() : nullptr),
      "layerNormForward");
  return env.Undefined();
}

// layerNormBackward(g, xhat, invStd, gamma, batch, seq, d, gi, gw?, gb?)
Napi::Value LayerNormBackward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int64_t batch = IntValue(env, Arg(info, 4), "batch");
  const int64_t seq = IntValue(env, Arg(info, 5), "seq");
  const int64_t d = IntValue(env, Arg(info, 6), "d", 1);
  const int64_t rows = MulSize(env, batch, seq, "g");
  const int64_t n = MulSize(env, rows, d, "g");
  const int64_t nb = MulSize(env, batch, d, "gw");
  Buf g{F32(env, Arg(info, 0), "g"), "g"}, xhat{F32(env, Arg(info, 1), "xhat"), "xhat"},
      inv{F32(env, Arg(info, 2), "invStd"), "invStd"},
      gamma{F32(env, Arg(info, 3), "gamma"), "gamma"}, gi{F32(env, Arg(info, 7), "gi"), "gi"};
  Buf gw{Napi::Float32Array(), "gw"}, gb{Napi::Float32Array(), "gb"};
  const bool hw = OptF32(env, info, 8, "gw", &gw.arr);
  const bool hb = OptF32(env, info, 9, "gb", &gb.arr);
  NeedLength(env, g, n);
  NeedLength(env, xhat, n);
  NeedLength(env, inv, rows);
  NeedLength(env, gamma, d);
  NeedLength(env, gi, n);
  std::vector<std::pair<Buf, int64_t>> outs = {{gi, n}};
  if (hw) {
    NeedLength(env, gw, nb);
    outs.push_back({gw, nb});
  }
  if (hb) {
    NeedLength(env, gb, nb);
    outs.push_back({gb, nb});
  }
  CheckDisjoint(env, outs, {{g, n}, {xhat, n}, {inv, rows}, {gamma, d}});
  CheckStatus(env,
              dplora::elem::layer_norm_backward(g.data(), xhat.data(), inv.data(), gamma.data(),
                                                batch, seq, d, gi.data(), hw ? gw.data() : nullptr,
                                                hb ? gb.data() : nullptr),
              "layerNormBackward");
  return env.Undefined();
}

struct AttnShape {
  int64_t batch, seq, heads, dh, n, np;
  float scale;
  Napi::Uint8Array valid;
  bool masked;
};

// (valid?, batch, seq, heads, dHead, scale) at argument i onwards.
AttnShape ParseAttn(Napi::Env env, const Napi::CallbackInfo &info, size_t i) {
  AttnShape s;
  s.batch = IntValue(env, Arg(info, i + 1), "batch");
  s.seq = IntValue(env, Arg(info, i + 2), "seq");
  s.heads = IntValue(env, Arg(info, i + 3), "heads", 1);
  s.dh = IntValue(env, Arg(info, i + 4), "dHead", 1);
  s.scale = FloatArg(env, Arg(info, i + 5), "scale");
  const int64_t rows = MulSize(env, s.batch, s.seq, "q");
  s.n = MulSize(env, rows, MulSize(env, s.heads, s.dh, "q"), "q");
  s.np = MulSize(env, MulSize(env, rows, s.heads, "probs"), s.seq, "probs");
  Napi::Value v = Arg(info, i);
  s.masked = !(v.IsNull() || v.IsUndefined());
  if (s.masked) {
    s.valid = U8(env, v, "valid");
    if (static_cast<int64_t>(s.valid.ElementLength()) < rows)
      ThrowRange(env, "valid has length " + std::to_string(s.valid.ElementLength()) +
                          " but the shape needs at least " + std::to_string(rows));
  }
  return s;
}

// attentionForward(q, k, v, valid?, batch, seq, heads, dHead, scale, out, probs)
Napi::Value AttentionForward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  AttnShape s = ParseAttn(env, info, 3);
  Buf q{F32(env, Arg(info, 0), "q"), "q"}, k{F32(env, Arg(info, 1), "k"), "k"},
      v{F32(env, Arg(info, 2), "v"), "v"}, out{F32(env, Arg(info, 9), "out"), "out"},
      probs{F32(env, Arg(info, 10), "probs"), "probs"};
  for (const Buf *b : {&q, &k, &v, &out}) NeedLength(env, *b, s.n);
  NeedLength(env, probs, s.np);
  CheckDisjoint(env, {{out, s.n}, {probs, s.np}}, {{q, s.n}, {k, s.n}, {v, s.n}});
  CheckStatus(env,
              dplora::elem::attention_forward(q.data(), k.data(), v.data(), s.batch, s.seq, s.heads,
                                              s.dh, s.scale, s.masked ? s.valid.Data() : nullptr,
                                              out.data(), probs.data()),
              "attentionForward");
  return env.Undefined();
}

// attentionBackward(gOut, q, k, v, probs, valid?, batch, seq, heads, dHead, scale, gq, gk, gv)
Napi::Value AttentionBackward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  AttnShape s = ParseAttn(env, info, 5);
  Buf go{F32(env, Arg(info, 0), "gOut"), "gOut"}, q{F32(env, Arg(info, 1), "q"), "q"},
      k{F32(env, Arg(info, 2), "k"), "k"}, v{F32(env, Arg(info, 3), "v"), "v"},
      probs{F32(env, Arg(info, 4), "probs"), "probs"}, gq{F32(env, Arg(info, 11), "gq"), "gq"},
      gk{F32(env, Arg(info, 12), "gk"), "gk"}, gv{F32(env, Arg(info, 13), "gv"), "gv"};
  for (const Buf *b : {&go, &q, &k, &v, &gq, &gk, &gv}) NeedLength(env, *b, s.n);
  NeedLength(env, probs, s.np);
  CheckDisjoint(env, {{gq, s.n}, {gk, s.n}, {gv, s.n}},
                {{go, s.n}, {q, s.n}, {k, s.n}, {v, s.n}, {probs, s.np}});
  CheckStatus(env,
              dplora::elem::attention_backward(go.data(), q.data(), k.data(), v.data(),
                                               probs.data(), s.batch, s.seq, s.heads, s.dh, s.scale,
                                               s.masked ? s.valid.Data() : nullptr, gq.data(),
                                               gk.data(), gv.data()),
              "attentionBackward");
  return env.Undefined();
}

// reluForward(x, y): y = max(x, 0) over x's length; y may be x itself.
Napi::Value ReluForward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Buf x{F32(env, Arg(info, 0), "x"), "x"}, y{F32(env, Arg(info, 1), "y"), "y"};
  const int64_t n = static_cast<int64_t>(x.arr.ElementLength());
  NeedLength(env, y, n);
  CheckDisjoint(env, {{y, n}}, {{x, n}}, {{0, 0}});
  CheckStatus(env, dplora::elem::relu_forward(x.data(), y.data(), n), "reluForward");
  return env.Undefined();
}

// reluBackward(y, g, gi): gi = g where y > 0, else 0, over y's length; gi may be g itself.
Napi::Value ReluBackward(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Buf y{F32(env, Arg(info, 0), "y"), "y"}, g{F32(env, Arg(info, 1), "g"), "g"},
      gi{F32(env, Arg(info, 2), "gi"), "gi"};
  const int64_t n = static_cast<int64_t>(y.arr.ElementLength());
  NeedLength(env, g, n);
  NeedLength(env, gi, n);
  CheckDisjoint(env, {{gi, n}}, {{y, n}, {g, n}}, {{0, 1}});
  CheckStatus(env, dplora::elem::relu_backward(y.data(), g.data(), gi.data(), n), "reluBackward");
  return env.Undefined();
}

// mseLoss(pred, target, batch, per, losses, grad): per-sample mean squared error of
// [batch, per] arrays (squares summed in double) and the gradient of the summed losses.
Napi::Value MseLoss(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Buf p{F32(env, Arg(info, 0), "pred"), "pred"}, t{F32(env, Arg(info, 1), "target"), "target"};
  const int64_t batch = IntValue(env, Arg(info, 2), "batch");
  const int64_t per = IntValue(env, Arg(info, 3), "per");
  Buf losses{F32(env, Arg(info, 4), "losses"), "losses"},
      grad{F32(env, Arg(info, 5), "grad"), "grad"};
  if (per > 0 && batch > INT64_MAX / per) ThrowRange(env, "batch * per is too large");
  const int64_t n = batch * per;
  NeedLength(env, p, n);
  NeedLength(env, t, n);
  NeedLength(env, losses, batch);
  NeedLength(env, grad, n);
  CheckDisjoint(env, {{losses, batch}, {grad, n}}, {{p, n}, {t, n}});
  CheckStatus(env,
              dplora::elem::mse_loss(p.data(), t.data(), batch, per, losses.data(), grad.data()),
              "mseLoss");
  return env.Undefined();
}

// addInPlace(y, x): y += x over y's length.
Napi::Value AddInPlace(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Buf y{F32(env, Arg(info, 0), "y"), "y"}, x{F32(env, Arg(info, 1), "x"), "x"};
  const int64_t n = static_cast<int64_t>(y.arr.ElementLength());
  NeedLength(env, x, n);
  CheckDisjoint(env, {{y, n}}, {{x, n}});
  CheckStatus(env, dplora::elem::add_inplace(y.data(), x.data(), n), "addInPlace");
  return env.Undefined();
}

// tokenMean(x, valid?, batch, seq, f, out, accumulate) and
// tokenSpread(g, valid?, batch, seq, f, gx, accumulate): in is [batch, seq, f] / [batch, f].
template <bool kMean>
Napi::Value TokenOp(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const char *in_name = kMean ? "x" : "g";
  const char *out_name = kMean ? "out" : "gx";
  const int64_t batch = IntValue(env, Arg(info, 2), "batch");
  const int64_t seq = IntValue(env, Arg(info, 3), "seq");
  const int64_t f = IntValue(env, Arg(info, 4), "f");
  Napi::Value acc = Arg(info, 6);
  if (!acc.IsBoolean()) ThrowType(env, "accumulate must be a boolean");
  const int64_t rows = MulSize(env, batch, seq, in_name);
  const int64_t big = MulSize(env, rows, f, in_name), small = MulSize(env, batch, f, out_name);
  Buf in{F32(env, Arg(info, 0), in_name), in_name}, out{F32(env, Arg(info, 5), out_name), out_name};
  Napi::Value vv = Arg(info, 1);
  const bool masked = !(vv.IsNull() || vv.IsUndefined());
  Napi::Uint8Array valid;
  if (masked) {
    valid = U8(env, vv, "valid");
    if (static_cast<int64_t>(valid.ElementLength()) < rows)
      ThrowRange(env, "valid has length " + std::to_string(valid.ElementLength()) +
                          " but the shape needs at least " + std::to_string(rows));
  }
  const int64_t nin = kMean ? big : small, nout = kMean ? small : big;
  NeedLength(env, in, nin);
  NeedLength(env, out, nout);
  CheckDisjoint(env, {{out, nout}}, {{in, nin}});
  const uint8_t *v = masked ? valid.Data() : nullptr;
  const bool a = acc.As<Napi::Boolean>().Value();
  const int rc = kMean ? dplora::elem::token_mean(in.data(), batch, seq, f, v, out.data(), a)
                       : dplora::elem::token_spread(in.data(), batch, seq, f, v, out.data(), a);
  CheckStatus(env, rc, kMean ? "tokenMean" : "tokenSpread");
  return env.Undefined();
}

// gatherRows(table, vocab, d, ids, scale, y): y[r] = scale * table[ids[r]] (0 for id -1).
Napi::Value GatherRows(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int64_t vocab = IntValue(env, Arg(info, 1), "vocab");
  const int64_t d = IntValue(env, Arg(info, 2), "d");
  const float scale = FloatArg(env, Arg(info, 4), "scale");
  Buf table{F32(env, Arg(info, 0), "table"), "table"}, ids{F32(env, Arg(info, 3), "ids"), "ids"},
      y{F32(env, Arg(info, 5), "y"), "y"};
  const int64_t n = static_cast<int64_t>(ids.arr.ElementLength());
  const int64_t tn = MulSize(env, vocab, d, "table"), yn = MulSize(env, n, d, "y");
  NeedLength(env, table, tn);
  NeedLength(env, y, yn);
  CheckDisjoint(env, {{y, yn}}, {{table, tn}, {ids, n}});
  const int rc = dplora::elem::gather_rows(table.data(), vocab, d, ids.data(), n, scale, y.data());
  if (rc == DPLORA_EINVAL)
    ThrowRange(env, "ids must hold integers in [0, " + std::to_string(vocab) + ") or -1");
  CheckStatus(env, rc, "gatherRows");
  return env.Undefined();
}

}  // namespace

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "layerNormForward", LayerNormForward);
  Export(env, exports, "layerNormBackward", LayerNormBackward);
  Export(env, exports, "attentionForward", AttentionForward);
  Export(env, exports, "attentionBackward", AttentionBackward);
  Export(env, exports, "reluForward", ReluForward);
  Export(env, exports, "reluBackward", ReluBackward);
  Export(env, exports, "addInPlace", AddInPlace);
  Export(env, exports, "mseLoss", MseLoss);
  Export(env, exports, "tokenMean", TokenOp<true>);
  Export(env, exports, "tokenSpread", TokenOp<false>);
  Export(env, exports, "gatherRows", GatherRows);
}

}  // namespace dplora_binding
