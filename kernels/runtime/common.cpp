// Parts of the runtime that do not depend on how kernels are launched.
#include <cmath>
#include <cstring>

#include "runtime/runtime_impl.hpp"
#include "syclforge/fatbin.hpp"

namespace kl {

sycl::queue &Runtime::queue() { return impl_->q; }
std::string Runtime::device_name() const {
  return impl_->q.get_device().get_info<sycl::info::device::name>();
}
std::string Runtime::image() const { return impl_->image; }
const std::vector<Attempt> &Runtime::attempts() const { return impl_->attempts; }

// What the build embedded: syclforge's table of this library's device images.
std::vector<ImageInfo> Runtime::images() {
  std::vector<ImageInfo> out;
  for (const auto &i : syclforge::images()) out.push_back({i.id, i.kind, i.size});
  return out;
}
std::string Runtime::target() { return syclforge::build_target(); }
std::string Runtime::toolchain() { return syclforge::build_toolchain(); }

void Runtime::wait() {
  impl_->sync();
  impl_->q.throw_asynchronous(); // to the async handler, which collects them
  std::vector<std::string> errors;
  {
    std::lock_guard<std::mutex> lock(impl_->error_mutex);
    errors.swap(impl_->async_errors);
  }
  if (!errors.empty())
    throw Error("device error: " + errors.front() +
                (errors.size() > 1 ? " (and " + std::to_string(errors.size() - 1) + " more)" : ""));
}

const float *Runtime::Impl::rope_table(float theta, size_t head_dim) {
  uint32_t bits;
  std::memcpy(&bits, &theta, sizeof bits);
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(bits, head_dim);
  if (auto it = rope_tables.find(key); it != rope_tables.end()) return it->second;
  size_t half = head_dim / 2;
  std::vector<float> host(2 * half);
  for (size_t i = 0; i < half; ++i) {
    double f = std::pow(double(theta), -2.0 * double(i) / double(head_dim));
    host[i] = float(f);
    host[half + i] = float(f - double(host[i]));
  }
  float *dev = sycl::malloc_device<float>(host.size(), q);
  if (!dev) throw Error("rope: cannot allocate the frequency table");
  q.memcpy(dev, host.data(), host.size() * sizeof(float)).wait();
  rope_tables.emplace(key, dev);
  return dev;
}

void *Runtime::Impl::stage(const void *data, size_t bytes) {
  void *p = sycl::malloc_host(bytes, q);
  if (!p) throw Error("cannot allocate " + std::to_string(bytes) + " bytes of host USM");
  std::memcpy(p, data, bytes);
  std::lock_guard<std::mutex> lock(staged_mutex);
  staged.push_back(p);
  return p;
}

void Runtime::Impl::sync() {
  if (finish_native) {
    // The ops go straight onto the OpenCL queue under q (loader_opencl.cpp),
    // SYCL's copies too: finish it, then leave SYCL's own wait to where SYCL
    // still holds work. q.wait() on an idle queue cost ~0.5 of the ~4.7 us
    // of a launch waited for (a C loop of 16-float adds, kl_add + kl_wait).
    finish_native();
#ifdef SYCL_EXT_ONEAPI_QUEUE_EMPTY
    if (!q.ext_oneapi_empty()) q.wait();
#else
    q.wait();
#endif
  } else {
    q.wait();
  }
  std::vector<void *> done;
  {
    std::lock_guard<std::mutex> lock(staged_mutex);
    done.swap(staged);
  }
  for (void *p : done) sycl::free(p, q);
}

Runtime::Impl::~Impl() {
  try {
    sync();
  } catch (...) {
  }
  for (auto &kv : rope_tables) sycl::free(kv.second, q);
}

} // namespace kl
