// Glue for the linalg kernels: argument validation, zero-copy typed arrays,
// and the ...Async variants on a libuv worker thread.  No math here.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "args.h"
#include "register.h"

namespace dplora_binding {
namespace {

// First byte of a typed array's elements (works for SharedArrayBuffer too).
const uint8_t *Bytes(const Napi::TypedArray &x) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(x.Env(), x, &type, &length, &data, &buffer, &offset) != napi_ok)
    return nullptr;
  return static_cast<const uint8_t *>(data);  // already includes the byte offset
}

// True if the byte ranges of two typed arrays intersect.
bool Overlaps(const Napi::TypedArray &x, const Napi::TypedArray &y) {
  if (x.ByteLength() == 0 || y.ByteLength() == 0) return false;
  const uint8_t *xb = Bytes(x), *yb = Bytes(y);
  if (xb == nullptr || yb == nullptr) return false;
  return xb < yb + y.ByteLength() && yb < xb + x.ByteLength();
}

void CheckNoOverlap(Napi::Env env, const Napi::TypedArray &out, const char *out_name,
                    const Napi::TypedArray &in, const char *in_name) {
  if (Overlaps(out, in)) ThrowRange(env, Str(out_name) + " must not share memory with " + in_name);
}

bool OptBool(Napi::Env env, Napi::Object o, const char *key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) ThrowType(env, Str(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double OptFinite(Napi::Env env, Napi::Object o, const char *key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  return FiniteValue(env, v, key, false);
}

// Elements a stored rows x width matrix with row stride ld spans.
int64_t Span(Napi::Env env, int64_t rows, int64_t width, int64_t ld, const char *what) {
  if (rows == 0 || width == 0) return 0;
  return MulSize(env, rows - 1, ld, what) + width;
}

void CheckAtLeast(Napi::Env env, const Napi::TypedArray &arr, int64_t needed, const char *name) {
  if (static_cast<int64_t>(arr.ElementLength()) < needed) {
    ThrowRange(env, Str(name) + " has length " + std::to_string(arr.ElementLength()) +
                        " but the shape needs at least " + std::to_string(needed));
  }
}

// ------------------------------------------------------------------ sgemm --

struct SgemmDims {
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
};
struct SgemmArgs : SgemmDims {
  Napi::Float32Array a, b, c;
};

SgemmArgs ParseSgemm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SgemmArgs s;
  s.a = F32(env, Arg(info, 0), "a");
  s.b = F32(env, Arg(info, 1), "b");
  s.c = F32(env, Arg(info, 2), "c");
  Napi::Object o = Obj(env, Arg(info, 3), "opts");
  s.m = IntField(env, o, "m");
  s.n = IntField(env, o, "n");
  s.k = IntField(env, o, "k");
  s.ta = OptBool(env, o, "transA", false);
  s.tb = OptBool(env, o, "transB", false);
  const double alpha = OptFinite(env, o, "alpha", 1.0), beta = OptFinite(env, o, "beta", 0.0);
  if (std::fabs(alpha) > 3.4028234663852886e38) ThrowRange(env, "alpha is outside the float range");
  if (std::fabs(beta) > 3.4028234663852886e38) ThrowRange(env, "beta is outside the float range");
  s.alpha = static_cast<float>(alpha);
  s.beta = static_cast<float>(beta);
  const int64_t ra = s.ta ? s.k : s.m, wa = s.ta ? s.m : s.k;
  const int64_t rb = s.tb ? s.n : s.k, wb = s.tb ? s.k : s.n;
  auto ld = [&](const char *key, int64_t width) {
    Napi::Value v = o.Get(key);
    const int64_t minimum = std::max<int64_t>(1, width);
    if (v.IsUndefined()) return minimum;
    const int64_t x = IntValue(env, v, key, 1);
    if (x < width)
      ThrowRange(env, Str(key) + " must be >= the stored row width " + std::to_string(width));
    return x;
  };
  s.lda = ld("lda", wa);
  s.ldb = ld("ldb", wb);
  s.ldc = ld("ldc", s.n);
  // Re-read the arrays: a getter above may have detached or shrunk one, and
  // the wrappers cache length and data pointer.
  s.a = F32(env, Arg(info, 0), "a");
  s.b = F32(env, Arg(info, 1), "b");
  s.c = F32(env, Arg(info, 2), "c");
  CheckAtLeast(env, s.a, Span(env, ra, wa, s.lda, "a"), "a");
  CheckAtLeast(env, s.b, Span(env, rb, wb, s.ldb, "b"), "b");
  CheckAtLeast(env, s.c, Span(env, s.m, s.n, s.ldc, "c"), "c");
  CheckNoOverlap(env, s.c, "c", s.a, "a");
  CheckNoOverlap(env, s.c, "c", s.b, "b");
  return s;
}

int RunSgemm(const SgemmDims &s, const float *a, const float *b, float *c) {
  return dplora_sgemm(s.ta, s.tb, s.m, s.n, s.k, s.alpha, a, s.lda, b, s.ldb, s.beta, c, s.ldc);
}

Napi::Value Sgemm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SgemmArgs s = ParseSgemm(info);
  CheckStatus(env, RunSgemm(s, s.a.Data(), s.b.Data(), s.c.Data()), "sgemm");
  return s.c;
}

