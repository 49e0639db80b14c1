// The C ABI (syclforge/kl_c.h) over the C++ host API: every exception stops
// here and becomes -1 (or NULL) with its message in kl_last_error().
#include <exception>
#include <stdexcept>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/runtime_impl.hpp"
#include "syclforge/kl.hpp"
#include "syclforge/kl_c.h"

struct kl_runtime {
  std::unique_ptr<kl::Runtime> rt;
  std::string device, image; // kept for the const char * getters
  // One call at a time on a runtime (kl_c.h): kl::Runtime takes no lock, and
  // two threads enqueueing and waiting on one at once broke it (invalid
  // events from kl_wait, crashes in the OpenCL runtime).
  std::mutex calls;
};

namespace {

thread_local std::string last_error;

void set_error(const std::string &msg) { last_error = msg; }

// Runs f; 0 on success, -1 with last_error set on any exception. The ops'
// own errors already start with the op's name ("gemm: ...").
template <typename F> int guard(const char *fn, F &&f, bool op = false) {
  last_error.clear();
  try {
    f();
    return 0;
  } catch (const kl::Error &e) {
    set_error(op ? std::string(e.what()) : std::string(fn) + ": " + e.what());
  } catch (const std::exception &e) {
    set_error(std::string(fn) + ": " + e.what());
  } catch (...) {
    set_error(std::string(fn) + ": unknown error");
  }
  return -1;
}

// guard(), holding rt's lock (when rt is not NULL: runtime() then says so).
template <typename F> int guard_rt(kl_runtime *rt, const char *fn, F &&f, bool op = false) {
  std::unique_lock<std::mutex> lock;
  if (rt) lock = std::unique_lock<std::mutex>(rt->calls);
  return guard(fn, std::forward<F>(f), op);
}

kl::Runtime &runtime(kl_runtime *rt) {
  if (!rt || !rt->rt) throw std::invalid_argument("rt is NULL"); // not kl::Error: gets the function name
  return *rt->rt;
}

} // namespace

