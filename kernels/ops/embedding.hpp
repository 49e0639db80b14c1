// Token embedding: a row of the table per id (ids are range-checked on the
// host, before anything is enqueued).
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

template <int D> inline void embedding_row(const sycl::nd_item<D> &it, const float *table_row, float *y, size_t dim) {
  Lanes l(it);
  l.each(dim, [&](size_t i) { y[i] = table_row[i]; });
}

} // namespace kl::ops
