// syclforge kernel library: the host API.
//
// One Runtime per process and device, used by one thread at a time: its
// calls take no lock, and two threads enqueueing and waiting on one Runtime
// at once fail (invalid events, crashes in the OpenCL runtime). Threads that
// run ops at the same time make a Runtime each (tested), or serialise their
// calls on a shared one, as the C ABI does (kl_c.h: a lock per runtime).
// With runtime-compiler toolchains the
// library embeds one device image per ISA/arch plus a portable SPIR-V image
// and picks the best one the device accepts; single-source toolchains leave
// that choice to their SYCL runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sycl/sycl.hpp>

namespace kl {

// An error the user can act on (bad SYCLFORGE_IMAGE, no device, ...).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ImageInfo {
  std::string id;    // 'avx2', 'spirv', 'sm_90', ...
  std::string kind;  // 'native' or 'portable'
  size_t size;       // bytes embedded (0 when the SYCL runtime owns images)
};

struct Attempt {
  std::string image;
  bool ok;
  std::string why;   // why it was refused, empty when ok
};

class Runtime {
public:
  // Picks the device and the image (honours SYCLFORGE_IMAGE and
  // SYCLFORGE_VERBOSE). Throws kl::Error with a readable message.
  Runtime();
  // Forces one image, as SYCLFORGE_IMAGE=image would ("" = Runtime()).
  explicit Runtime(const std::string &image);
  ~Runtime();
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;

  // In-order. Ops are enqueued on it, or (runtime-compiler builds) straight
  // on the OpenCL queue under it: same order, but wait with wait().
  sycl::queue &queue();
  void wait(); // blocks until enqueued work is done; kl::Error on device errors
  std::string device_name() const;
  std::string image() const;                    // the chosen image id
  const std::vector<Attempt> &attempts() const; // the loader's tries, in order
  static std::vector<ImageInfo> images();       // what this binary holds
  static std::string target();                  // targets.yaml name
  static std::string toolchain();               // the family that built it

  struct Impl;
  Impl &impl() { return *impl_; }

private:
  std::unique_ptr<Impl> impl_;
};

// ---- ops -----------------------------------------------------------------
// The C ABI (syclforge/kl_c.h) says what each op computes; these mirror it.
// Tensors are dense row-major fp32 USM allocations on rt.queue(); ops are
// enqueued and return at once. Bad arguments throw kl::Error before anything
// is enqueued. Zero-sized inputs do nothing.
void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n); // y = a x + y

// y[M,N] = x[M,K] . w[N,K]^T  (w row-major [out, in])
void gemm(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K);
// y[N] = w[N,K] . x[K]
void gemv(Runtime &rt, const float *x, const float *w, float *y, size_t N, size_t K);
// y[N] = residual[N] + w[N,K] . x[K]; residual may be y (in place)
void gemv_add(Runtime &rt, const float *x, const float *w, const float *residual, float *y, size_t N, size_t K);
// y[N] = w[N,K] . rmsnorm(x[K]; norm_weight, eps)
void rmsnorm_gemv(Runtime &rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                  size_t K, float eps);
// y[N] = swiglu(w[0:N] . h, w[N:2N] . h), h = rmsnorm(x[K]; norm_weight, eps); w[2N, K] (gate rows, up rows)
void rmsnorm_gemv_swiglu(Runtime &rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                         size_t K, float eps);

void rmsnorm(Runtime &rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps);
void layernorm(Runtime &rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
               size_t dim, float eps);
void softmax(Runtime &rt, const float *x, float *y, size_t rows, size_t cols, bool causal, size_t pos0,
             float temperature);
// positions pos0 + t must stay below 2^24 (exact in fp32)
void rope(Runtime &rt, float *x, size_t tokens, size_t heads, size_t head_dim, size_t pos0, float theta);
// RoPE of q in place, k rotated and v copied into the caches' rows pos0.. (kl_c.h: kl_rope_qkv)
void rope_qkv(Runtime &rt, float *qkv, float *k_cache, float *v_cache, size_t tokens, size_t n_heads,
              size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float theta);

void silu(Runtime &rt, const float *x, float *y, size_t n);
void gelu_tanh(Runtime &rt, const float *x, float *y, size_t n);
void gelu_erf(Runtime &rt, const float *x, float *y, size_t n);
void swiglu(Runtime &rt, const float *gate, const float *up, float *y, size_t n);
void add(Runtime &rt, const float *a, const float *b, float *y, size_t n);
void mul(Runtime &rt, const float *a, const float *b, float *y, size_t n);

// ids_host: host memory, copied before the call returns; range-checked.
void embedding(Runtime &rt, const float *table, const int32_t *ids_host, float *y, size_t n_ids, size_t dim,
               size_t vocab);

void attention(Runtime &rt, const float *q, const float *k_cache, const float *v_cache, float *out, size_t tokens,
               size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float scale);

// Row-wise over x[rows, cols], cols >= 1, NumPy NaN semantics.
void sum(Runtime &rt, const float *x, float *out, size_t rows, size_t cols);
void max(Runtime &rt, const float *x, float *out, size_t rows, size_t cols);
void argmax(Runtime &rt, const float *x, int32_t *out, size_t rows, size_t cols);

} // namespace kl
