// Token embedding: a row of the table per id (ids are range-checked on the
// host, before anything is enqueued).
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

template <typename Team> inline void embedding_row(const Team &team, const float *table_row, float *y, size_t dim,
                          Faults f) {
  Lanes l(team);
  l.each(has(f, fault::EMBED_TAIL) ? dim - 1 : dim, [&](size_t i) { y[i] = table_row[i]; });
}

} // namespace kl::ops
