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

// USM pointers arrive as addresses: a pointer parameter makes the CPU
// runtime book the allocation on every launch (clSetKernelArgMemPointerINTEL
// and its free-wait list), ~8 us of a ~15 us launch (measured: a C loop of
// 16-float adds, 15.5 us a launch with pointer arguments, 7.4 us with
// addresses). The loader allows the kernels indirect USM access
// (runtime/loader_opencl.cpp). usm<T> converts to T*, so the bodies index it
// as a pointer.
template <typename T> struct usm {
  unsigned long address;
  operator T *() const { return reinterpret_cast<T *>(address); }
};
static_assert(sizeof(usm<float>) == sizeof(float *), "the launcher passes pointers as they are");

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
KL_KERNEL(1) kl_saxpy(float a, usm<const float> x, usm<float> y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::saxpy(a, x[i], y[i]); });
}
KL_KERNEL(1) kl_silu(usm<const float> x, usm<float> y, ul n, ops::Faults f) {
  if (ops::faulty_silu(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::silu<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::silu(x[i]); });
}
KL_KERNEL(1) kl_gelu_tanh(usm<const float> x, usm<float> y, ul n, ops::Faults f) {
  if (ops::faulty_gelu_tanh(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_tanh<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_tanh(x[i]); });
}
KL_KERNEL(1) kl_gelu_erf(usm<const float> x, usm<float> y, ul n, ops::Faults f) {
  if (ops::faulty_gelu_erf(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_erf<float, true>(x[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::gelu_erf(x[i]); });
}
KL_KERNEL(1) kl_swiglu(usm<const float> gate, usm<const float> up, usm<float> y, ul n, ops::Faults f) {
  if (ops::faulty_silu(f)) ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::swiglu<float, true>(gate[i], up[i]); });
  else ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::swiglu(gate[i], up[i]); });
}
KL_KERNEL(1) kl_add(usm<const float> a, usm<const float> b, usm<float> y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::add(a[i], b[i]); });
}
KL_KERNEL(1) kl_mul(usm<const float> a, usm<const float> b, usm<float> y, ul n, ops::Faults f) {
  ops::each_in_block(item<1>(), n, f, [&](size_t i) { y[i] = ops::mul(a[i], b[i]); });
}

