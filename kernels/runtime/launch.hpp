// The launch layer: one function per op, implemented once per way of
// launching kernels (launch_free.cpp for runtime-compiler toolchains,
// launch_lambda.cpp for single-source ones). Arguments are already checked
// (api.cpp) and sizes are non-zero; these only map the op onto an nd-range.
//
// api.cpp calls them through a Table (Runtime::Impl::ops) that the launch
// file exports as kl_launch_table(): where a single-source family builds one
// module per ISA (AdaptiveCpp), the table comes from the module the CPU runs
// best (syclforge::load_module), so the launch files call nothing of the
// library's other files (a module is loaded privately).
#pragma once
#include <cstddef>
#include <cstdint>

#include <sycl/sycl.hpp>

#include "syclforge/kl.hpp"

namespace kl::launch {

void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n);
void silu(Runtime &rt, const float *x, float *y, size_t n);
void gelu_tanh(Runtime &rt, const float *x, float *y, size_t n);
void gelu_erf(Runtime &rt, const float *x, float *y, size_t n);
void swiglu(Runtime &rt, const float *gate, const float *up, float *y, size_t n);
void add(Runtime &rt, const float *a, const float *b, float *y, size_t n);
void mul(Runtime &rt, const float *a, const float *b, float *y, size_t n);
void rmsnorm(Runtime &rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps);
void layernorm(Runtime &rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
                      size_t dim, float eps);
void softmax(Runtime &rt, const float *x, float *y, size_t rows, size_t cols, int causal, size_t pos0,
                    float temperature);
void row_sum(Runtime &rt, const float *x, float *out, size_t rows, size_t cols);
void row_max(Runtime &rt, const float *x, float *out, size_t rows, size_t cols);
void row_argmax(Runtime &rt, const float *x, int32_t *out, size_t rows, size_t cols);
// ids: device-accessible (host USM staged by api.cpp), already range-checked
void embedding(Runtime &rt, const float *table, const int32_t *ids, float *y, size_t n_ids, size_t dim);
// freq: Runtime::Impl::rope_table
void rope(Runtime &rt, float *x, const float *freq, size_t tokens, size_t heads, size_t head_dim,
                 size_t pos0);
// qkv[tokens, n_heads + 2 n_kv_heads, head_dim]; the caches' rows from pos0
void rope_qkv(Runtime &rt, float *qkv, float *k_cache, float *v_cache, const float *freq, size_t tokens,
              size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0);
void attention(Runtime &rt, const float *q, const float *k_cache, const float *v_cache, float *out,
                      size_t tokens, size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, float scale);
void gemm(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K);
void gemv(Runtime &rt, const float *x, const float *w, float *y, size_t N, size_t K);
void gemv_add(Runtime &rt, const float *x, const float *w, const float *res, float *y, size_t N, size_t K);
void rmsnorm_gemv(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N, size_t K,
                  float eps);
// y[N] = swiglu(w[0:N] . rmsnorm(x), w[N:2N] . rmsnorm(x)), w[2N, K]
void rmsnorm_gemv_swiglu(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N,
                         size_t K, float eps);
// GEMM for M <= ops::GEMM_MID_MAX_M
void gemm_mid(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K);
// GEMM for M <= ops::GEMM_FEW_MAX_M
void gemm_few(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K);

// Every op above, once: the table's members.
#define KL_LAUNCH_OPS(X)                                                                                           \
  X(saxpy) X(silu) X(gelu_tanh) X(gelu_erf) X(swiglu) X(add) X(mul) X(rmsnorm) X(layernorm) X(softmax) X(row_sum)  \
  X(row_max) X(row_argmax) X(embedding) X(rope) X(rope_qkv) X(attention) X(gemm) X(gemv) X(gemv_add)  \
  X(rmsnorm_gemv) X(rmsnorm_gemv_swiglu) \
  X(gemm_mid) X(gemm_few)

#define KL_LAUNCH_TYPE(op) using op##_fn = decltype(&op);
KL_LAUNCH_OPS(KL_LAUNCH_TYPE)
#undef KL_LAUNCH_TYPE
struct Table {
#define KL_LAUNCH_MEMBER(op) op##_fn op;
  KL_LAUNCH_OPS(KL_LAUNCH_MEMBER)
#undef KL_LAUNCH_MEMBER
};

} // namespace kl::launch

// Defined by each launch file (KL_LAUNCH_TABLE_DEFINITION at its end).
extern "C" const kl::launch::Table *kl_launch_table();
#define KL_LAUNCH_ADDRESS(op) &kl::launch::op,
#define KL_LAUNCH_TABLE_DEFINITION                                                                                 \
  extern "C" __attribute__((visibility("default"))) const kl::launch::Table *kl_launch_table() {                  \
    static const kl::launch::Table table{KL_LAUNCH_OPS(KL_LAUNCH_ADDRESS)};                                        \
    return &table;                                                                                                 \
  }
