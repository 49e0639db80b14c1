// Element-wise activations and arithmetic. Templates so that host
// references can evaluate the same formulas in double.
#pragma once
#include <sycl/sycl.hpp>

#include "faults.hpp"

namespace kl::ops {

// x * sigmoid(x), written as a quotient: exp(-x) overflowing to +inf for very
// negative x gives -0 instead of inf * 0. (f: test-only faults, faults.hpp.)
template <typename T> inline T silu(T x, Faults f = 0) {
  const T e = has(f, fault::SILU_APPROX_EXP) ? T(exp_approx(float(-x))) : sycl::exp(-x);
  return x / (T(1) + e);
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (GELU, tanh approximation)
template <typename T> inline T gelu_tanh(T x, Faults f = 0) {
  const T k = T(0.7978845608028654); // sqrt(2/pi)
  const T u = k * (x + T(0.044715) * x * x * x);
  const T t = has(f, fault::GELU_TANH_APPROX) ? T(1) - T(2) / (T(exp_approx(float(2 * u))) + T(1)) : sycl::tanh(u);
  return T(0.5) * x * (T(1) + t);
}

// 0.5 x (1 + erf(x / sqrt(2)))  (exact GELU)
template <typename T> inline T gelu_erf(T x, Faults f = 0) {
  const T z = x * T(0.7071067811865476);
  return T(0.5) * x * (T(1) + (has(f, fault::GELU_ERF_APPROX) ? T(erf_approx(float(z))) : sycl::erf(z)));
}

template <typename T> inline T swiglu(T gate, T up, Faults f = 0) { return silu(gate, f) * up; }
template <typename T> inline T add(T a, T b, Faults = 0) { return a + b; }
template <typename T> inline T mul(T a, T b, Faults = 0) { return a * b; }

} // namespace kl::ops
