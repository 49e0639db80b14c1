// Host API over free-function kernels (runtime-compiler toolchains):
// one line per op, mechanically mirroring device/free_kernels.cpp.
#include "runtime/runtime_impl.hpp"

namespace kl {

void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n) {
  rt.impl().launch1d("kl_saxpy", n, a, x, y, (unsigned long)n);
}

} // namespace kl
