// Helpers shared by the ops: how work-items stride a row or a block, sums
// and maxima over a work-group (SYCL 2020 group algorithms only), and the
// exp used for softmax weights. Plain SYCL 2020 device code: every SYCL
// compiler accepts it, and the host can evaluate the scalar parts.
#pragma once
#include <sycl/sycl.hpp>

#include "faults.hpp"

#include <cstddef>
#include <limits>

namespace kl::ops {

// Work-items per row for the row-wise ops (norms, softmax, reductions,
// embedding, attention) and per block for the element-wise ones: the
// single-source launches use this; the runtime-compiler ones use the vector
// width of the image that runs (Runtime::Impl::row_lanes), never more. The
// ops take the count from the work-group, so any count works.
constexpr int ROW_LANES = 16;

constexpr float INF = std::numeric_limits<float>::infinity();
constexpr float QNAN = std::numeric_limits<float>::quiet_NaN();

// a * b + c for sums and polynomials: one FMA instruction where the ISA has
// one, a multiply and an add where it has not (SSE4.2). sycl::fma must round
// once on every ISA, so without FMA hardware it is a software routine: the
// SSE4.2 image ran GEMM 512^3 ~1000x and softmax ~150x slower than AVX2's
// (compare.py --image). Only exact-error tricks (rope.hpp) need sycl::fma.
inline float madd(float a, float b, float c) { return sycl::mad(a, b, c); }

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
  // the work-items of a team: a sycl::group or a sycl::sub_group
  template <typename Team> explicit Lanes(const Team &team)
      : lane(team.get_local_linear_id()), lanes(team.get_local_linear_range()) {}

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

// Row-wise ops of the runtime-compiler launches: a work-group holds up to
// ROWS_PER_GROUP sub-groups, and f(sub_group, r) runs for each row r of
// this sub-group: sub-group s of the S in the launch takes rows s, s + S, ...
// A row's sums and maxima are then sub-group collectives (registers, no
// work-group barrier), and every row is covered whatever sub-group size the
// compiler picked. (Measured on AVX2, softmax 512x512: ~13% faster than a
// work-group per row at 4 rows a group, ~6% more at 16.)
constexpr size_t ROWS_PER_GROUP = 16;
template <typename F> inline void each_row(const sycl::nd_item<1> &it, size_t rows, F &&f) {
  const auto sg = it.get_sub_group();
  const size_t per = sg.get_group_linear_range(), S = it.get_group_range(0) * per;
  for (size_t r = it.get_group(0) * per + sg.get_group_linear_id(); r < rows; r += S) f(sg, r);
}

// Element-wise ops: work-group g takes elements [g, g+1) * ELEM_BLOCK, its
// work-items striding the block (whole vectors; only the array's last step
// is partial). Fewer, larger work-groups cost the CPU runtime less.
constexpr size_t ELEM_BLOCK = 4096;
template <int D, typename F>
inline void each_in_block(const sycl::nd_item<D> &it, size_t n, Faults faults, F &&f) {
  if (has(faults, fault::ELEM_TAIL)) n -= 1; // n >= 1: launched for n > 0 only
  const size_t b0 = it.get_group(D - 1) * ELEM_BLOCK;
  Lanes(it).each(imin(ELEM_BLOCK, n - b0), [&](size_t i) { f(b0 + i); });
}

// 2^w for w <= 0: the weights of softmax and attention, w = (score - max) *
// log2(e). Written out rather than sycl::exp: the CPU's vector exp is an
// SVML call per vector and was most of softmax's time. w = n + f, |f| <= 1/2,
// then a degree-5 polynomial for 2^f fitted for relative error (within
// 1.4 eps), times 2^n made from exponent bits (n in [-126, 0] for w in
// [-125.5, 0]; still exact up to w = 127). Results below 2^-125.5 (about
// 2e-38) are flushed to 0, as subnormals would take the CPU's slow path; that
// select also drops whatever a huge or infinite negative w made of n and f.
// NaN stays NaN.
constexpr float LOG2E = 1.44269504088896341f;
inline float exp2_flush(float w) {
  const float n = sycl::rint(w);
  const float f = w - n; // exact
  float q = 1.321946270763874e-3f;
  q = madd(q, f, 9.671701118350029e-3f);
  q = madd(q, f, 5.550890415906906e-2f);
  q = madd(q, f, 2.4022237956523895e-1f);
  q = madd(q, f, 6.931468844413757e-1f);
  const float p = madd(q, f, 1.f);
  return w < -125.5f ? 0.f : p * sycl::bit_cast<float>((int(n) + 127) << 23);
}

// Sum of f(i) over a team's row (a group or a sub-group), returned to every work-item.
// half_acc: the fault of an fp16 accumulator (faults.hpp).
template <typename Team, typename F>
inline float group_sum_of(const Team &team, const Lanes &l, size_t n, F &&f, bool half_acc = false) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  if (half_acc) l.fold(n, acc, [&](float &a, size_t i) { a = half_round(a + f(i)); });
  else l.fold(n, acc, [&](float &a, size_t i) { a += f(i); });
  return sycl::reduce_over_group(team, (acc[0] + acc[1]) + (acc[2] + acc[3]), sycl::plus<float>());
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