Napi::Value SgemmAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SgemmArgs s = ParseSgemm(info);
  auto a = CopyIn<float>(s.a);
  auto b = CopyIn<float>(s.b);
  auto c = CopyIn<float>(s.c);
  const SgemmDims plain = s;
  return StartIntoCopy(env, "sgemmAsync", s.c, c, [plain, a, b, c]() {
    return RunSgemm(plain, a->data(), b->data(), c->data());
  });
}

// ------------------------------------------------------- packed operand --

// Tags the externals this file creates, so a foreign External is refused.
const napi_type_tag kPackedTag = {0x6470c0a5e7b14d2aull, 0x9f3b2c61d8e40a17ull};

// The handle of a packed-matrix external (throws TypeError for anything else).
dplora_packed_b *PackedArg(Napi::Env env, Napi::Value v) {
  bool ours = false;
  if (v.IsExternal()) {
    if (napi_check_object_type_tag(env, v, &kPackedTag, &ours) != napi_ok) ours = false;
  }
  if (!ours) ThrowType(env, "packed must be a handle returned by sgemmPackB");
  return v.As<Napi::External<dplora_packed_b>>().Data();
}

// The source of a pack or repack: opts.ldb (default the stored row width of op(B), k x n, or
// n x k when tb) read from o, then the array `bv` checked to hold it (read after the getters).
struct PackSource {
  Napi::Float32Array b;
  int64_t ldb;
};
PackSource ReadPackSource(Napi::Env env, Napi::Object o, Napi::Value bv, int64_t k, int64_t n,
                          bool tb) {
  const int64_t rb = tb ? n : k, wb = tb ? k : n;
  int64_t ldb = std::max<int64_t>(1, wb);
  Napi::Value ldv = o.Get("ldb");
  if (!ldv.IsUndefined()) {
    ldb = IntValue(env, ldv, "ldb", 1);
    if (ldb < wb) ThrowRange(env, "ldb must be >= the stored row width " + std::to_string(wb));
  }
  Napi::Float32Array b = F32(env, bv, "b");
  CheckAtLeast(env, b, Span(env, rb, wb, ldb, "b"), "b");
  return {b, ldb};
}

