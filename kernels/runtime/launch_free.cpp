// Launch layer over free-function kernels (runtime-compiler toolchains):
// one line per op, mechanically mirroring device/free_kernels.cpp.
#include <algorithm>

#include "ops/attention.hpp"
#include "ops/common.hpp"
#include "ops/gemm.hpp"
#include "runtime/launch.hpp"
#include "runtime/runtime_impl.hpp"

namespace kl::launch {
namespace {
using ul = unsigned long;
using r1 = sycl::range<1>;
using r2 = sycl::range<2>;
size_t lanes(Runtime &rt) { return rt.impl().row_lanes; } // <= ops::ROW_LANES
size_t up(size_t n, size_t m) { return Runtime::Impl::round_up(n, m); }
// row-wise ops (ops::each_row): sub-groups of lanes(rt), up to
// ops::ROWS_PER_GROUP of them a work-group while that still leaves a few
// work-groups a compute unit (a big CPU with few long rows keeps them all busy)
template <typename... Args> void rowwise(const char *name, Runtime &rt, size_t rows, const Args &...args) {
  const size_t L = lanes(rt), per = std::clamp<size_t>(rows / (4 * rt.impl().compute_units), 1, ops::ROWS_PER_GROUP);
  rt.impl().launch<1>(name, r1{up(rows, per) * L}, r1{per * L}, (ul)rows, args...);
}
// ops::each_in_block: one work-group of lanes(rt) per ELEM_BLOCK elements
template <typename... Args> void elementwise(const char *name, Runtime &rt, size_t n, const Args &...args) {
  const size_t RL = lanes(rt);
  rt.impl().launch<1>(name, r1{up(n, ops::ELEM_BLOCK) / ops::ELEM_BLOCK * RL}, r1{RL}, args...);
}
} // namespace

void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n) {
  elementwise("kl_saxpy", rt, n, a, x, y, (ul)n);
}
void silu(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise("kl_silu", rt, n, x, y, (ul)n);
}
void gelu_tanh(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise("kl_gelu_tanh", rt, n, x, y, (ul)n);
}
void gelu_erf(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise("kl_gelu_erf", rt, n, x, y, (ul)n);
}
void swiglu(Runtime &rt, const float *gate, const float *up_, float *y, size_t n) {
  elementwise("kl_swiglu", rt, n, gate, up_, y, (ul)n);
}
void add(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  elementwise("kl_add", rt, n, a, b, y, (ul)n);
}
void mul(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  elementwise("kl_mul", rt, n, a, b, y, (ul)n);
}

void rmsnorm(Runtime &rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps) {
  rowwise("kl_rmsnorm", rt, rows, x, weight, y, (ul)dim, eps);
}
void layernorm(Runtime &rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
                      size_t dim, float eps) {
  rowwise("kl_layernorm", rt, rows, x, weight, bias, y, (ul)dim, eps);
}
void softmax(Runtime &rt, const float *x, float *y, size_t rows, size_t cols, int causal, size_t pos0,
                    float temperature) {
  rowwise("kl_softmax", rt, rows, x, y, (ul)cols, causal, (ul)pos0, temperature);
}
void row_sum(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  rowwise("kl_row_sum", rt, rows, x, out, (ul)cols);
}
void row_max(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  rowwise("kl_row_max", rt, rows, x, out, (ul)cols);
}
void row_argmax(Runtime &rt, const float *x, int32_t *out, size_t rows, size_t cols) {
  rowwise("kl_row_argmax", rt, rows, x, out, (ul)cols);
}
void embedding(Runtime &rt, const float *table, const int32_t *ids, float *y, size_t n_ids, size_t dim) {
  rowwise("kl_embedding", rt, n_ids, table, ids, y, (ul)dim);
}

void rope(Runtime &rt, float *x, const float *freq, size_t tokens, size_t heads, size_t head_dim,
                 size_t pos0) {
  const size_t RL = lanes(rt);
  rt.impl().launch<2>("kl_rope", r2{tokens, up(head_dim / 2, RL)}, r2{1, RL}, x, freq, (ul)heads,
                             (ul)head_dim, (ul)pos0);
}

void rope_qkv(Runtime &rt, float *qkv, float *k_cache, float *v_cache, const float *freq, size_t tokens,
              size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0) {
  const size_t RL = lanes(rt);
  rt.impl().launch<2>("kl_rope_qkv", r2{tokens, up(head_dim / 2, RL)}, r2{1, RL}, qkv, k_cache, v_cache, freq,
                      (ul)n_heads, (ul)n_kv_heads, (ul)head_dim, (ul)pos0);
}

void attention(Runtime &rt, const float *q, const float *k_cache, const float *v_cache, float *out,
                      size_t tokens, size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, float scale) {
  const size_t L = lanes(rt); // a work-group per row: ops::attention_row shares local memory across it
  rt.impl().launch<1>("kl_attention", r1{tokens * n_heads * L}, r1{L}, q, k_cache, v_cache, out, (ul)n_heads,
                      (ul)(n_heads / n_kv_heads), (ul)head_dim, (ul)(n_kv_heads * head_dim), (ul)pos0, scale);
}

