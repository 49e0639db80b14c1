// The C++ host API: argument checks (once, for every toolchain kind), the
// host-side preparation some ops need, then the launch layer (launch.hpp).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "ops/gemm.hpp"
#include "runtime/launch.hpp"
#include "runtime/runtime_impl.hpp"

namespace kl {
namespace {

[[noreturn]] void fail(const char *op, const std::string &msg) { throw Error(std::string(op) + ": " + msg); }

std::string num(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", double(v));
  return b;
}

size_t product(const char *op, std::initializer_list<size_t> sizes) {
  size_t r = 1;
  for (size_t s : sizes)
    if (__builtin_mul_overflow(r, s, &r)) fail(op, "sizes overflow size_t");
  return r;
}

// A tensor of `count` elements must be a USM allocation of this runtime's
// context (a host pointer would crash a GPU, or silently work on a CPU).
void tensor(Runtime &rt, const char *op, const void *p, const char *name, size_t count, const char *what) {
  if (!count) return;
  if (!p) fail(op, std::string(name) + " is NULL but " + what + " = " + std::to_string(count));
  if (sycl::get_pointer_type(p, rt.queue().get_context()) == sycl::usm::alloc::unknown)
    fail(op, std::string(name) + " is not device memory of this runtime (allocate it with kl_alloc)");
}

void elementwise1(Runtime &rt, const char *op, const float *x, const float *y, size_t n) {
  tensor(rt, op, x, "x", n, "n");
  tensor(rt, op, y, "y", n, "n");
}
void elementwise2(Runtime &rt, const char *op, const char *an, const float *a, const char *bn, const float *b,
                  const float *y, size_t n) {
  tensor(rt, op, a, an, n, "n");
  tensor(rt, op, b, bn, n, "n");
  tensor(rt, op, y, "y", n, "n");
}

// [a, a + na) and [b, b + nb) share an element: an op that writes one while
// other work-items read the other would race.
bool overlaps(const float *a, size_t na, const float *b, size_t nb) { return na && nb && a < b + nb && b < a + na; }

// RoPE's angle: an even head_dim, a finite theta > 0, positions exact in fp32.
void check_rope(const char *op, size_t head_dim, float theta) {
  if (head_dim % 2) fail(op, "head_dim must be even, got " + std::to_string(head_dim));
  if (!(theta > 0.f) || std::isinf(theta)) fail(op, "theta must be finite and > 0, got " + num(theta));
}
void check_positions(const char *op, size_t pos0, size_t tokens) {
  if (pos0 + tokens < pos0 || pos0 + tokens > (size_t(1) << 24))
    fail(op, "positions must stay below 2^24 (exact in fp32), pos0 + tokens = " + std::to_string(pos0 + tokens));
}

void check_eps(const char *op, float eps) {
  if (!(eps >= 0.f)) fail(op, "eps must be >= 0, got " + num(eps));
}

// The host side of the test-only faults (ops/faults.hpp): an argument passed on wrong.
bool fault(Runtime &rt, ops::Faults bit) { return ops::has(rt.impl().faults, bit); }

void rowwise(Runtime &rt, const char *op, const float *x, const void *out, size_t rows, size_t cols) {
  if (rows && !cols) fail(op, "cols must be >= 1 (rows = " + std::to_string(rows) + ", cols = 0)");
  tensor(rt, op, x, "x", product(op, {rows, cols}), "rows*cols");
  tensor(rt, op, out, "out", rows, "rows");
}

} // namespace

void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n) {
  elementwise1(rt, "saxpy", x, y, n);
  if (n) rt.impl().launch().saxpy(rt, a, x, y, n);
}

void gemm(Runtime &rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K) {
  const char *op = "gemm";
  tensor(rt, op, x, "x", product(op, {M, K}), "M*K");
  tensor(rt, op, w, "w", product(op, {N, K}), "N*K");
  tensor(rt, op, y, "y", product(op, {M, N}), "M*N");
  if (!M || !N) return;
  if (!K) rt.queue().memset(y, 0, M * N * sizeof(float)); // an empty sum
  else if (M == 1) rt.impl().launch().gemv(rt, x, w, y, N, K);      // one token: the decode kernel
  else if (M <= ops::GEMM_FEW_MAX_M) rt.impl().launch().gemm_few(rt, x, w, y, M, N, K); // weights used too few times to tile
  else if (M <= ops::GEMM_MID_MAX_M) rt.impl().launch().gemm_mid(rt, x, w, y, M, N, K);  // smaller tiles waste fewer rows
  else rt.impl().launch().gemm(rt, x, w, y, M, N, K);
}