// sgemmPackB(b, {k, n, transB?, ldb?, dtype?}) -> handle owning a packed copy of op(B);
// dtype 'bf16' rounds it to bf16 (dplora_sgemm_pack_b_bf16), 'fp32' (default) keeps it.
Napi::Value SgemmPackB(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Obj(env, Arg(info, 1), "opts");
  const int64_t k = IntField(env, o, "k"), n = IntField(env, o, "n");
  const bool tb = OptBool(env, o, "transB", false);
  bool bf16 = false;
  Napi::Value dt = o.Get("dtype");
  if (!dt.IsUndefined()) {
    const std::string name = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : std::string();
    if (name == "bf16") {
      bf16 = true;
    } else if (name != "fp32") {
      ThrowRange(env, "dtype must be 'fp32' or 'bf16'");
    }
  }
  const PackSource src = ReadPackSource(env, o, Arg(info, 0), k, n, tb);
  dplora_packed_b *p = nullptr;
  const int rc = bf16 ? dplora_sgemm_pack_b_bf16(tb, k, n, src.b.Data(), src.ldb, &p)
                      : dplora_sgemm_pack_b(tb, k, n, src.b.Data(), src.ldb, &p);
  CheckStatus(env, rc, "sgemmPackB");
  const int64_t bytes = dplora_packed_b_bytes(p);
  auto ext = Napi::External<dplora_packed_b>::New(env, p, [bytes](Napi::Env e, dplora_packed_b *q) {
    dplora_packed_b_free(q);
    Napi::MemoryManagement::AdjustExternalMemory(e, -bytes);
  });
  if (napi_type_tag_object(env, ext, &kPackedTag) != napi_ok)
    throw Napi::Error::New(env, "sgemmPackB: could not tag the handle");
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return ext;
}

// sgemmRepackB(handle, b, {k, n, transB?, ldb?}) -> true, or false when the handle was packed
// for another ISA path (pack a new one): op(B) of b packed again into the handle's memory, in
// its element type.  k and n must match the handle.
Napi::Value SgemmRepackB(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  dplora_packed_b *p = PackedArg(env, Arg(info, 0));
  Napi::Object o = Obj(env, Arg(info, 2), "opts");
  const int64_t k = IntField(env, o, "k"), n = IntField(env, o, "n");
  int64_t pk = 0, pn = 0;
  dplora_packed_b_dims(p, &pk, &pn);
  if (k != pk || n != pn)
    ThrowRange(env, "k x n = " + std::to_string(k) + " x " + std::to_string(n) +
                        " does not match the packed matrix " + std::to_string(pk) + " x " +
                        std::to_string(pn));
  const bool tb = OptBool(env, o, "transB", false);
  const PackSource src = ReadPackSource(env, o, Arg(info, 1), k, n, tb);
  const int rc = dplora_packed_b_repack(p, tb, src.b.Data(), src.ldb);
  if (rc == DPLORA_ESTALE) return Napi::Boolean::New(env, false);
  CheckStatus(env, rc, "sgemmRepackB");
  return Napi::Boolean::New(env, true);
}

// packedInfo(handle) -> {isa, bytes, dtype}
Napi::Value PackedInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  dplora_packed_b *p = PackedArg(env, Arg(info, 0));
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", dplora_isa_name(dplora_packed_b_isa(p)));
  o.Set("bytes", static_cast<double>(dplora_packed_b_bytes(p)));
  o.Set("dtype", dplora_packed_b_dtype(p) == DPLORA_DTYPE_BF16 ? "bf16" : "fp32");
  return o;
}

