// Test-only faults: realistic defects that the mutation suite
// (tests/test_mutants.py) switches on, one at a time, to prove that the
// float64 tests and `scons numerics` catch each of them. A process turns them
// on with KL_FAULTS=name,name,... (runtime/faults.cpp parses it, refusing
// unknown names); otherwise every kernel gets 0 and each check below is one
// uniform branch outside the inner loops.
//
// The list is X(enumerator, "name", "the defect"); runtime/faults.cpp turns it
// into the table that kl_faults() hands to the tests, so a fault added here
// and not caught by any test fails tests/test_mutants.py.
#pragma once
#include <sycl/sycl.hpp>

#include <type_traits>

#define KL_FAULT_LIST(X)                                                                                       \
  X(GEMM_K_TAIL, "gemm.k_tail_dropped", "tiled GEMM skips the last k of a partial K tile")                     \
  X(GEMM_HALF_ACC, "gemm.half_accumulator", "tiled GEMM keeps its accumulators in fp16 between K tiles")       \
  X(ROWS_K_TAIL, "gemv.k_tail_dropped", "GEMV (and few-row GEMM) skips the last k of the short tail")           \
  X(ROWS_HALF_ACC, "gemv.half_accumulator", "GEMV (and few-row GEMM) accumulates in fp16")                     \
  X(ROWS_RES_PER_LANE, "gemv_add.residual_per_lane", "GEMV+residual starts every lane's sum at the residual")  \
  X(ROWS_NORM_NO_WEIGHT, "rmsnorm_gemv.weight_dropped", "the fused RMSNorm+GEMV leaves out the norm's weight") \
  X(NORM_EPS, "norm.eps_tenth", "RMSNorm/LayerNorm use eps/10 instead of the eps they are given (host)")       \
  X(NORM_EPS_OUTSIDE, "norm.eps_outside_sqrt", "RMSNorm/LayerNorm divide by sqrt(mean) + eps")                 \
  X(NORM_HALF_ACC, "norm.half_accumulator", "RMSNorm/LayerNorm sum the squares in fp16")                       \
  X(SOFTMAX_NO_MAX, "softmax.no_max_subtraction", "softmax exponentiates x/t without subtracting the max")      \
  X(SOFTMAX_APPROX_EXP, "softmax.approx_exp", "softmax uses a quadratic 2^f (relative error 2.7e-3)")          \
  X(SOFTMAX_TAIL, "softmax.tail_dropped", "softmax leaves the last visible column out of the sum")             \
  X(SOFTMAX_CAUSAL, "softmax.causal_off_by_one", "the causal mask lets each row see one column more (host)")  \
  X(ROPE_POS, "rope.position_off_by_one", "RoPE rotates token t by position pos0 + t + 1 (host)")              \
  X(ROPE_THETA, "rope.theta_ignored", "RoPE uses theta = 10000 whatever it is given (host)")                   \
  X(ROPE_PAIRS, "rope.adjacent_pairs", "RoPE pairs element 2i with 2i+1 (GPT-J) instead of i with i+d/2")      \
  X(ROPE_QKV_K_RAW, "rope_qkv.k_unrotated", "the fused RoPE stores k into the cache before rotating it")       \
  X(SILU_APPROX_EXP, "silu.approx_exp", "SiLU (and SwiGLU) use a quadratic 2^f for exp (2.7e-3)")              \
  X(GELU_TANH_APPROX, "gelu_tanh.approx_tanh", "GELU (tanh) forms tanh from the quadratic 2^f (~1.4e-3)")      \
  X(GELU_ERF_APPROX, "gelu_erf.approx_erf", "GELU (erf) uses Abramowitz-Stegun 7.1.27 for erf (4.7e-4)")       \
  X(ELEM_TAIL, "elementwise.tail_dropped", "element-wise ops leave the array's last element unwritten")        \
  X(EMBED_TAIL, "embedding.tail_dropped", "embedding copies all but the last element of each row")             \
  X(ATTN_NO_MAX, "attention.no_max_subtraction", "attention exponentiates the scores without the running max")  \
  X(ATTN_APPROX_EXP, "attention.approx_exp", "attention weights use the quadratic 2^f (2.7e-3)")               \
  X(ATTN_KV_INTERLEAVED, "attention.kv_interleaved", "query head h reads kv head h % n_kv, not h / group")     \
  X(ATTN_KV_REPEATED, "attention.kv_repeated", "every query head reads kv head 0")     \
  X(ATTN_CAUSAL, "attention.causal_off_by_one", "each query also attends to the next position (host)")        \
  X(ATTN_SCALE, "attention.scale_twice", "the scores are scaled twice, by scale^2 (host)")                     \
  X(SUM_TAIL, "sum.tail_dropped", "the row sum leaves out the row's last element")                             \
  X(SUM_HALF_ACC, "sum.half_accumulator", "the row sum accumulates in fp16")                                   \
  X(MAX_TAIL, "max.tail_dropped", "the row max leaves out the row's last element")                             \
  X(ARGMAX_TAIL, "argmax.tail_dropped", "argmax leaves out the row's last element")

