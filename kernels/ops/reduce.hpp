// Row reductions with NumPy's semantics: sum propagates NaN/Inf, max of a
// row holding NaN is NaN, argmax is the first NaN's index if there is one,
// else the first index of the maximum.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

#include <cstdint>

namespace kl::ops {

template <typename Team> inline float row_sum(const Team &team, const float *x, size_t cols, Faults f) {
  Lanes l(team);
  Sum acc[4];
  if (has(f, fault::SUM_TAIL)) cols -= 1;
  if (has(f, fault::SUM_HALF_ACC)) l.fold(cols, acc, [&](Sum &a, size_t i) { a.s = half_round(a.s + x[i]); });
  else l.fold(cols, acc, [&](Sum &a, size_t i) { a.add(x[i]); });
  for (int u = 1; u < 4; ++u) acc[0].add(acc[u].value());
  float s = sycl::reduce_over_group(team, acc[0].s, sycl::plus<float>());
  float c = sycl::reduce_over_group(team, acc[0].c, sycl::plus<float>());
  return sycl::isfinite(s) ? s + c : s;
}

template <typename Team> inline float row_max(const Team &team, const float *x, size_t cols, Faults f) {
  Lanes l(team);
  if (has(f, fault::MAX_TAIL)) cols -= 1;
  float m[4] = {-INF, -INF, -INF, -INF};
  l.fold(cols, m, [&](float &a, size_t i) { a = nan_max(a, x[i]); });
  float v = nan_max(nan_max(m[0], m[1]), nan_max(m[2], m[3]));
  bool nan = sycl::any_of_group(team, v != v);
  float best = sycl::reduce_over_group(team, v, sycl::maximum<float>());
  return nan ? QNAN : best;
}

// cols < 2^31 (the result is int32).
template <typename Team> inline int32_t row_argmax(const Team &team, const float *x, size_t cols, Faults f) {
  Lanes l(team);
  if (has(f, fault::ARGMAX_TAIL)) cols -= 1;
  const uint32_t none = 0xffffffffu;
  float m = -INF;
  uint32_t at = none, first_nan = none;
  l.each(cols, [&](size_t i) { // ascending per work-item: the first of equals wins
    float v = x[i];
    if (v != v) first_nan = first_nan == none ? uint32_t(i) : first_nan;
    else if (v > m || at == none) {
      m = v;
      at = uint32_t(i);
    }
  });
  uint32_t nan_at = sycl::reduce_over_group(team, first_nan, sycl::minimum<uint32_t>());
  if (nan_at != none) return int32_t(nan_at);
  float best = sycl::reduce_over_group(team, at == none ? -INF : m, sycl::maximum<float>());
  // Each work-item holds the first index of its own maximum; the smallest
  // among those equal to the row's maximum is the row's first.
  uint32_t cand = (at != none && m == best) ? at : none;
  return int32_t(sycl::reduce_over_group(team, cand, sycl::minimum<uint32_t>()));
}

} // namespace kl::ops