// sgemmPacked(a, handle, c, {m, k, n, transA?, alpha?, beta?, lda?, ldc?}) -> true, or false
// when the handle was packed for another ISA path (pack again).  k and n must match the
// handle (they are repeated so that the call documents the shapes it assumes).
Napi::Value SgemmPacked(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  dplora_packed_b *p = PackedArg(env, Arg(info, 1));
  Napi::Object o = Obj(env, Arg(info, 3), "opts");
  const int64_t m = IntField(env, o, "m"), k = IntField(env, o, "k"), n = IntField(env, o, "n");
  int64_t pk = 0, pn = 0;
  dplora_packed_b_dims(p, &pk, &pn);
  if (k != pk || n != pn)
    ThrowRange(env, "k x n = " + std::to_string(k) + " x " + std::to_string(n) +
                        " does not match the packed matrix " + std::to_string(pk) + " x " +
                        std::to_string(pn));
  const bool ta = OptBool(env, o, "transA", false);
  const double alpha = OptFinite(env, o, "alpha", 1.0), beta = OptFinite(env, o, "beta", 0.0);
  if (std::fabs(alpha) > 3.4028234663852886e38) ThrowRange(env, "alpha is outside the float range");
  if (std::fabs(beta) > 3.4028234663852886e38) ThrowRange(env, "beta is outside the float range");
  const int64_t ra = ta ? k : m, wa = ta ? m : k;
  auto ld = [&](const char *key, int64_t width) {
    Napi::Value v = o.Get(key);
    const int64_t minimum = std::max<int64_t>(1, width);
    if (v.IsUndefined()) return minimum;
    const int64_t x = IntValue(env, v, key, 1);
    if (x < width)
      ThrowRange(env, Str(key) + " must be >= the stored row width " + std::to_string(width));
    return x;
  };
  const int64_t lda = ld("lda", wa), ldc = ld("ldc", n);
  Napi::Float32Array a = F32(env, Arg(info, 0), "a"), c = F32(env, Arg(info, 2), "c");
  CheckAtLeast(env, a, Span(env, ra, wa, lda, "a"), "a");
  CheckAtLeast(env, c, Span(env, m, n, ldc, "c"), "c");
  CheckNoOverlap(env, c, "c", a, "a");
  Napi::Value iv = o.Get("init");
  if (iv.IsUndefined()) {
    const int rc = dplora_sgemm_packed(ta, m, static_cast<float>(alpha), a.Data(), lda, p,
                                       static_cast<float>(beta), c.Data(), ldc);
    if (rc == DPLORA_ESTALE) return Napi::Boolean::New(env, false);
    CheckStatus(env, rc, "sgemmPacked");
    return Napi::Boolean::New(env, true);
  }
  // init: {a, packed, k, alpha?, lda?}: C = alpha op(a) B + (beta C + alpha2 a2 B2).
  Napi::Object io = Obj(env, iv, "init");
  dplora_packed_b *p2 = PackedArg(env, io.Get("packed"));
  const int64_t k2 = IntField(env, io, "k");
  int64_t pk2 = 0, pn2 = 0;
  dplora_packed_b_dims(p2, &pk2, &pn2);
  if (k2 != pk2 || pn2 != n)
    ThrowRange(env, "init: k x n = " + std::to_string(k2) + " x " + std::to_string(n) +
                        " does not match its packed matrix " + std::to_string(pk2) + " x " +
                        std::to_string(pn2));
  if (k2 < 1 || k2 > 64) ThrowRange(env, "init.k must be in [1, 64]");
  if (dplora_packed_b_dtype(p2) != DPLORA_DTYPE_F32)
    ThrowRange(env, "init needs an fp32 packed matrix");
  const double alpha2 = OptFinite(env, io, "alpha", 1.0);
  if (std::fabs(alpha2) > 3.4028234663852886e38)
    ThrowRange(env, "init.alpha is outside the float range");
  Napi::Value lv = io.Get("lda");
  const int64_t lda2 = lv.IsUndefined() ? k2 : IntValue(env, lv, "init.lda", 1);
  if (lda2 < k2) ThrowRange(env, "init.lda must be >= init.k");
  Napi::Float32Array a2 = F32(env, io.Get("a"), "init.a");
  CheckAtLeast(env, a2, Span(env, m, k2, lda2, "init.a"), "init.a");
  CheckNoOverlap(env, c, "c", a2, "init.a");
  const int rc = dplora_sgemm_packed_base_init(ta, m, static_cast<float>(alpha), a.Data(), lda, p,
                                               static_cast<float>(beta), c.Data(), ldc,
                                               static_cast<float>(alpha2), a2.Data(), lda2, p2);
  if (rc == DPLORA_ESTALE) return Napi::Boolean::New(env, false);
  CheckStatus(env, rc, "sgemmPacked");
  return Napi::Boolean::New(env, true);
}

// ------------------------------------------------------------ grad shapes --

struct Shape {
  int64_t batch, seq, in_dim, out_dim;
};

Shape ParseShape(Napi::Env env, Napi::Value v) {
  Napi::Object o = Obj(env, v, "shape");
  Shape s;
  s.batch = IntField(env, o, "batch");
  s.seq = IntField(env, o, "seq");
  s.in_dim = IntField(env, o, "inDim");
  s.out_dim = IntField(env, o, "outDim");
  return s;
}

