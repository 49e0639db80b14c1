// Launch layer for single-source toolchains (icpx, intel/llvm clang, acpp):
// the same ops launched as SYCL 2020 lambdas (local memory through
// local_accessor); the compiler embeds the device images and the SYCL
// runtime picks one (or, AdaptiveCpp's omp flow, this file is compiled once
// per ISA into a module and runtime_sycl.cpp loads the best one).
#include <cstdio>
#include <cstdlib>

#include "ops/attention.hpp"
#include "ops/common.hpp"
#include "ops/elementwise.hpp"
#include "ops/embedding.hpp"
#include "ops/gemm.hpp"
#include "ops/norm.hpp"
#include "ops/reduce.hpp"
#include "ops/rope.hpp"
#include "ops/saxpy.hpp"
#include "ops/softmax.hpp"
#include "runtime/launch.hpp"
#include "runtime/runtime_impl.hpp"

namespace kl {

namespace launch {
namespace {
constexpr size_t RL = ops::ROW_LANES;
size_t up(size_t n, size_t m) { return Runtime::Impl::round_up(n, m); }
// The queue without Runtime::queue(): a module calls nothing of the library.
sycl::queue &queue_of(Runtime &rt) { return rt.impl().q; }
// The elements an element-wise launch covers (the ELEM_TAIL fault leaves the last out).
size_t elems(size_t n, ops::Faults f) { return ops::has(f, ops::fault::ELEM_TAIL) ? n - 1 : n; }
sycl::nd_range<1> rows_range(size_t rows) { return sycl::nd_range<1>(sycl::range<1>(rows * RL), sycl::range<1>(RL)); }
} // namespace

// ---- element-wise -------------------------------------------------------
void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::saxpy(a, x[i], y[i]); });
}
void silu(Runtime &rt, const float *x, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  if (ops::faulty_silu(f))
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::silu<float, true>(x[i]); });
  else
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::silu(x[i]); });
}
void gelu_tanh(Runtime &rt, const float *x, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  if (ops::faulty_gelu_tanh(f))
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::gelu_tanh<float, true>(x[i]); });
  else
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::gelu_tanh(x[i]); });
}
void gelu_erf(Runtime &rt, const float *x, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  if (ops::faulty_gelu_erf(f))
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::gelu_erf<float, true>(x[i]); });
  else
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::gelu_erf(x[i]); });
}
void swiglu(Runtime &rt, const float *gate, const float *up_, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  if (ops::faulty_silu(f))
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)),
                              [=](sycl::id<1> i) { y[i] = ops::swiglu<float, true>(gate[i], up_[i]); });
  else
    queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::swiglu(gate[i], up_[i]); });
}
void add(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::add(a[i], b[i]); });
}
void mul(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(sycl::range<1>(elems(n, f)), [=](sycl::id<1> i) { y[i] = ops::mul(a[i], b[i]); });
}

// ---- row-wise: one work-group of ROW_LANES per row, the team of ops::*_row -
void rmsnorm(Runtime &rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    ops::rmsnorm_row(it.get_group(), x + r * dim, weight, y + r * dim, dim, eps, f);
  });
}
void layernorm(Runtime &rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
                      size_t dim, float eps) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    ops::layernorm_row(it.get_group(), x + r * dim, weight, bias, y + r * dim, dim, eps, f);
  });
}
void softmax(Runtime &rt, const float *x, float *y, size_t rows, size_t cols, int causal, size_t pos0,
                    float temperature) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    ops::softmax_row(it.get_group(), x + r * cols, y + r * cols, cols, ops::softmax_visible(cols, causal, pos0, r),
                     temperature, f);
  });
}
void row_sum(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    float v = ops::row_sum(it.get_group(), x + r * cols, cols, f);
    if (it.get_local_id(0) == 0) out[r] = v;
  });
}
void row_max(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    float v = ops::row_max(it.get_group(), x + r * cols, cols, f);
    if (it.get_local_id(0) == 0) out[r] = v;
  });
}
void row_argmax(Runtime &rt, const float *x, int32_t *out, size_t rows, size_t cols) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(rows), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    int32_t v = ops::row_argmax(it.get_group(), x + r * cols, cols, f);
    if (it.get_local_id(0) == 0) out[r] = v;
  });
}
void embedding(Runtime &rt, const float *table, const int32_t *ids, float *y, size_t n_ids, size_t dim) {
  const ops::Faults f = rt.impl().faults;
  queue_of(rt).parallel_for(rows_range(n_ids), [=](sycl::nd_item<1> it) {
    size_t r = it.get_group(0);
    ops::embedding_row(it.get_group(), table + size_t(ids[r]) * dim, y + r * dim, dim, f);
  });
}

// ---- RoPE: work-item (token, frequency i) rotates that pair in every head -
void rope(Runtime &rt, float *x, const float *freq, size_t tokens, size_t heads, size_t head_dim,
                 size_t pos0) {
  const ops::Faults f = rt.impl().faults;
  const size_t half = head_dim / 2;
  sycl::nd_range<2> range(sycl::range<2>(tokens, up(half, RL)), sycl::range<2>(1, RL));
  queue_of(rt).parallel_for(range, [=](sycl::nd_item<2> it) {
    size_t t = it.get_global_id(0), i = it.get_global_id(1);
    if (i < half)
      ops::rope_token(x + t * heads * head_dim, heads, head_dim, i, float(pos0 + t), freq[i], freq[half + i], f);
  });
}