void gemv(Runtime &rt, const float *x, const float *w, float *y, size_t N, size_t K) {
  const char *op = "gemv";
  tensor(rt, op, x, "x", K, "K");
  tensor(rt, op, w, "w", product(op, {N, K}), "N*K");
  tensor(rt, op, y, "y", N, "N");
  if (!N) return;
  if (!K) rt.queue().memset(y, 0, N * sizeof(float));
  else rt.impl().launch().gemv(rt, x, w, y, N, K);
}

void gemv_add(Runtime &rt, const float *x, const float *w, const float *residual, float *y, size_t N, size_t K) {
  const char *op = "gemv_add";
  tensor(rt, op, x, "x", K, "K");
  tensor(rt, op, w, "w", product(op, {N, K}), "N*K");
  tensor(rt, op, residual, "residual", N, "N");
  tensor(rt, op, y, "y", N, "N");
  // y is written while x and w are read (residual may be y itself)
  if (K && (overlaps(y, N, x, K) || overlaps(y, N, w, N * K))) fail(op, "y overlaps x or w (only residual may be y)");
  if (residual != y && overlaps(y, N, residual, N)) fail(op, "residual overlaps y without being y");
  if (!N) return;
  if (!K) { // an empty sum: y = residual
    if (y != residual) rt.queue().memcpy(y, residual, N * sizeof(float));
  } else rt.impl().launch().gemv_add(rt, x, w, residual, y, N, K);
}

void rmsnorm_gemv(Runtime &rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                  size_t K, float eps) {
  const char *op = "rmsnorm_gemv";
  tensor(rt, op, x, "x", K, "K");
  tensor(rt, op, norm_weight, "norm_weight", K, "K");
  tensor(rt, op, w, "w", product(op, {N, K}), "N*K");
  tensor(rt, op, y, "y", N, "N");
  check_eps(op, eps);
  if (!N) return;
  if (!K) {
    rt.queue().memset(y, 0, N * sizeof(float)); // an empty sum
    return;
  }
  if (overlaps(y, N, x, K) || overlaps(y, N, norm_weight, K) || overlaps(y, N, w, N * K))
    fail(op, "y overlaps x, norm_weight or w (every work-group reads all of x)");
  if (fault(rt, ops::fault::NORM_EPS)) eps /= 10;
  rt.impl().launch().rmsnorm_gemv(rt, x, norm_weight, w, y, N, K, eps);
}

void rmsnorm_gemv_swiglu(Runtime &rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                         size_t K, float eps) {
  const char *op = "rmsnorm_gemv_swiglu";
  tensor(rt, op, x, "x", K, "K");
  tensor(rt, op, norm_weight, "norm_weight", K, "K");
  tensor(rt, op, w, "w", product(op, {2, N, K}), "2*N*K");
  tensor(rt, op, y, "y", N, "N");
  check_eps(op, eps);
  if (!N) return;
  if (!K) { // gate and up are empty sums: silu(0) * 0
    rt.queue().memset(y, 0, N * sizeof(float));
    return;
  }
  if (overlaps(y, N, x, K) || overlaps(y, N, norm_weight, K) || overlaps(y, N, w, 2 * N * K))
    fail(op, "y overlaps x, norm_weight or w (every work-group reads all of x)");
  if (fault(rt, ops::fault::NORM_EPS)) eps /= 10;
  rt.impl().launch().rmsnorm_gemv_swiglu(rt, x, norm_weight, w, y, N, K, eps);
}

void rmsnorm(Runtime &rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps) {
  const char *op = "rmsnorm";
  size_t n = product(op, {rows, dim});
  tensor(rt, op, x, "x", n, "rows*dim");
  tensor(rt, op, weight, "weight", n ? dim : 0, "dim");
  tensor(rt, op, y, "y", n, "rows*dim");
  check_eps(op, eps);
  if (fault(rt, ops::fault::NORM_EPS)) eps /= 10;
  if (n) rt.impl().launch().rmsnorm(rt, x, weight, y, rows, dim, eps);
}

