// Internal state shared by the runtime and the launch wrappers.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <sycl/sycl.hpp>

#include "syclforge/kl.hpp"

namespace kl {

struct Runtime::Impl {
  sycl::queue q;
  std::string image;
  std::vector<Attempt> attempts;
  void *program = nullptr; // cl_program, runtime-compiler toolchains only
  std::map<std::string, std::pair<void *, sycl::kernel>> kernels;

  // The kernel named `name` from the chosen image (runtime-compiler only).
  sycl::kernel kernel(const char *name);

  // Launch a 1-D free-function kernel over n work-items, rounded up to a
  // whole number of work-groups; kernels guard their own tail.
  template <typename... Args>
  void launch1d(const char *name, size_t n, Args... args) {
    if (n == 0) return;
    sycl::kernel k = kernel(name);
    constexpr size_t wg = 64;
    size_t global = (n + wg - 1) / wg * wg;
    q.submit([&](sycl::handler &h) {
      int i = 0;
      (h.set_arg(i++, args), ...);
      h.parallel_for(sycl::nd_range<1>{global, wg}, k);
    });
  }
};

} // namespace kl