namespace kl::ops {

using Faults = unsigned;
namespace fault {
enum Index : unsigned {
#define KL_FAULT_INDEX(id, name, what) id##_INDEX,
  KL_FAULT_LIST(KL_FAULT_INDEX)
#undef KL_FAULT_INDEX
  COUNT
};
#define KL_FAULT_BIT(id, name, what) constexpr Faults id = 1u << id##_INDEX;
KL_FAULT_LIST(KL_FAULT_BIT)
#undef KL_FAULT_BIT
static_assert(COUNT <= 32, "faults travel to the kernels as one 32-bit mask");
} // namespace fault

inline bool has(Faults f, Faults bit) { return (f & bit) != 0; }

// The value rounded to fp16's 11 significant bits: an fp16 accumulator
// (range and subnormals aside). Veltkamp's split, not sycl::half, which would
// make the compiler put every kernel that mentions it in an image of its own
// (the fp16 aspect).
inline float half_round(float v) {
  const float c = v * 8193.f; // 2^13 + 1: keeps 24 - 13 = 11 bits
  return c - (c - v);
}

// 2^w through a quadratic for 2^f (relative error 2.7e-3): the "cheaper
// approximation" the faults above put in place of the library's exp.
inline float exp2_approx(float w) {
  if (w < -125.f) return 0.f;
  const float n = sycl::rint(w), f = w - n;
  const float p = sycl::fma(sycl::fma(0.23734974f, f, 0.70128093f), f, 1.00035163f);
  return p * sycl::bit_cast<float>((int(n) + 127) << 23);
}
inline float exp_approx(float x) { return exp2_approx(sycl::fmin(x * 1.44269504f, 127.f)); }

// A fault inside a per-element loop is a compile-time choice: the kernel
// picks an instance once (with_mode), so the normal one computes nothing
// else. (A runtime select there had the vectoriser evaluate both sides:
// softmax 512x512 took 19% longer.)
template <int M> using Mode = std::integral_constant<int, M>;
template <typename F> inline void with_mode(int mode, F &&f) {
  switch (mode) {
  case 1: f(Mode<1>{}); break;
  case 2: f(Mode<2>{}); break;
  case 3: f(Mode<3>{}); break;
  default: f(Mode<0>{}); break;
  }
}

// Abramowitz & Stegun 7.1.27 (absolute error <= 4.7e-4 here).
inline float erf_approx(float x) {
  const float a = sycl::fabs(x);
  float p = sycl::fma(sycl::fma(sycl::fma(0.078108f, a, 0.000972f), a, 0.230389f), a, 0.278393f);
  p = sycl::fma(p, a, 1.f);
  p = p * p;
  const float e = 1.f - 1.f / (p * p);
  return x < 0.f ? -e : e;
}

} // namespace kl::ops