int ParseMethod(Napi::Env env, Napi::Object o) {
  Napi::Value v = o.Get("method");
  if (v.IsUndefined()) return DPLORA_NORM_AUTO;
  if (!v.IsString())
    ThrowType(env, "method must be a string ('auto', 'direct', 'ghost' or 'bound')");
  const std::string m = v.As<Napi::String>();
  if (m == "auto") return DPLORA_NORM_AUTO;
  if (m == "direct") return DPLORA_NORM_DIRECT;
  if (m == "ghost") return DPLORA_NORM_GHOST;
  if (m == "bound") return DPLORA_NORM_BOUND;
  ThrowRange(env, "method must be 'auto', 'direct', 'ghost' or 'bound'");
}

void CheckActivations(Napi::Env env, const Shape &s, const Napi::Float32Array &a,
                      const Napi::Float32Array &g) {
  const int64_t bt = MulSize(env, s.batch, s.seq, "shape");
  CheckLength(env, a, MulSize(env, bt, s.in_dim, "shape"), "a");
  CheckLength(env, g, MulSize(env, bt, s.out_dim, "shape"), "g");
}

// ------------------------------------------------ norms and clipped sum --

// a, g and their shape: the first three arguments of the norm and clipped-sum calls.
struct ActArgs {
  Napi::Float32Array a, g;
  Shape s;
};

// Reads a, g and the shape; the shape's getters run here.
void ReadActivations(const Napi::CallbackInfo &info, ActArgs *x) {
  Napi::Env env = info.Env();
  x->a = F32(env, Arg(info, 0), "a");
  x->g = F32(env, Arg(info, 1), "g");
  x->s = ParseShape(env, Arg(info, 2));
}

// Every JS getter (shape, opts) runs before any length is checked and the arrays are re-read
// after them (see ParseSgemm), so a getter cannot shrink or detach an array behind a check.
void RereadActivations(const Napi::CallbackInfo &info, ActArgs *x) {
  Napi::Env env = info.Env();
  x->a = F32(env, Arg(info, 0), "a");
  x->g = F32(env, Arg(info, 1), "g");
  CheckActivations(env, x->s, x->a, x->g);
}

// The optional `out` argument: a new array of n elements when it is undefined, else an array of
// exactly n elements (converted by `conv`) that shares no memory with a or g.
template <typename TA>
TA OutArg(Napi::Env env, Napi::Value out, int64_t n, const ActArgs &x,
          TA (*conv)(Napi::Env, Napi::Value, const char *)) {
  if (out.IsUndefined()) return TA::New(env, static_cast<size_t>(n));
  TA o = conv(env, out, "out");
  CheckLength(env, o, n, "out");
  CheckNoOverlap(env, o, "out", x.a, "a");
  CheckNoOverlap(env, o, "out", x.g, "g");
  return o;
}

struct NormArgs : ActArgs {
  Napi::Float64Array out;
  int method;
};

NormArgs ParseNorms(const Napi::CallbackInfo &info) {
  NormArgs n;
  ReadActivations(info, &n);
  n.method = ParseMethod(info.Env(), Arg(info, 2).As<Napi::Object>());
  RereadActivations(info, &n);
  n.out = OutArg(info.Env(), Arg(info, 3), n.s.batch, n, F64);
  return n;
}

Napi::Value GradNormSq(const Napi::CallbackInfo &info) {
  NormArgs n = ParseNorms(info);
  CheckStatus(info.Env(),
              dplora_grad_norm_sq(n.a.Data(), n.g.Data(), n.s.batch, n.s.seq, n.s.in_dim,
                                  n.s.out_dim, n.method, n.out.Data()),
              "perSampleGradNormSq");
  return n.out;
}

Napi::Value GradNormSqAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  NormArgs n = ParseNorms(info);
  auto a = CopyIn<float>(n.a);
  auto g = CopyIn<float>(n.g);
  auto out = CopyIn<double>(n.out);
  const Shape s = n.s;
  const int method = n.method;
  return StartIntoCopy(env, "perSampleGradNormSqAsync", n.out, out, [=]() {
    return dplora_grad_norm_sq(a->data(), g->data(), s.batch, s.seq, s.in_dim, s.out_dim, method,
                               out->data());
  });
}

struct SumArgs : ActArgs {
  Napi::Float32Array factors, out;
  bool accumulate;
};