void rope_qkv(Runtime &rt, float *qkv, float *k_cache, float *v_cache, const float *freq, size_t tokens,
              size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0) {
  const ops::Faults f = rt.impl().faults;
  const size_t half = head_dim / 2, kv = n_kv_heads * head_dim;
  sycl::nd_range<2> range(sycl::range<2>(tokens, up(half, RL)), sycl::range<2>(1, RL));
  queue_of(rt).parallel_for(range, [=](sycl::nd_item<2> it) {
    size_t t = it.get_global_id(0), i = it.get_global_id(1);
    if (i < half)
      ops::rope_qkv_token(qkv + t * (n_heads * head_dim + 2 * kv), k_cache + (pos0 + t) * kv,
                          v_cache + (pos0 + t) * kv, n_heads, n_kv_heads, head_dim, i, float(pos0 + t), freq[i],
                          freq[half + i], f);
  });
}

// ---- attention: one work-group per (token, query head) ----------------------
void attention(Runtime &rt, const float *q, const float *k_cache, const float *v_cache, float *out,
                      size_t tokens, size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, float scale) {
  const ops::Faults f = rt.impl().faults;
  const size_t group = n_heads / n_kv_heads, kv_stride = n_kv_heads * head_dim;
  queue_of(rt).submit([&](sycl::handler &cgh) {
    sycl::local_accessor<float, 1> scores(sycl::range<1>(ops::ATTN_LOCAL), cgh);
    cgh.parallel_for(rows_range(tokens * n_heads), [=](sycl::nd_item<1> it) {
      size_t row = it.get_group(0), t = row / n_heads, head = row % n_heads;
      size_t kv_head = ops::has(f, ops::fault::ATTN_KV_INTERLEAVED) ? head % n_kv_heads : head / group;
      if (ops::has(f, ops::fault::ATTN_KV_REPEATED)) kv_head = 0;
      size_t kv = kv_head * head_dim;
      ops::attention_row(it, q + row * head_dim, k_cache + kv, v_cache + kv, out + row * head_dim, pos0 + t + 1,
                         head_dim, kv_stride, scale, &scores[0], f);
    });
  });
}

// ---- matrix products ----------------------------------------------------
// ops::gemm_tile: one work-group of L1 x L0 per BM x BN tile of y
template <typename T> void tiled(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  const ops::Faults f = rt.impl().faults;
  sycl::nd_range<2> range(sycl::range<2>(up(M, T::BM) / T::RM, up(N, T::BN) / T::RN), sycl::range<2>(T::L1, T::L0));
  queue_of(rt).submit([&](sycl::handler &cgh) {
    sycl::local_accessor<float, 1> ws(sycl::range<1>(T::LOCAL), cgh);
    cgh.parallel_for(range, [=](sycl::nd_item<2> it) {
      ops::gemm_tile<T>(it, x, w, y, M, N, K, &ws[0], f);
    });
  });
}
void gemm(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  const ops::Faults f = rt.impl().faults;
  tiled<ops::Gemm>(rt, x, w, y, M, N, K);
}
void gemm_mid(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  const ops::Faults f = rt.impl().faults;
  tiled<ops::GemmMid>(rt, x, w, y, M, N, K);
}

// ops::gemm_rows: work-groups of GROUPS x LANES, one per (x rows, w rows) block
// (SWIGLU: N outputs from 2N rows of w, as many work-groups as 2N rows take)
template <typename T, int NORM = ops::NORM_NONE, bool SWIGLU = false>
void rows_product(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K,
                  const float *res = nullptr, const float *norm_w = nullptr, float eps = 0.f) {
  const ops::Faults f = rt.impl().faults;
  const size_t groups = up(M, T::MB) / T::MB * (up(SWIGLU ? 2 * N : N, T::ROWS) / T::ROWS);
  sycl::nd_range<2> range(sycl::range<2>(groups * T::GROUPS, T::LANES), sycl::range<2>(T::GROUPS, T::LANES));
  queue_of(rt).submit([&](sycl::handler &cgh) {
    sycl::local_accessor<float, 1> scratch(sycl::range<1>(T::LOCAL), cgh);
    cgh.parallel_for(range, [=](sycl::nd_item<2> it) {
      ops::gemm_rows<T, NORM, SWIGLU>(it, x, w, y, M, N, K, &scratch[0], f, res, norm_w, eps);
    });
  });
}
void gemv(Runtime &rt, const float *x, const float *w, float *y, size_t N, size_t K) {
  const ops::Faults f = rt.impl().faults;
  rows_product<ops::Gemv>(rt, x, w, y, 1, N, K);
}
void gemv_add(Runtime &rt, const float *x, const float *w, const float *res, float *y, size_t N, size_t K) {
  rows_product<ops::Gemv>(rt, x, w, y, 1, N, K, res);
}
void rmsnorm_gemv(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N, size_t K,
                  float eps) {
  if (ops::has(rt.impl().faults, ops::fault::ROWS_NORM_NO_WEIGHT))
    rows_product<ops::Gemv, ops::NORM_UNWEIGHTED>(rt, x, w, y, 1, N, K, nullptr, norm_w, eps);
  else rows_product<ops::Gemv, ops::NORM_WEIGHTED>(rt, x, w, y, 1, N, K, nullptr, norm_w, eps);
}
void rmsnorm_gemv_swiglu(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N,
                         size_t K, float eps) {
  if (ops::has(rt.impl().faults, ops::fault::ROWS_NORM_NO_WEIGHT))
    rows_product<ops::Gemv, ops::NORM_UNWEIGHTED, true>(rt, x, w, y, 1, N, K, nullptr, norm_w, eps);
  else rows_product<ops::Gemv, ops::NORM_WEIGHTED, true>(rt, x, w, y, 1, N, K, nullptr, norm_w, eps);
}
void gemm_few(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  const ops::Faults f = rt.impl().faults;
  rows_product<ops::GemmFew>(rt, x, w, y, M, N, K);
}

} // namespace launch
} // namespace kl

KL_LAUNCH_TABLE_DEFINITION
