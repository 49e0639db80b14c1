// Numerically stable row softmax with temperature and an optional causal mask.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

// Columns a causal row `row` may see (it starts at position pos0 + row).
inline size_t softmax_visible(size_t cols, int causal, size_t pos0, size_t row) {
  if (!causal) return cols;
  size_t last = pos0 + row; // sees columns 0 .. last
  return last + 1 < cols ? last + 1 : cols;
}

// y = exp(z - max z) / sum exp(z - max z), z = x / temperature, over the
// first `visible` columns; the rest of the row is 0. A NaN makes the sum NaN,
// so the whole row comes out NaN, as with NumPy. max z = (max x) / t exactly
// (t > 0 and rounding are monotonic), and z - max z is formed as
// (x - max x) * (log2(e) / t), the exponent of 2.
// M: 0 the library's; the test-only faults (faults.hpp) 1 a cheaper exp,
// 2 no max subtracted (a plain 2^w, which overflows: exp2_flush assumes
// w <= 0), 3 the last visible column left out of the sum.
template <int M, typename Team>
inline void softmax_row_as(const Team &team, const float *x, float *y, size_t cols, size_t visible,
                           float temperature) {
  Lanes l(team);
  float m[4] = {-INF, -INF, -INF, -INF};
  // Which of several NaNs or a NaN vs a number wins does not matter: a NaN
  // anywhere reaches the sum, so one compare per element is enough.
  l.fold(visible, m, [&](float &a, size_t i) { a = x[i] > a ? x[i] : a; });
  const float xmax = sycl::reduce_over_group(team, sycl::fmax(sycl::fmax(m[0], m[1]), sycl::fmax(m[2], m[3])),
                                             sycl::maximum<float>());
  const float k = LOG2E / temperature; // exp((x - xmax) / t) = 2^((x - xmax) * k)
  const float sub = M == 2 ? 0.f : xmax;
  float total = group_sum_of(team, l, visible, [&](size_t i) {
    const float w = (x[i] - sub) * k;
    float e;
    if constexpr (M == 1) e = exp2_approx(w);
    else if constexpr (M == 2) e = sycl::exp2(w);
    else e = exp2_flush(w);
    y[i] = e;
    if constexpr (M == 3) return i + 1 < visible ? e : 0.f;
    else return e;
  });
  const float inv = 1.f / total;
  l.each(visible, [&](size_t i) { y[i] *= inv; });
  for (size_t i = visible + l.lane; i < cols; i += l.lanes) y[i] = 0.f; // masked tail: short or absent
}

// The library's instance unless a softmax fault is on (a direct call: the
// fault instances behind with_mode cost it 4-5% when it went through there too).
template <typename Team>
inline void softmax_row(const Team &team, const float *x, float *y, size_t cols, size_t visible,
                        float temperature, Faults f) {
  const int mode = has(f, fault::SOFTMAX_APPROX_EXP) ? 1 : has(f, fault::SOFTMAX_NO_MAX) ? 2
                   : has(f, fault::SOFTMAX_TAIL)     ? 3 : 0;
  if (mode == 0) return softmax_row_as<0>(team, x, y, cols, visible, temperature);
  with_mode(mode, [&](auto md) { softmax_row_as<decltype(md)::value>(team, x, y, cols, visible, temperature); });
}

} // namespace kl::ops