// ---- row-wise (ops::each_row: a sub-group per row) ----------------------
KL_KERNEL(1) kl_rmsnorm(ul rows, usm<const float> x, usm<const float> weight, usm<float> y, ul dim, float eps,
                        ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::rmsnorm_row(team, x + r * dim, weight, y + r * dim, dim, eps, f);
  });
}
KL_KERNEL(1) kl_layernorm(ul rows, usm<const float> x, usm<const float> weight, usm<const float> bias, usm<float> y,
                          ul dim,
                          float eps, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::layernorm_row(team, x + r * dim, weight, bias, y + r * dim, dim, eps, f);
  });
}
KL_KERNEL(1) kl_softmax(ul rows, usm<const float> x, usm<float> y, ul cols, int causal, ul pos0, float temperature,
                        ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::softmax_row(team, x + r * cols, y + r * cols, cols, ops::softmax_visible(cols, causal, pos0, r),
                     temperature, f);
  });
}
KL_KERNEL(1) kl_row_sum(ul rows, usm<const float> x, usm<float> out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    float v = ops::row_sum(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
KL_KERNEL(1) kl_row_max(ul rows, usm<const float> x, usm<float> out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    float v = ops::row_max(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
KL_KERNEL(1) kl_row_argmax(ul rows, usm<const float> x, usm<int> out, ul cols, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    int v = ops::row_argmax(team, x + r * cols, cols, f);
    if (team.get_local_linear_id() == 0) out[r] = v;
  });
}
// ids: device-accessible, range-checked by the host
KL_KERNEL(1) kl_embedding(ul rows, usm<const float> table, usm<const int> ids, usm<float> y, ul dim, ops::Faults f) {
  ops::each_row(item<1>(), rows, [&](const auto &team, size_t r) {
    ops::embedding_row(team, table + size_t(ids[r]) * dim, y + r * dim, dim, f);
  });
}

// ---- RoPE: work-item (token, frequency i) rotates that pair in every head -
// freq: inv_freq split in float pairs, hi[half] then lo[half].
KL_KERNEL(2) kl_rope(usm<float> x, usm<const float> freq, ul heads, ul head_dim, ul pos0, ops::Faults f) {
  auto it = item<2>();
  size_t t = it.get_global_id(0), i = it.get_global_id(1), half = head_dim / 2;
  if (i < half)
    ops::rope_token(x + t * heads * head_dim, heads, head_dim, i, float(pos0 + t), freq[i], freq[half + i], f);
}

KL_KERNEL(2) kl_rope_qkv(usm<float> qkv, usm<float> k_cache, usm<float> v_cache, usm<const float> freq, ul n_heads,
                         ul n_kv_heads, ul head_dim, ul pos0, ops::Faults f) {
  auto it = item<2>();
  size_t t = it.get_global_id(0), i = it.get_global_id(1), half = head_dim / 2, kv = n_kv_heads * head_dim;
  if (i < half)
    ops::rope_qkv_token(qkv + t * (n_heads * head_dim + 2 * kv), k_cache + (pos0 + t) * kv,
                        v_cache + (pos0 + t) * kv, n_heads, n_kv_heads, head_dim, i, float(pos0 + t), freq[i],
                        freq[half + i], f);
}

// ---- attention: one work-group per (token, query head) --------------------
KL_KERNEL(1) kl_attention(usm<const float> q, usm<const float> k_cache, usm<const float> v_cache, usm<float> out,
                          ul n_heads,
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
KL_KERNEL(2) kl_gemm(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::Gemm>(it, x, w, y, M, N, K, local_floats<ops::Gemm::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_band(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ul band, ul kt,
                          ops::Faults f) {
  auto it = item<2>();
  ops::gemm_band<ops::GemmBand>(it, x, w, y, M, N, K, band, kt, local_floats<ops::GemmBand::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_wide(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::GemmWide>(it, x, w, y, M, N, K, local_floats<ops::GemmWide::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_wide_big(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::GemmWideBig>(it, x, w, y, M, N, K, local_floats<ops::GemmWideBig::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_wide_mid(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::GemmWideMid>(it, x, w, y, M, N, K, local_floats<ops::GemmWideMid::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemm_mid(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_tile<ops::GemmMid>(it, x, w, y, M, N, K, local_floats<ops::GemmMid::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemv(usm<const float> x, usm<const float> w, usm<float> y, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_rows<ops::Gemv>(it, x, w, y, 1, N, K, local_floats<ops::Gemv::LOCAL>(it), f);
}
KL_KERNEL(2) kl_gemv_add(usm<const float> x, usm<const float> w, usm<const float> res, usm<float> y, ul N, ul K,
                         ops::Faults f) {
  auto it = item<2>();
  ops::gemm_rows<ops::Gemv>(it, x, w, y, 1, N, K, local_floats<ops::Gemv::LOCAL>(it), f, res);
}
KL_KERNEL(2) kl_rmsnorm_gemv(usm<const float> x, usm<const float> norm_w, usm<const float> w, usm<float> y, ul N,
                             ul K, float eps, ops::Faults f) {
  auto it = item<2>();
  float *scratch = local_floats<ops::Gemv::LOCAL>(it);
  if (ops::has(f, ops::fault::ROWS_NORM_NO_WEIGHT))
    ops::gemm_rows<ops::Gemv, ops::NORM_UNWEIGHTED>(it, x, w, y, 1, N, K, scratch, f, nullptr, norm_w, eps);
  else ops::gemm_rows<ops::Gemv, ops::NORM_WEIGHTED>(it, x, w, y, 1, N, K, scratch, f, nullptr, norm_w, eps);
}
KL_KERNEL(2) kl_rmsnorm_gemv_swiglu(usm<const float> x, usm<const float> norm_w, usm<const float> w, usm<float> y,
                                    ul N, ul K, float eps, ops::Faults f) {
  auto it = item<2>();
  float *scratch = local_floats<ops::Gemv::LOCAL>(it);
  if (ops::has(f, ops::fault::ROWS_NORM_NO_WEIGHT))
    ops::gemm_rows<ops::Gemv, ops::NORM_UNWEIGHTED, true>(it, x, w, y, 1, N, K, scratch, f, nullptr, norm_w, eps);
  else ops::gemm_rows<ops::Gemv, ops::NORM_WEIGHTED, true>(it, x, w, y, 1, N, K, scratch, f, nullptr, norm_w, eps);
}
KL_KERNEL(2) kl_gemm_few(usm<const float> x, usm<const float> w, usm<float> y, ul M, ul N, ul K, ops::Faults f) {
  auto it = item<2>();
  ops::gemm_rows<ops::GemmFew>(it, x, w, y, M, N, K, local_floats<ops::GemmFew::LOCAL>(it), f);
}