SumArgs ParseSum(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SumArgs r;
  ReadActivations(info, &r);
  r.factors = F32(env, Arg(info, 3), "factors");
  r.accumulate = false;
  Napi::Value opts = Arg(info, 5);
  if (!opts.IsUndefined()) {
    r.accumulate = OptBool(env, Obj(env, opts, "opts"), "accumulate", false);
  }
  RereadActivations(info, &r);
  r.factors = F32(env, Arg(info, 3), "factors");
  CheckLength(env, r.factors, r.s.batch, "factors");
  const float *f = r.factors.Data();
  for (int64_t i = 0; i < r.s.batch; ++i) {
    if (!std::isfinite(f[i])) ThrowRange(env, "factors[" + std::to_string(i) + "] must be finite");
  }
  const int64_t n_out = MulSize(env, r.s.out_dim, r.s.in_dim, "shape");
  Napi::Value out = Arg(info, 4);
  if (out.IsUndefined() && r.accumulate) {
    ThrowType(env, "out is required when accumulate is true");
  }
  r.out = OutArg(env, out, n_out, r, F32);
  if (!out.IsUndefined()) CheckNoOverlap(env, r.out, "out", r.factors, "factors");
  return r;
}

Napi::Value ClippedSum(const Napi::CallbackInfo &info) {
  SumArgs r = ParseSum(info);
  CheckStatus(info.Env(),
              dplora_clipped_sum(r.a.Data(), r.g.Data(), r.s.batch, r.s.seq, r.s.in_dim,
                                 r.s.out_dim, r.factors.Data(), r.out.Data(), r.accumulate),
              "clippedSum");
  return r.out;
}

Napi::Value ClippedSumAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SumArgs r = ParseSum(info);
  auto a = CopyIn<float>(r.a);
  auto g = CopyIn<float>(r.g);
  auto f = CopyIn<float>(r.factors);
  auto out = CopyIn<float>(r.out);
  const Shape s = r.s;
  const int acc = r.accumulate ? 1 : 0;
  return StartIntoCopy(env, "clippedSumAsync", r.out, out, [=]() {
    return dplora_clipped_sum(a->data(), g->data(), s.batch, s.seq, s.in_dim, s.out_dim, f->data(),
                              out->data(), acc);
  });
}

// ------------------------------------------------------------ clipping ----

Napi::Object ClipResult(Napi::Env env, Napi::Float32Array factors, const dplora_clip_stats &st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("factors", factors);
  o.Set("clipped", Napi::Number::New(env, static_cast<double>(st.clipped)));
  o.Set("nonfinite", Napi::Number::New(env, static_cast<double>(st.nonfinite)));
  return o;
}

Napi::Value ClipFactors(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float64Array n2 = F64(env, Arg(info, 0), "normsSq");
  const double c = FiniteValue(env, Arg(info, 1), "maxNorm", true);
  const int64_t batch = static_cast<int64_t>(n2.ElementLength());
  Napi::Float32Array out;
  if (Arg(info, 2).IsUndefined()) {
    out = Napi::Float32Array::New(env, static_cast<size_t>(batch));
  } else {
    out = F32(env, Arg(info, 2), "out");
    CheckLength(env, out, batch, "out");
    CheckNoOverlap(env, out, "out", n2, "normsSq");
  }
  dplora_clip_stats st{0, 0};
  CheckStatus(env, dplora_clip_factors(n2.Data(), batch, c, out.Data(), &st), "clipFactors");
  return ClipResult(env, out, st);
}

Napi::Value ClipRows(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  const int64_t batch = IntValue(env, Arg(info, 1), "batch");
  const int64_t dim = IntValue(env, Arg(info, 2), "dim");
  const double c = FiniteValue(env, Arg(info, 3), "maxNorm", true);
  CheckLength(env, x, MulSize(env, batch, dim, "batch * dim"), "x");
  Napi::Float32Array factors = Napi::Float32Array::New(env, static_cast<size_t>(batch));
  dplora_clip_stats st{0, 0};
  CheckStatus(env, dplora_clip_rows(x.Data(), batch, dim, c, factors.Data(), &st), "clipRows");
  return ClipResult(env, factors, st);
}

// -------------------------------------------------- per-sample (sound) ----