extern "C" {

kl_runtime *kl_create(const char *image) {
  kl_runtime *out = nullptr;
  guard("kl_create", [&] {
    auto r = std::make_unique<kl_runtime>();
    r->rt = std::make_unique<kl::Runtime>(image ? std::string(image) : std::string());
    r->device = r->rt->device_name();
    r->image = r->rt->image();
    out = r.release();
  });
  return out;
}

void kl_destroy(kl_runtime *rt) {
  guard("kl_destroy", [&] { delete rt; });
}

const char *kl_last_error(void) { return last_error.c_str(); }

const char *kl_device_name(kl_runtime *rt) {
  if (!rt) {
    set_error("kl_device_name: rt is NULL");
    return "";
  }
  return rt->device.c_str();
}

const char *kl_image(kl_runtime *rt) {
  if (!rt) {
    set_error("kl_image: rt is NULL");
    return "";
  }
  return rt->image.c_str();
}

unsigned long long kl_launches(kl_runtime *rt) {
  return rt ? rt->rt->impl().launches.load(std::memory_order_relaxed) : 0;
}

const char *kl_target(void) {
  static const std::string s = kl::Runtime::target();
  return s.c_str();
}

const char *kl_toolchain(void) {
  static const std::string s = kl::Runtime::toolchain();
  return s.c_str();
}

void *kl_alloc(kl_runtime *rt, size_t bytes) {
  void *p = nullptr;
  guard_rt(rt, "kl_alloc", [&] {
    kl::Runtime &r = runtime(rt);
    // Never NULL for 0 bytes: NULL means failure here.
    p = sycl::malloc_device(bytes ? bytes : 1, r.queue());
    if (!p) throw kl::Error("out of device memory (" + std::to_string(bytes) + " bytes)");
  });
  return p;
}

// Waits for enqueued work first: an op in flight may still read p.
void kl_free(kl_runtime *rt, void *p) {
  guard_rt(rt, "kl_free", [&] {
    kl::Runtime &r = runtime(rt);
    if (!p) return;
    r.impl().sync();
    sycl::free(p, r.queue());
  });
}

int kl_to_device(kl_runtime *rt, void *dst, const void *host_src, size_t bytes) {
  return guard_rt(rt, "kl_to_device", [&] {
    kl::Runtime &r = runtime(rt);
    if (!bytes) return;
    if (!dst || !host_src) throw kl::Error(std::string(dst ? "host_src" : "dst") + " is NULL");
    if (sycl::get_pointer_type(dst, r.queue().get_context()) == sycl::usm::alloc::unknown)
      throw kl::Error("dst is not device memory of this runtime (allocate it with kl_alloc)");
    r.queue().memcpy(dst, host_src, bytes).wait(); // the caller may reuse host_src at once
  });
}

int kl_to_host(kl_runtime *rt, void *host_dst, const void *src, size_t bytes) {
  return guard_rt(rt, "kl_to_host", [&] {
    kl::Runtime &r = runtime(rt);
    if (!bytes) return;
    if (!host_dst || !src) throw kl::Error(std::string(host_dst ? "src" : "host_dst") + " is NULL");
    if (sycl::get_pointer_type(src, r.queue().get_context()) == sycl::usm::alloc::unknown)
      throw kl::Error("src is not device memory of this runtime (allocate it with kl_alloc)");
    r.queue().memcpy(host_dst, src, bytes).wait();
  });
}

int kl_wait(kl_runtime *rt) {
  return guard_rt(rt, "kl_wait", [&] { runtime(rt).wait(); });
}

int kl_gemm(kl_runtime *rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  return guard_rt(rt, "kl_gemm", [&] { kl::gemm(runtime(rt), x, w, y, M, N, K); }, true);
}
int kl_gemv(kl_runtime *rt, const float *x, const float *w, float *y, size_t N, size_t K) {
  return guard_rt(rt, "kl_gemv", [&] { kl::gemv(runtime(rt), x, w, y, N, K); }, true);
}
int kl_gemv_add(kl_runtime *rt, const float *x, const float *w, const float *residual, float *y, size_t N, size_t K) {
  return guard_rt(rt, "kl_gemv_add", [&] { kl::gemv_add(runtime(rt), x, w, residual, y, N, K); }, true);
}
int kl_rmsnorm_gemv(kl_runtime *rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                    size_t K, float eps) {
  return guard_rt(rt, "kl_rmsnorm_gemv", [&] { kl::rmsnorm_gemv(runtime(rt), x, norm_weight, w, y, N, K, eps); }, true);
}
int kl_rmsnorm_gemv_swiglu(kl_runtime *rt, const float *x, const float *norm_weight, const float *w, float *y,
                           size_t N, size_t K, float eps) {
  return guard_rt(rt, "kl_rmsnorm_gemv_swiglu",
               [&] { kl::rmsnorm_gemv_swiglu(runtime(rt), x, norm_weight, w, y, N, K, eps); }, true);
}
int kl_rmsnorm(kl_runtime *rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps) {
  return guard_rt(rt, "kl_rmsnorm", [&] { kl::rmsnorm(runtime(rt), x, weight, y, rows, dim, eps); }, true);
}
int kl_layernorm(kl_runtime *rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
                 size_t dim, float eps) {
  return guard_rt(rt, "kl_layernorm", [&] { kl::layernorm(runtime(rt), x, weight, bias, y, rows, dim, eps); }, true);
}
int kl_softmax(kl_runtime *rt, const float *x, float *y, size_t rows, size_t cols, int causal, size_t pos0,
               float temperature) {
  return guard_rt(rt, "kl_softmax", [&] { kl::softmax(runtime(rt), x, y, rows, cols, causal != 0, pos0, temperature); }, true);
}
int kl_rope_qkv(kl_runtime *rt, float *qkv, float *k_cache, float *v_cache, size_t tokens, size_t n_heads,
                size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float theta) {
  return guard_rt(rt, "kl_rope_qkv", [&] {
    kl::rope_qkv(runtime(rt), qkv, k_cache, v_cache, tokens, n_heads, n_kv_heads, head_dim, pos0, max_seq, theta);
  }, true);
}
int kl_rope(kl_runtime *rt, float *x, size_t tokens, size_t heads, size_t head_dim, size_t pos0, float theta) {
  return guard_rt(rt, "kl_rope", [&] { kl::rope(runtime(rt), x, tokens, heads, head_dim, pos0, theta); }, true);
}
int kl_silu(kl_runtime *rt, const float *x, float *y, size_t n) {
  return guard_rt(rt, "kl_silu", [&] { kl::silu(runtime(rt), x, y, n); }, true);
}
int kl_gelu_tanh(kl_runtime *rt, const float *x, float *y, size_t n) {
  return guard_rt(rt, "kl_gelu_tanh", [&] { kl::gelu_tanh(runtime(rt), x, y, n); }, true);
}
int kl_gelu_erf(kl_runtime *rt, const float *x, float *y, size_t n) {
  return guard_rt(rt, "kl_gelu_erf", [&] { kl::gelu_erf(runtime(rt), x, y, n); }, true);
}
int kl_swiglu(kl_runtime *rt, const float *gate, const float *up, float *y, size_t n) {
  return guard_rt(rt, "kl_swiglu", [&] { kl::swiglu(runtime(rt), gate, up, y, n); }, true);
}
int kl_add(kl_runtime *rt, const float *a, const float *b, float *y, size_t n) {
  return guard_rt(rt, "kl_add", [&] { kl::add(runtime(rt), a, b, y, n); }, true);
}
int kl_mul(kl_runtime *rt, const float *a, const float *b, float *y, size_t n) {
  return guard_rt(rt, "kl_mul", [&] { kl::mul(runtime(rt), a, b, y, n); }, true);
}
int kl_embedding(kl_runtime *rt, const float *table, const int32_t *ids_host, float *y, size_t n_ids, size_t dim,
                 size_t vocab) {
  return guard_rt(rt, "kl_embedding", [&] { kl::embedding(runtime(rt), table, ids_host, y, n_ids, dim, vocab); }, true);
}
int kl_attention(kl_runtime *rt, const float *q, const float *k_cache, const float *v_cache, float *out,
                 size_t tokens, size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq,
                 float scale) {
  return guard_rt(rt, "kl_attention", [&] {
    kl::attention(runtime(rt), q, k_cache, v_cache, out, tokens, n_heads, n_kv_heads, head_dim, pos0, max_seq,
                  scale);
  }, true);
}
int kl_sum(kl_runtime *rt, const float *x, float *out, size_t rows, size_t cols) {
  return guard_rt(rt, "kl_sum", [&] { kl::sum(runtime(rt), x, out, rows, cols); }, true);
}
int kl_max(kl_runtime *rt, const float *x, float *out, size_t rows, size_t cols) {
  return guard_rt(rt, "kl_max", [&] { kl::max(runtime(rt), x, out, rows, cols); }, true);
}
int kl_argmax(kl_runtime *rt, const float *x, int32_t *out, size_t rows, size_t cols) {
  return guard_rt(rt, "kl_argmax", [&] { kl::argmax(runtime(rt), x, out, rows, cols); }, true);
}

} // extern "C"
