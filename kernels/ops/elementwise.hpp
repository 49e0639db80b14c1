// Element-wise activations and arithmetic. Templates so that host
// references can evaluate the same formulas in double.
#pragma once
#include <sycl/sycl.hpp>

#include "faults.hpp"

namespace kl::ops {

// Each op's Faulty instance is its test-only fault (faults.hpp); a kernel
// picks the instance once (faulty()), not per element.

// x * sigmoid(x), written as a quotient: exp(-x) overflowing to +inf for very
// negative x gives -0 instead of inf * 0.
template <typename T, bool Faulty = false> inline T silu(T x) {
  T e;
  if constexpr (Faulty) e = T(exp_approx(float(-x))); // SILU_APPROX_EXP
  else e = sycl::exp(-x);
  return x / (T(1) + e);
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (GELU, tanh approximation)
template <typename T, bool Faulty = false> inline T gelu_tanh(T x) {
  const T k = T(0.7978845608028654); // sqrt(2/pi)
  const T u = k * (x + T(0.044715) * x * x * x);
  T t;
  if constexpr (Faulty) t = T(1) - T(2) / (T(exp_approx(float(2 * u))) + T(1)); // GELU_TANH_APPROX
  else t = sycl::tanh(u);
  return T(0.5) * x * (T(1) + t);
}

// 0.5 x (1 + erf(x / sqrt(2)))  (exact GELU)
template <typename T, bool Faulty = false> inline T gelu_erf(T x) {
  const T z = x * T(0.7071067811865476);
  T e;
  if constexpr (Faulty) e = T(erf_approx(float(z))); // GELU_ERF_APPROX
  else e = sycl::erf(z);
  return T(0.5) * x * (T(1) + e);
}

template <typename T, bool Faulty = false> inline T swiglu(T gate, T up) { return silu<T, Faulty>(gate) * up; }
template <typename T> inline T add(T a, T b) { return a + b; }
template <typename T> inline T mul(T a, T b) { return a * b; }

// Whether an element-wise op's Faulty instance runs (the fault of each op).
inline bool faulty_silu(Faults f) { return has(f, fault::SILU_APPROX_EXP); }
inline bool faulty_gelu_tanh(Faults f) { return has(f, fault::GELU_TANH_APPROX); }
inline bool faulty_gelu_erf(Faults f) { return has(f, fault::GELU_ERF_APPROX); }

} // namespace kl::ops