// Shape fields batch/seq/inDim/outDim of a per-sample call, with checked sizes.
struct PsShape {
  int64_t batch, seq, in_dim, out_dim;
};

PsShape ParsePsShape(Napi::Env env, Napi::Value v) {
  Napi::Object o = Obj(env, v, "shape");
  return {IntField(env, o, "batch"), IntField(env, o, "seq"), IntField(env, o, "inDim"),
          IntField(env, o, "outDim")};
}

Napi::Value PerSampleGrads(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array a = F32(env, Arg(info, 0), "a");
  Napi::Float32Array g = F32(env, Arg(info, 1), "g");
  const PsShape s = ParsePsShape(env, Arg(info, 2));
  const double alpha = FiniteValue(env, Arg(info, 3), "alpha", false);
  Napi::Float32Array out = F32(env, Arg(info, 4), "out");
  const int64_t bt = MulSize(env, s.batch, s.seq, "batch * seq");
  CheckLength(env, a, MulSize(env, bt, s.in_dim, "batch * seq * inDim"), "a");
  CheckLength(env, g, MulSize(env, bt, s.out_dim, "batch * seq * outDim"), "g");
  const int64_t pd = MulSize(env, s.in_dim, s.out_dim, "inDim * outDim");
  CheckLength(env, out, MulSize(env, s.batch, pd, "batch * inDim * outDim"), "out");
  CheckNoOverlap(env, out, "out", a, "a");
  CheckNoOverlap(env, out, "out", g, "g");
  CheckStatus(env,
              dplora_per_sample_grads(a.Data(), g.Data(), s.batch, s.seq, s.in_dim, s.out_dim,
                                      static_cast<float>(alpha), out.Data()),
              "perSampleGrads");
  return out;
}

Napi::Value RowsSumSq(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  const int64_t rows = IntValue(env, Arg(info, 1), "rows");
  const int64_t n = IntValue(env, Arg(info, 2), "n");
  Napi::Float64Array out = F64(env, Arg(info, 3), "out");
  CheckLength(env, x, MulSize(env, rows, n, "rows * n"), "x");
  CheckLength(env, out, rows, "out");
  CheckStatus(env, dplora_rows_sumsq_f64(x.Data(), rows, n, out.Data()), "rowsSumSq");
  return out;
}

Napi::Value RowsScaledSum(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  const int64_t rows = IntValue(env, Arg(info, 1), "rows");
  const int64_t n = IntValue(env, Arg(info, 2), "n");
  Napi::Float32Array f = F32(env, Arg(info, 3), "factors");
  Napi::Float64Array out = F64(env, Arg(info, 4), "out");
  CheckLength(env, x, MulSize(env, rows, n, "rows * n"), "x");
  CheckLength(env, f, rows, "factors");
  CheckLength(env, out, n, "out");
  CheckStatus(env, dplora_rows_scaled_sum_f64(x.Data(), rows, n, f.Data(), out.Data()),
              "rowsScaledSum");
  return out;
}

Napi::Value OuterScaledSum(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array a = F32(env, Arg(info, 0), "a");
  Napi::Float32Array g = F32(env, Arg(info, 1), "g");
  const int64_t rows = IntValue(env, Arg(info, 2), "rows");
  const int64_t in_dim = IntValue(env, Arg(info, 3), "inDim");
  const int64_t out_dim = IntValue(env, Arg(info, 4), "outDim");
  Napi::Float32Array f = F32(env, Arg(info, 5), "factors");
  const double scale = FiniteValue(env, Arg(info, 6), "scale", false);
  Napi::Float64Array out = F64(env, Arg(info, 7), "out");
  CheckLength(env, a, MulSize(env, rows, in_dim, "rows * inDim"), "a");
  CheckLength(env, g, MulSize(env, rows, out_dim, "rows * outDim"), "g");
  CheckLength(env, f, rows, "factors");
  CheckLength(env, out, MulSize(env, in_dim, out_dim, "inDim * outDim"), "out");
  CheckStatus(env,
              dplora_outer_scaled_sum_f64(a.Data(), g.Data(), rows, in_dim, out_dim, f.Data(),
                                          scale, out.Data()),
              "outerScaledSum");
  return out;
}

