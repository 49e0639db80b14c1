// Row normalisations; one work-group per row, its work-items stride the row.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

// y = x / sqrt(mean(x^2) + eps) * weight
template <int D>
inline void rmsnorm_row(const sycl::nd_item<D> &it, const float *x, const float *weight, float *y, size_t dim,
                        float eps) {
  Lanes l(it);
  float mean_sq = group_sum_of(it, l, dim, [&](size_t i) { return x[i] * x[i]; }) / float(dim);
  float inv = 1.f / sycl::sqrt(mean_sq + eps);
  l.each(dim, [&](size_t i) { y[i] = x[i] * inv * weight[i]; });
}

// y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance; two
// passes (mean, then squares of deviations) so large means cost no accuracy.
template <int D>
inline void layernorm_row(const sycl::nd_item<D> &it, const float *x, const float *weight, const float *bias,
                          float *y, size_t dim, float eps) {
  Lanes l(it);
  float mean = group_sum_of(it, l, dim, [&](size_t i) { return x[i]; }) / float(dim);
  float var = group_sum_of(it, l, dim, [&](size_t i) { return (x[i] - mean) * (x[i] - mean); }) / float(dim);
  float inv = 1.f / sycl::sqrt(var + eps);
  l.each(dim, [&](size_t i) { y[i] = (x[i] - mean) * inv * weight[i] + bias[i]; });
}

} // namespace kl::ops
