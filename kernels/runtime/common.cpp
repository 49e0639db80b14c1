// Parts of the runtime that do not depend on how kernels are launched.
#include "runtime/runtime_impl.hpp"

namespace kl {

sycl::queue &Runtime::queue() { return impl_->q; }
std::string Runtime::device_name() const {
  return impl_->q.get_device().get_info<sycl::info::device::name>();
}
std::string Runtime::image() const { return impl_->image; }
const std::vector<Attempt> &Runtime::attempts() const { return impl_->attempts; }

} // namespace kl
