// The runtime of single-source builds (icpx, intel/llvm clang, acpp): an
// in-order queue on the default device, and the launch layer
// (launch_lambda.cpp) from the module syclforge picks: one per ISA where the
// family compiles one ISA per binary (AdaptiveCpp's omp flow), else this
// library itself, whose images the SYCL runtime chooses between.
#include <cstdio>

#include "runtime/launch.hpp"
#include "runtime/runtime_impl.hpp"
#include "syclforge/fatbin.hpp"

namespace kl {

Runtime::Runtime() : Runtime(std::string()) {}

Runtime::Runtime(const std::string &image) : impl_(std::make_unique<Impl>()) {
  Impl &m = *impl_;
  try {
    syclforge::Module module = syclforge::load_module(image);
    for (const auto &a : module.attempts) m.attempts.push_back({a.image, a.ok, a.why});
    m.image = module.image;
    m.ops = reinterpret_cast<const launch::Table *(*)()>(module.symbol("kl_launch_table"))();
  } catch (const syclforge::Error &e) {
    throw Error(e.what());
  }
  // A GPU target's binary runs on a GPU or not at all: a SYCL runtime with a
  // host backend too (AdaptiveCpp's OpenMP device) would otherwise run it
  // there, silently, where no GPU is found.
  if (syclforge::build_device() == "gpu") {
    std::vector<sycl::device> gpus = sycl::device::get_devices(sycl::info::device_type::gpu);
    if (gpus.empty()) {
      std::string seen;
      for (const auto &d : sycl::device::get_devices())
        seen += (seen.empty() ? "" : ", ") + d.get_info<sycl::info::device::name>();
      throw Error("target " + syclforge::build_target() + " needs a GPU, and the SYCL runtime (" +
                  syclforge::build_toolchain() + ") finds none (devices: " + (seen.empty() ? "none" : seen) +
                  "); is the GPU driver installed (libcuda.so.1 for NVIDIA)?");
    }
    m.q = sycl::queue(gpus.front(), m.async_handler(), sycl::property::queue::in_order());
  } else {
    m.q = sycl::queue(sycl::cpu_selector_v, m.async_handler(), sycl::property::queue::in_order());
  }
  m.compute_units = std::max<size_t>(1, m.q.get_device().get_info<sycl::info::device::max_compute_units>());
  if (syclforge::verbose())
    std::fprintf(stderr, "syclforge: device=\"%s\" image=%s\n", device_name().c_str(), m.image.c_str());
}

Runtime::~Runtime() {
  try {
    impl_->q.wait();
  } catch (...) {
  }
}

void Runtime::Impl::enqueue(const char *name, int, const size_t *, const size_t *, const Arg *, size_t) {
  throw Error(std::string("enqueueing kernels by name (") + name + ") is for runtime-compiler builds");
}

} // namespace kl
