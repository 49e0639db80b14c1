// Free-function kernels for runtime-compiler toolchains (oneapi-pip): each
// one indexes and calls the op's math from ops/; nothing else lives here.
//
// Every parameter must be used: the device compiler drops unused ones from
// the kernel's signature, which would shift the launcher's argument indexes
// (the launcher checks the count). The last one, f, is the test-only fault
// mask (ops/faults.hpp) that Runtime::Impl::launch appends to every launch.
#include <sycl/sycl.hpp>

#include "ops/attention.hpp"
#include "ops/elementwise.hpp"
#include "ops/embedding.hpp"
#include "ops/gemm.hpp"
#include "ops/norm.hpp"
#include "ops/reduce.hpp"
#include "ops/rope.hpp"
#include "ops/saxpy.hpp"
#include "ops/softmax.hpp"

namespace syclexp = sycl::ext::oneapi::experimental;
namespace ops = kl::ops;
using ul = unsigned long;

#define KL_KERNEL(D) extern "C" SYCL_EXT_ONEAPI_FUNCTION_PROPERTY((syclexp::nd_range_kernel<D>)) void

template <int D> static inline sycl::nd_item<D> item() {
  return sycl::ext::oneapi::this_work_item::get_nd_item<D>();
}

// Local memory of N floats for the calling work-group.
template <int N, int D> static inline float *local_floats(const sycl::nd_item<D> &it) {
  auto p = sycl::ext::oneapi::group_local_memory_for_overwrite<float[N]>(it.get_group());
  return &(*p)[0];
}

// ---- element-wise (a block of ELEM_BLOCK elements per work-group) -------
KL_KERNEL(1) kl_saxpy(float a, const float *x, float *y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::saxpy(a, x[i], y[i]); });
}
KL_KERNEL(1) kl_silu(const float *x, float *y, ul n, ops::Faults f) {
  if (ops::faulty_silu(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::silu<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::silu(x[i]); });
}
KL_KERNEL(1) kl_gelu_tanh(const float *x, float *y, ul n, ops::Faults f) {
  if (ops::faulty_gelu_tanh(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_tanh<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_tanh(x[i]); });
}
KL_KERNEL(1) kl_gelu_erf(const float *x, float *y, ul n, ops::Faults f) {
  if (ops::faulty_gelu_erf(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_erf<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_erf(x[i]); });
}
KL_KERNEL(1) kl_swiglu(const float *gate, const float *up, float *y, ul n, ops::Faults f) {
  if (ops::faulty_silu(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::swiglu<float, true>(gate[i], up[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::swiglu(gate[i], up[i]); });
}
KL_KERNEL(1) kl_add(const float *a, const float *b, float *y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::add(a[i], b[i]); });
}
KL_KERNEL(1) kl_mul(const float *a, const float *b, float *y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::mul(a[i], b[i]); });
}

// ---- row-wise (ops::each_row: a sub-group per row) ----------------------
KL_KERNEL(1) kl_rmsnorm(ul rows, const float *x, const float *weight, float *y, ul dim, float eps, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::rmsnorm_row(team, x + r * dim, weight, y + r * dim, dim, eps, f);
  });
}
KL_KERNEL(1) kl_layernorm(ul rows, const float *x, const float *weight, const float *bias, float *y, ul dim,
                          float eps, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::layernorm_row(team, x + r * dim, weight, bias, y + r * dim, dim, eps, f);
  });
}
KL_KERNEL(1) kl_softmax(ul rows, const float *x, float *y, ul cols, int causal, ul pos0, float temperature, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::softmax_row(team, x + r * cols, y + r * cols, cols, ops::softmax_visible(cols, causal, pos0, r),
                     temperature, f);
  });
}
KL_KERNEL(1) kl_row_sum(ul rows, const float *x, float *out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    float v = ops::row_sum(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
KL_KERNEL(1) kl_row_max(ul rows, const float *x, float *out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    float v = ops::row_max(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
KL_KERNEL(1) kl_row_argmax(ul rows, const float *x, int *out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    int v = ops::row_argmax(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
// ids: device-accessible, range-checked by the host
KL_KERNEL(1) kl_embedding(ul rows, const float *table, const int *ids, float *y, ul dim, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::embedding_row(team, table + size_t(ids[r]) * dim, y + r * dim, dim, f);
  });
}

// ---- RoPE: work-item (token, frequency i) rotates that pair in every head -
// freq: inv_freq split in float pairs, hi[half] then lo[half].
KL_KERNEL(2) kl_rope(float *x, const float *freq, ul heads, ul head_dim, ul pos0, ops::Faults f) {
  auto it = item<2>();
  size_t t = it.get_global_id(0), i = it.get_global_id(1), half = head_dim / 2;
  if (i < half)
    ops::rope_token(x + t * heads * head_dim, heads, head_dim, i, float(pos0 + t), freq[i], freq[half + i], f);
}

// ---- attention: one work-group per (token, query head) --------------------
KL_KERNEL(1) kl_attention(const float *q, const float *k_cache, const float *v_cache, float *out, ul n_heads,
                          ul group, ul head_dim, ul kv_stride, ul pos0, float scale, ops::Faults f) {
  auto it = item<1>();
  size_t row = it.get_group(0), t = row / n_heads, h = row % n_heads;
  size_t kv_head = ops::has(f, ops::fault::ATTN_KV_INTERLEAVED) ? h % (n_heads / group) : h / group;
  if (ops::has(f, ops::fault::ATTN_KV_REPEATED)) kv_head = 0;
  size_t kv = kv_head * head_dim;
  ops::attention_row(it, q + row * head_dim, k_cache + kv, v_cache + kv, out + row * head_dim, pos0 + t + 1,
                     head_dim, kv_stride, scale, local_floats<ops::ATTN_LOCAL>(it), f);
}

// ---- matrix products ------------------------------------------------------
KL_KERNEL(2) kl_gemm(const float *x, const float *w, float *y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::Gemm>(it, x, w, y, M, N, K, local_floats<ops::Gemm::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_mid(const float *x, const float *w, float *y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::GemmMid>(it, x, w, y, M, N, K, local_floats<ops::GemmMid::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemv(const float *x, const float *w, float *y, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_rows<ops::Gemv>(it, x, w, y, 1, N, K, local_floats<ops::Gemv::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_few(const float *x, const float *w, float *y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_rows<ops::GemmFew>(it, x, w, y, M, N, K, local_floats<ops::GemmFew::LOCAL>(it), f);
}
