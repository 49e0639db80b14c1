// The math of each op is written once, here, as plain inline functions that
// any SYCL 2020 device compiler (and the host, for references) can compile.
// Launch wrappers (free-function kernels, lambdas) only index and call these.
#pragma once

namespace kl::ops {

inline float saxpy(float a, float x, float y) { return a * x + y; }

} // namespace kl::ops
