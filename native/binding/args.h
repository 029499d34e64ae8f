// Argument checking for the node-addon-api glue.  Every check throws a JS
// TypeError or RangeError whose message names the argument, so no input can
// reach a kernel with a shape it does not match.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dplora.h"

namespace dplora_binding {

inline std::string Str(const char *s) {
  return std::string(s);
}

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string &msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] inline void ThrowRange(Napi::Env env, const std::string &msg) {
  throw Napi::RangeError::New(env, msg);
}

// Throws for a negative kernel status; `what` names the call.
inline void CheckStatus(Napi::Env env, int rc, const char *what) {
  if (rc == DPLORA_OK) return;
  std::string w(what);
  switch (rc) {
    case DPLORA_EINVAL:
      ThrowRange(env, w + ": invalid argument");
    case DPLORA_EOVERFLOW:
      ThrowRange(env, w + ": input could overflow the integer accumulator");
    case DPLORA_ENOMEM:
      throw Napi::Error::New(env, w + ": out of memory");
    case DPLORA_EENTROPY:
      throw Napi::Error::New(env, w + ": the OS entropy source failed");
    default:
      throw Napi::Error::New(env, w + ": failed with code " + std::to_string(rc));
  }
}

inline Napi::Value Arg(const Napi::CallbackInfo &info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

// True if v is a typed array of the given element type.
inline bool IsTypedArrayOf(Napi::Value v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

template <typename T>
inline T TypedArg(Napi::Env env, Napi::Value v, napi_typedarray_type type, const char *type_name,
                  const char *name) {
  if (!IsTypedArrayOf(v, type)) ThrowType(env, Str(name) + " must be a " + type_name);
  return v.As<T>();
}

inline Napi::Float32Array F32(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Float32Array>(env, v, napi_float32_array, "Float32Array", name);
}
inline Napi::Float64Array F64(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Float64Array>(env, v, napi_float64_array, "Float64Array", name);
}
inline Napi::Int32Array I32(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Int32Array>(env, v, napi_int32_array, "Int32Array", name);
}
inline Napi::BigInt64Array I64(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::BigInt64Array>(env, v, napi_bigint64_array, "BigInt64Array", name);
}
inline Napi::Uint8Array U8(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Uint8Array>(env, v, napi_uint8_array, "Uint8Array", name);
}
inline Napi::Uint32Array U32(Napi::Env env, Napi::Value v, const char *name) {
  return TypedArg<Napi::Uint32Array>(env, v, napi_uint32_array, "Uint32Array", name);
}

inline Napi::Object Obj(Napi::Env env, Napi::Value v, const char *name) {
  if (!v.IsObject() || v.IsTypedArray() || v.IsArray())
    ThrowType(env, Str(name) + " must be an object");
  return v.As<Napi::Object>();
}

// A non-negative integer that fits exactly in a double (<= 2^53).
inline int64_t IntValue(Napi::Env env, Napi::Value v, const char *name, int64_t min_value = 0) {
  if (!v.IsNumber()) ThrowType(env, Str(name) + " must be an integer number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d)
    ThrowRange(env, Str(name) + " must be a finite integer");
  if (d < static_cast<double>(min_value)) {
    ThrowRange(env, Str(name) + " must be >= " + std::to_string(min_value));
  }
  if (d > 9007199254740992.0) ThrowRange(env, Str(name) + " is too large");
  return static_cast<int64_t>(d);
}

inline int64_t IntField(Napi::Env env, Napi::Object o, const char *key, int64_t min_value = 0) {
  return IntValue(env, o.Get(key), key, min_value);
}

// A finite double, optionally required to be > 0.
inline double FiniteValue(Napi::Env env, Napi::Value v, const char *name, bool positive) {
  if (!v.IsNumber()) ThrowType(env, Str(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowRange(env, Str(name) + " must be finite");
  if (positive && !(d > 0)) ThrowRange(env, Str(name) + " must be > 0");
  return d;
}

// a * b with a RangeError instead of overflow (sizes stay below 2^53).
inline int64_t MulSize(Napi::Env env, int64_t a, int64_t b, const char *what) {
  if (a != 0 && b > (int64_t{1} << 53) / a) ThrowRange(env, Str(what) + ": size overflows");
  return a * b;
}

template <typename TA>
inline void CheckLength(Napi::Env env, const TA &arr, int64_t expected, const char *name) {
  if (static_cast<int64_t>(arr.ElementLength()) != expected) {
    ThrowRange(env, Str(name) + " has length " + std::to_string(arr.ElementLength()) +
                        " but the shape needs " + std::to_string(expected));
  }
}

// Async kernels never read or write JS memory off the main thread: a caller may transfer
// (detach) the ArrayBuffer or shrink a resizable one while the promise is pending. Inputs are
// copied into native memory before the work is queued (CopyIn); outputs are computed into a
// native copy and written back on the main thread when the work is done (CopyOut), after
// checking that the array still has its length; otherwise the promise is rejected.
template <typename T, typename TA>
std::shared_ptr<std::vector<T>> CopyIn(const TA &arr) {
  const T *p = arr.Data();
  const size_t n = arr.ElementLength();
  return std::make_shared<std::vector<T>>(p, p + n);
}

template <typename T>
Napi::Value CopyOut(Napi::Env env, const Napi::ObjectReference &ref, const std::vector<T> &v,
                    const char *what) {
  Napi::TypedArrayOf<T> ta = ref.Value().As<Napi::TypedArrayOf<T>>();
  if (ta.ElementLength() != v.size()) {
    ThrowRange(env, Str(what) +
                        ": the output array was detached, transferred or resized while the call "
                        "was pending; its result was discarded");
  }
  if (!v.empty()) std::memcpy(ta.Data(), v.data(), v.size() * sizeof(T));
  return ta;
}

// Runs `work` (no JS access) on a libuv worker thread and resolves a Promise
// with `done(env)`; `keep` values (typed arrays) stay referenced until then.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<int()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Start(Napi::Env env, const char *what, Work work, Done done,
                             std::initializer_list<Napi::Value> keep) {
    auto *w = new PromiseWorker(env, what, std::move(work), std::move(done));
    for (auto &v : keep) {
      if (v.IsObject()) w->refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    Napi::Promise p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      rc_ = work_();
    } catch (const std::exception &e) {
      SetError(what_ + ": " + e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      CheckStatus(env, rc_, what_.c_str());
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error &e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

 private:
  PromiseWorker(Napi::Env env, const char *what, Work work, Done done)
      : Napi::AsyncWorker(env, what),
        deferred_(Napi::Promise::Deferred::New(env)),
        what_(what),
        work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise::Deferred deferred_;
  std::string what_;
  Work work_;
  Done done_;
  int rc_ = DPLORA_OK;
  std::vector<Napi::ObjectReference> refs_;
};

// Queues `work`, which computes into `copy` (a CopyIn of `out`), on a worker thread; the promise
// resolves to `out` once the result is written back into it on the main thread (CopyOut).
template <typename T, typename TA>
Napi::Promise StartIntoCopy(Napi::Env env, const char *what, const TA &out,
                            std::shared_ptr<std::vector<T>> copy, PromiseWorker::Work work) {
  auto ref =
      std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.template As<Napi::Object>()));
  return PromiseWorker::Start(
      env, what, std::move(work),
      [ref, copy, what](Napi::Env e) { return CopyOut<T>(e, *ref, *copy, what); }, {});
}

}  // namespace dplora_binding