void layernorm(Runtime &rt, const float *x, const float *weight, const float *bias, float *y, size_t rows,
               size_t dim, float eps) {
  const char *op = "layernorm";
  size_t n = product(op, {rows, dim});
  tensor(rt, op, x, "x", n, "rows*dim");
  tensor(rt, op, weight, "weight", n ? dim : 0, "dim");
  tensor(rt, op, bias, "bias", n ? dim : 0, "dim");
  tensor(rt, op, y, "y", n, "rows*dim");
  check_eps(op, eps);
  if (fault(rt, ops::fault::NORM_EPS)) eps /= 10;
  if (n) rt.impl().launch().layernorm(rt, x, weight, bias, y, rows, dim, eps);
}

void softmax(Runtime &rt, const float *x, float *y, size_t rows, size_t cols, bool causal, size_t pos0,
             float temperature) {
  const char *op = "softmax";
  size_t n = product(op, {rows, cols});
  tensor(rt, op, x, "x", n, "rows*cols");
  tensor(rt, op, y, "y", n, "rows*cols");
  if (!(temperature > 0.f)) fail(op, "temperature must be > 0, got " + num(temperature));
  if (causal && pos0 > ~size_t(0) - rows) fail(op, "pos0 + rows overflows size_t");
  if (causal && fault(rt, ops::fault::SOFTMAX_CAUSAL) && pos0 + rows < ~size_t(0)) pos0 += 1;
  if (n) rt.impl().launch().softmax(rt, x, y, rows, cols, causal ? 1 : 0, pos0, temperature);
}

void rope(Runtime &rt, float *x, size_t tokens, size_t heads, size_t head_dim, size_t pos0, float theta) {
  const char *op = "rope";
  check_rope(op, head_dim, theta);
  size_t n = product(op, {tokens, heads, head_dim});
  tensor(rt, op, x, "x", n, "tokens*heads*head_dim");
  check_positions(op, pos0, tokens);
  if (!n) return;
  if (fault(rt, ops::fault::ROPE_POS)) pos0 += 1;
  if (fault(rt, ops::fault::ROPE_THETA)) theta = 10000.f;
  rt.impl().launch().rope(rt, x, rt.impl().rope_table(theta, head_dim), tokens, heads, head_dim, pos0);
}

void rope_qkv(Runtime &rt, float *qkv, float *k_cache, float *v_cache, size_t tokens, size_t n_heads,
              size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float theta) {
  const char *op = "rope_qkv";
  check_rope(op, head_dim, theta);
  if (pos0 + tokens < pos0 || pos0 + tokens > max_seq)
    fail(op, "pos0 + tokens = " + std::to_string(pos0) + " + " + std::to_string(tokens) +
                 " exceeds the cache's max_seq = " + std::to_string(max_seq));
  check_positions(op, pos0, tokens);
  size_t width; // floats a token of qkv
  if (__builtin_add_overflow(product(op, {n_heads, head_dim}), product(op, {2, n_kv_heads, head_dim}), &width))
    fail(op, "sizes overflow size_t");
  size_t n = product(op, {tokens, width});
  size_t cache = n && n_kv_heads ? product(op, {pos0 + tokens, n_kv_heads, head_dim}) : 0;
  tensor(rt, op, qkv, "qkv", n, "tokens*(n_heads+2*n_kv_heads)*head_dim");
  tensor(rt, op, k_cache, "k_cache", cache, "(pos0+tokens)*n_kv_heads*head_dim");
  tensor(rt, op, v_cache, "v_cache", cache, "(pos0+tokens)*n_kv_heads*head_dim");
  // the caches' rows are written while qkv is read: three separate tensors
  if (overlaps(k_cache, cache, v_cache, cache) || overlaps(qkv, n, k_cache, cache) || overlaps(qkv, n, v_cache, cache))
    fail(op, "qkv, k_cache and v_cache must not overlap");
  if (!n || !head_dim) return;
  if (fault(rt, ops::fault::ROPE_POS) && pos0 + tokens < max_seq) pos0 += 1; // never past the cache
  if (fault(rt, ops::fault::ROPE_THETA)) theta = 10000.f;
  rt.impl().launch().rope_qkv(rt, qkv, k_cache, v_cache, rt.impl().rope_table(theta, head_dim), tokens, n_heads,
                              n_kv_heads, head_dim, pos0);
}

