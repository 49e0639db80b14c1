// Helpers shared by the ops: how work-items stride a row or a block, sums
// and maxima over a work-group (SYCL 2020 group algorithms only), and the
// exp used for softmax weights. Plain SYCL 2020 device code: every SYCL
// compiler accepts it, and the host can evaluate the scalar parts.
#pragma once
#include <sycl/sycl.hpp>

#include <cstddef>
#include <limits>

namespace kl::ops {

// Work-items per row for the row-wise ops (norms, softmax, reductions,
// embedding): a multiple of every CPU vector width (4, 8, 16 floats).
constexpr int ROW_LANES = 16;

constexpr float INF = std::numeric_limits<float>::infinity();
constexpr float QNAN = std::numeric_limits<float>::quiet_NaN();

// Index arithmetic: sycl::min on integers makes the Intel CPU compiler treat
// the result as varying across work-items (it gathers through it even when
// every lane holds the same value); a plain ternary keeps it uniform.
inline size_t imin(size_t a, size_t b) { return a < b ? a : b; }

// Row loops: work-item `lane` of `lanes` visits lane, lane + lanes, ... so that
// neighbouring work-items touch neighbouring elements (the CPU compiler turns
// that into vector loads; GPUs coalesce it). The loop bounds are the same in
// every work-item and only the last step is partial: a bound that differs
// per lane (i = lane; i < n; i += lanes) makes the CPU compiler mask every
// step of the loop.
struct Lanes {
  size_t lane, lanes;
  template <int D> explicit Lanes(const sycl::nd_item<D> &it)
      : lane(it.get_local_id(D - 1)), lanes(it.get_local_range(D - 1)) {}

  // f(i) for each of this work-item's indices below n.
  template <typename F> void each(size_t n, F &&f) const {
    const size_t whole = n - n % lanes;
    for (size_t base = 0; base < whole; base += lanes) f(base + lane);
    if (whole + lane < n) f(whole + lane);
  }

  // combine(acc[u], i) over this work-item's indices, U independent
  // accumulators (a dependency chain per accumulator, not per element).
  template <int U, typename T, typename F> void fold(size_t n, T (&acc)[U], F &&combine) const {
    const size_t step = U * lanes, whole = n - n % step;
    for (size_t base = 0; base < whole; base += step)
      for (int u = 0; u < U; ++u) combine(acc[u], base + u * lanes + lane);
    // the rest into acc[0]: a constant index keeps acc in registers
    for (size_t base = whole; base < n; base += lanes)
      if (base + lane < n) combine(acc[0], base + lane);
  }
};

// Element-wise ops: work-group g takes elements [g, g+1) * ELEM_BLOCK, its
// work-items striding the block (whole vectors; only the array's last step
// is partial). Fewer, larger work-groups cost the CPU runtime less.
constexpr size_t ELEM_BLOCK = 4096;
template <int D, typename F> inline void each_in_block(const sycl::nd_item<D> &it, size_t n, F &&f) {
  const size_t b0 = it.get_group(D - 1) * ELEM_BLOCK;
  Lanes(it).each(imin(ELEM_BLOCK, n - b0), [&](size_t i) { f(b0 + i); });
}

// exp(z) for softmax weights, with subnormal results (< FLT_MIN, 1.2e-38)
// flushed to 0: the CPU's vector exp takes a slow path for them (~15x).
inline float exp_flush(float z) {
  const float lo = -87.3365447f; // ln(FLT_MIN): below it exp(z) is subnormal
  float e = sycl::exp(z < lo ? lo : z); // NaN stays NaN
  return z < lo ? 0.f : e;
}

// Sum of f(i) over a work-group's row, returned to every work-item.
template <int D, typename F> inline float group_sum_of(const sycl::nd_item<D> &it, const Lanes &l, size_t n, F &&f) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  l.fold(n, acc, [&](float &a, size_t i) { a += f(i); });
  return sycl::reduce_over_group(it.get_group(), (acc[0] + acc[1]) + (acc[2] + acc[3]), sycl::plus<float>());
}

// Neumaier-compensated sum (kl_sum): rows of any length stay within a few ulp
// of the float64 sum. Once the running sum is not finite (Inf, NaN,
// overflow) the compensation is dropped so that Inf/NaN propagate as IEEE says.
struct Sum {
  float s = 0.f, c = 0.f;
  void add(float x) {
    float t = s + x;
    c += sycl::fabs(s) >= sycl::fabs(x) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  float value() const { return sycl::isfinite(s) ? s + c : s; }
};

// Max that propagates NaN (NumPy's np.max); -inf is the identity.
inline float nan_max(float a, float b) { return a != a ? a : (b != b ? b : (b > a ? b : a)); }

} // namespace kl::ops
