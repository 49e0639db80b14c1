// Host API for single-source toolchains (icpx, intel/llvm clang, acpp): the
// same ops launched as lambdas; the compiler embeds the device images and the
// SYCL runtime picks one, so the runtime here only chooses the device.
#include <cstdio>
#include <cstdlib>

#include "ops/saxpy.hpp"
#include "runtime/runtime_impl.hpp"

#ifndef KL_BUILD_TARGET
#define KL_BUILD_TARGET "unknown"
#endif
#ifndef KL_BUILD_TOOLCHAIN
#define KL_BUILD_TOOLCHAIN "unknown"
#endif
#ifndef KL_BUILD_IMAGES // "id:kind,id:kind,..." as the build resolved them
#define KL_BUILD_IMAGES ""
#endif

namespace kl {

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  impl_->q = sycl::queue(sycl::default_selector_v, sycl::property::queue::in_order());
  impl_->image = "runtime-selected";
  impl_->attempts.push_back({impl_->image, true, ""});
  if (const char *v = std::getenv("SYCLFORGE_VERBOSE"); v && *v && std::string(v) != "0")
    std::fprintf(stderr, "syclforge: device=\"%s\" image=%s\n", device_name().c_str(), impl_->image.c_str());
}
Runtime::~Runtime() = default;

sycl::kernel Runtime::Impl::kernel(const char *name) {
  throw Error(std::string("kernel lookup by name (") + name + ") is for runtime-compiler builds");
}

std::vector<ImageInfo> Runtime::images() {
  std::vector<ImageInfo> out;
  std::string s = KL_BUILD_IMAGES;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(pos, end - pos);
    size_t colon = item.find(':');
    out.push_back({item.substr(0, colon), colon == std::string::npos ? "" : item.substr(colon + 1), 0});
    pos = end + 1;
  }
  return out;
}
std::string Runtime::target() { return KL_BUILD_TARGET; }
std::string Runtime::toolchain() { return KL_BUILD_TOOLCHAIN; }

void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n) {
  rt.queue().parallel_for(sycl::range<1>(n), [=](sycl::id<1> i) { y[i] = ops::saxpy(a, x[i], y[i]); });
}

} // namespace kl