void silu(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise1(rt, "silu", x, y, n);
  if (n) rt.impl().launch().silu(rt, x, y, n);
}
void gelu_tanh(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise1(rt, "gelu_tanh", x, y, n);
  if (n) rt.impl().launch().gelu_tanh(rt, x, y, n);
}
void gelu_erf(Runtime &rt, const float *x, float *y, size_t n) {
  elementwise1(rt, "gelu_erf", x, y, n);
  if (n) rt.impl().launch().gelu_erf(rt, x, y, n);
}
void swiglu(Runtime &rt, const float *gate, const float *up, float *y, size_t n) {
  elementwise2(rt, "swiglu", "gate", gate, "up", up, y, n);
  if (n) rt.impl().launch().swiglu(rt, gate, up, y, n);
}
void add(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  elementwise2(rt, "add", "a", a, "b", b, y, n);
  if (n) rt.impl().launch().add(rt, a, b, y, n);
}
void mul(Runtime &rt, const float *a, const float *b, float *y, size_t n) {
  elementwise2(rt, "mul", "a", a, "b", b, y, n);
  if (n) rt.impl().launch().mul(rt, a, b, y, n);
}

void embedding(Runtime &rt, const float *table, const int32_t *ids_host, float *y, size_t n_ids, size_t dim,
               size_t vocab) {
  const char *op = "embedding";
  if (n_ids && !ids_host) fail(op, "ids_host is NULL but n_ids = " + std::to_string(n_ids));
  for (size_t i = 0; i < n_ids; ++i)
    if (ids_host[i] < 0 || size_t(ids_host[i]) >= vocab)
      fail(op, "ids[" + std::to_string(i) + "] = " + std::to_string(ids_host[i]) + " is outside [0, " +
                   std::to_string(vocab) + ")");
  size_t n = product(op, {n_ids, dim});
  tensor(rt, op, table, "table", n ? product(op, {vocab, dim}) : 0, "vocab*dim");
  tensor(rt, op, y, "y", n, "n_ids*dim");
  if (!n) return;
  auto *ids = static_cast<const int32_t *>(rt.impl().stage(ids_host, n_ids * sizeof(int32_t)));
  rt.impl().launch().embedding(rt, table, ids, y, n_ids, dim);
}

void attention(Runtime &rt, const float *q, const float *k_cache, const float *v_cache, float *out, size_t tokens,
               size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float scale) {
  const char *op = "attention";
  if (n_heads && !n_kv_heads) fail(op, "n_kv_heads must be > 0");
  if (n_heads && n_heads % n_kv_heads)
    fail(op, "n_heads (" + std::to_string(n_heads) + ") is not a multiple of n_kv_heads (" +
                 std::to_string(n_kv_heads) + ")");
  if (pos0 + tokens < pos0 || pos0 + tokens > max_seq)
    fail(op, "pos0 + tokens = " + std::to_string(pos0) + " + " + std::to_string(tokens) +
                 " exceeds the cache's max_seq = " + std::to_string(max_seq));
  size_t n = product(op, {tokens, n_heads, head_dim});
  size_t cache = n ? product(op, {pos0 + tokens, n_kv_heads, head_dim}) : 0;
  tensor(rt, op, q, "q", n, "tokens*n_heads*head_dim");
  tensor(rt, op, k_cache, "k_cache", cache, "(pos0+tokens)*n_kv_heads*head_dim");
  tensor(rt, op, v_cache, "v_cache", cache, "(pos0+tokens)*n_kv_heads*head_dim");
  tensor(rt, op, out, "out", n, "tokens*n_heads*head_dim");
  if (fault(rt, ops::fault::ATTN_CAUSAL) && pos0 + tokens < max_seq) pos0 += 1; // never past the cache
  if (fault(rt, ops::fault::ATTN_SCALE)) scale *= scale;
  if (n) rt.impl().launch().attention(rt, q, k_cache, v_cache, out, tokens, n_heads, n_kv_heads, head_dim, pos0, scale);
}

void sum(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  rowwise(rt, "sum", x, out, rows, cols);
  if (rows) rt.impl().launch().row_sum(rt, x, out, rows, cols);
}
void max(Runtime &rt, const float *x, float *out, size_t rows, size_t cols) {
  rowwise(rt, "max", x, out, rows, cols);
  if (rows) rt.impl().launch().row_max(rt, x, out, rows, cols);
}
void argmax(Runtime &rt, const float *x, int32_t *out, size_t rows, size_t cols) {
  rowwise(rt, "argmax", x, out, rows, cols);
  if (cols > size_t(INT32_MAX)) fail("argmax", "cols must fit an int32 index, got " + std::to_string(cols));
  if (rows) rt.impl().launch().row_argmax(rt, x, out, rows, cols);
}

} // namespace kl
