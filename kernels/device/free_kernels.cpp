// Free-function kernels for runtime-compiler toolchains (oneapi-pip): each
// one indexes and calls the op's math from ops/; nothing else lives here.
#include <sycl/sycl.hpp>

#include "ops/saxpy.hpp"

namespace syclexp = sycl::ext::oneapi::experimental;

#define KL_KERNEL_1D                                                          \
  extern "C" SYCL_EXT_ONEAPI_FUNCTION_PROPERTY((syclexp::nd_range_kernel<1>)) \
  void

static inline size_t kl_gid() {
  return sycl::ext::oneapi::this_work_item::get_nd_item<1>().get_global_id(0);
}

KL_KERNEL_1D kl_saxpy(float a, const float *x, float *y, unsigned long n) {
  size_t i = kl_gid();
  if (i < n) y[i] = kl::ops::saxpy(a, x[i], y[i]);
}
