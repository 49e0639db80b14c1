// Element-wise activations and arithmetic. Templates so that host
// references can evaluate the same formulas in double.
#pragma once
#include <sycl/sycl.hpp>

namespace kl::ops {

// x * sigmoid(x), written as a quotient: exp(-x) overflowing to +inf for very
// negative x gives -0 instead of inf * 0.
template <typename T> inline T silu(T x) { return x / (T(1) + sycl::exp(-x)); }

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (GELU, tanh approximation)
template <typename T> inline T gelu_tanh(T x) {
  const T k = T(0.7978845608028654); // sqrt(2/pi)
  return T(0.5) * x * (T(1) + sycl::tanh(k * (x + T(0.044715) * x * x * x)));
}

// 0.5 x (1 + erf(x / sqrt(2)))  (exact GELU)
template <typename T> inline T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + sycl::erf(x * T(0.7071067811865476)));
}

template <typename T> inline T swiglu(T gate, T up) { return silu(gate) * up; }
template <typename T> inline T add(T a, T b) { return a + b; }
template <typename T> inline T mul(T a, T b) { return a * b; }

} // namespace kl::ops