Napi::Value NoisyMean(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float64Array sum = F64(env, Arg(info, 0), "sum");
  Napi::Float32Array g = F32(env, Arg(info, 1), "g");
  const double scale = FiniteValue(env, Arg(info, 2), "scale", false);
  CheckLength(env, g, static_cast<int64_t>(sum.ElementLength()), "g");
  int64_t bad = 0;
  CheckStatus(env,
              dplora_noisy_mean_f32(sum.Data(), g.Data(), static_cast<int64_t>(g.ElementLength()),
                                    scale, &bad),
              "noisyMean");
  return Napi::Number::New(env, static_cast<double>(bad));
}

// ------------------------------------------------------------ roofline ----

Napi::Value BenchReadBandwidth(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  const int64_t repeats = IntValue(env, Arg(info, 1), "repeats", 1);
  if (repeats > (1 << 30)) ThrowRange(env, "repeats is too large");
  if (x.ElementLength() == 0) ThrowRange(env, "x must not be empty");
  double checksum = 0;
  const double bw = dplora_bench_read_bandwidth(x.Data(), static_cast<int64_t>(x.ElementLength()),
                                                static_cast<int>(repeats), &checksum);
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesPerSecond", bw);
  o.Set("checksum", checksum);
  return o;
}

Napi::Value BenchFmaPeak(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int64_t iters = IntValue(env, Arg(info, 0), "iters", 1);
  double checksum = 0;
  const double f = dplora_bench_fma_peak(iters, &checksum);
  Napi::Object o = Napi::Object::New(env);
  o.Set("flopsPerSecond", f);
  o.Set("checksum", checksum);
  return o;
}

// ------------------------------------------------------- huge pages ----

// adviseHugePages(x) -> whether the advice was given: asks the kernel (Linux madvise
// MADV_HUGEPAGE) to back the 2 MiB-aligned pages inside x's memory with transparent huge pages
// when they are first touched.  Contents are unchanged; pages already present stay as they are.
// A large array written right after its allocation then takes a few hundred-microsecond faults
// instead of one 4 KiB fault per page (on virtual machines ~15 us each: ~45 ms for 12 MiB).
// False (nothing done) on other systems, for less than one aligned huge page, or if refused.
Napi::Value AdviseHugePages(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = F32(env, Arg(info, 0), "x");
  bool advised = false;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const auto begin = reinterpret_cast<uintptr_t>(x.Data());
  const uintptr_t end = begin + x.ElementLength() * sizeof(float);
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = end & ~(kHuge - 1);
  if (x.ElementLength() > 0 && hi > lo) {
    advised = madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_HUGEPAGE) == 0;
  }
#endif
  return Napi::Boolean::New(env, advised);
}

}  // namespace

void RegisterLinalg(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "sgemm", Sgemm);
  Export(env, exports, "sgemmAsync", SgemmAsync);
  Export(env, exports, "sgemmPackB", SgemmPackB);
  Export(env, exports, "sgemmPacked", SgemmPacked);
  Export(env, exports, "packedInfo", PackedInfo);
  Export(env, exports, "sgemmRepackB", SgemmRepackB);
  Export(env, exports, "gradNormSq", GradNormSq);
  Export(env, exports, "gradNormSqAsync", GradNormSqAsync);
  Export(env, exports, "clippedSum", ClippedSum);
  Export(env, exports, "clippedSumAsync", ClippedSumAsync);
  Export(env, exports, "clipFactors", ClipFactors);
  Export(env, exports, "clipRows", ClipRows);
  Export(env, exports, "perSampleGrads", PerSampleGrads);
  Export(env, exports, "rowsSumSq", RowsSumSq);
  Export(env, exports, "rowsScaledSum", RowsScaledSum);
  Export(env, exports, "outerScaledSum", OuterScaledSum);
  Export(env, exports, "noisyMean", NoisyMean);
  Export(env, exports, "benchReadBandwidth", BenchReadBandwidth);
  Export(env, exports, "benchFmaPeak", BenchFmaPeak);
  Export(env, exports, "adviseHugePages", AdviseHugePages);
}

}  // namespace dplora_binding