// ops::gemm_tile: one work-group of L1 x L0 per BM x BN tile of y
template <typename T> void tiled(const char *name, Runtime &rt, const float *x, const float *w, float *y, size_t M,
                                 size_t N, size_t K) {
  rt.impl().launch<2>(name, r2{up(M, T::BM) / T::RM, up(N, T::BN) / T::RN}, r2{T::L1, T::L0}, x, w, y, (ul)M,
                      (ul)N, (ul)K);
}
// ops::gemm_band (AVX2): a work-group of one sub-group per band x 16 columns;
// bands of about GEMM_BAND_ROWS rows, thinner where that would leave fewer
// than 4 work-groups a compute unit; k tiles of equal length, at most BK
// and a multiple of 8 (only the last one short)
static void banded(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  using T = ops::GemmBand;
  auto cdiv = [](size_t a, size_t b) { return (a + b - 1) / b; };
  const size_t cols = cdiv(N, T::BN);
  const size_t bands = std::min(std::max(cdiv(M, ops::GEMM_BAND_ROWS), cdiv(4 * rt.impl().compute_units, cols)),
                                cdiv(M, T::RM));
  const size_t band = up(cdiv(M, bands), T::RM), tiles = cdiv(K, T::BK), kt = up(cdiv(K, tiles), 8);
  rt.impl().launch<2>("kl_gemm_band", r2{cdiv(M, band), cols * T::L0}, r2{1, T::L0}, x, w, y, (ul)M, (ul)N,
                      (ul)K, (ul)band, (ul)kt);
}
void gemm(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  if (lanes(rt) >= 16) { // gemm.hpp: AVX-512; the big row tile where it wastes no more rows
    if (up(M, ops::GemmWideBig::BM) == up(M, ops::GemmWide::BM))
      tiled<ops::GemmWideBig>("kl_gemm_wide_big", rt, x, w, y, M, N, K);
    else tiled<ops::GemmWide>("kl_gemm_wide", rt, x, w, y, M, N, K);
  } else if (lanes(rt) != 8) { // SSE4.2: 96-row tiles (192 rows ran 1.07x their time, 576x512^2)
    tiled<ops::Gemm>("kl_gemm", rt, x, w, y, M, N, K);
  } else { // AVX2 (gemm.hpp)
    banded(rt, x, w, y, M, N, K);
  }
}
void gemm_mid(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  // AVX-512: the wide tiles as soon as a row tile of theirs wastes no more rows than two of GemmMid's
  if (lanes(rt) >= 16 && M > size_t(ops::GemmMid::BM))
    tiled<ops::GemmWideMid>("kl_gemm_wide_mid", rt, x, w, y, M, N, K);
  else if (lanes(rt) == 8 && M > size_t(ops::GemmMid::BM)) // AVX2: bands from 33 rows (gemm.hpp)
    banded(rt, x, w, y, M, N, K);
  else tiled<ops::GemmMid>("kl_gemm_mid", rt, x, w, y, M, N, K);
}

// ops::gemm_rows: work-groups of GROUPS x lanes(rt), one per (x rows, w rows) block
// (args: the kernel's own after the pointers)
template <typename T, typename... Args>
void rows_product(const char *name, Runtime &rt, size_t M, size_t N, const Args &...args) {
  const size_t groups = up(M, T::MB) / T::MB * (up(N, T::ROWS) / T::ROWS);
  const size_t L = lanes(rt); // the image's vector width (gemm.hpp: RowTiles)
  rt.impl().launch<2>(name, r2{groups * T::GROUPS, L}, r2{size_t(T::GROUPS), L}, args...);
}
void gemv(Runtime &rt, const float *x, const float *w, float *y, size_t N, size_t K) {
  rows_product<ops::Gemv>("kl_gemv", rt, 1, N, x, w, y, (ul)N, (ul)K);
}
void gemv_add(Runtime &rt, const float *x, const float *w, const float *res, float *y, size_t N, size_t K) {
  rows_product<ops::Gemv>("kl_gemv_add", rt, 1, N, x, w, res, y, (ul)N, (ul)K);
}
void rmsnorm_gemv(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N, size_t K,
                  float eps) {
  rows_product<ops::Gemv>("kl_rmsnorm_gemv", rt, 1, N, x, norm_w, w, y, (ul)N, (ul)K, eps);
}
void rmsnorm_gemv_swiglu(Runtime &rt, const float *x, const float *norm_w, const float *w, float *y, size_t N,
                         size_t K, float eps) { // a work-group: half as many outputs as rows of w (gemm.hpp)
  rows_product<ops::Gemv>("kl_rmsnorm_gemv_swiglu", rt, 1, 2 * N, x, norm_w, w, y, (ul)N, (ul)K, eps);
}
void gemm_few(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  rows_product<ops::GemmFew>("kl_gemm_few", rt, M, N, x, w, y, (ul)M, (ul)N, (ul)K);
}

} // namespace kl::launch

KL_LAUNCH_TABLE_DEFINITION
