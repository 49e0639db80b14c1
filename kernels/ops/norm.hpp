// Row normalisations; a team (a work-group or a sub-group) per row, its
// work-items stride the row.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

// 1 / sqrt(mean(x^2) + eps) of one row, summed by `team`: RMSNorm's and
// the fused RMSNorm+GEMV's (gemm.hpp), which agree bit for bit where their
// teams are alike (a sub-group of the same lanes).
template <typename Team> inline float rms_inv(const Team &team, const float *x, size_t dim, float eps, Faults f) {
  float mean_sq = group_sum_of(
      team, Lanes(team), dim, [&](size_t i) { return x[i] * x[i]; }, has(f, fault::NORM_HALF_ACC)) / float(dim);
  return has(f, fault::NORM_EPS_OUTSIDE) ? 1.f / (sycl::sqrt(mean_sq) + eps) : 1.f / sycl::sqrt(mean_sq + eps);
}
// One element of the normalised row.
inline float rms_apply(float x, float inv, float weight) { return x * inv * weight; }

// y = x / sqrt(mean(x^2) + eps) * weight
template <typename Team>
inline void rmsnorm_row(const Team &team, const float *x, const float *weight, float *y, size_t dim,
                        float eps, Faults f) {
  const float inv = rms_inv(team, x, dim, eps, f);
  Lanes(team).each(dim, [&](size_t i) { y[i] = rms_apply(x[i], inv, weight[i]); });
}

// y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance; two
// passes (mean, then squares of deviations) so large means cost no accuracy.
template <typename Team>
inline void layernorm_row(const Team &team, const float *x, const float *weight, const float *bias,
                          float *y, size_t dim, float eps, Faults f) {
  Lanes l(team);
  const bool half = has(f, fault::NORM_HALF_ACC);
  float mean = group_sum_of(team, l, dim, [&](size_t i) { return x[i]; }, half) / float(dim);
  float var =
      group_sum_of(team, l, dim, [&](size_t i) { return (x[i] - mean) * (x[i] - mean); }, half) / float(dim);
  float inv = has(f, fault::NORM_EPS_OUTSIDE) ? 1.f / (sycl::sqrt(var) + eps) : 1.f / sycl::sqrt(var + eps);
  l.each(dim, [&](size_t i) { y[i] = (x[i] - mean) * inv * weight[i] + bias[i]; });
}

} // namespace kl::ops
