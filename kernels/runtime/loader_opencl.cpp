// The kernel library's runtime for runtime-compiler builds (oneapi-pip): the
// device image comes from syclforge's fat-binary loader (syclforge/fatbin.hpp:
// best image first, SYCLFORGE_IMAGE, SYCLFORGE_CPU_ISAS), and the ops are
// enqueued straight on the OpenCL queue under the SYCL queue.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <sycl/backend/opencl.hpp>

#include <algorithm>
#include <string>

#include "runtime/runtime_impl.hpp"
#include "syclforge/fatbin.hpp"
#include "syclforge/kl.hpp"

namespace kl {
namespace {

std::string describe(cl_int e) { return syclforge::describe_cl_error(e); }

} // namespace

Runtime::Runtime() : Runtime(std::string()) {}

Runtime::Runtime(const std::string &image) : impl_(std::make_unique<Impl>()) {
  Impl &m = *impl_;
  try {
    sycl::device dev = syclforge::opencl_cpu_device();
    m.q = sycl::queue(dev, m.async_handler(), sycl::property::queue::in_order());
    syclforge::Loaded loaded = syclforge::load_image(m.q, image);
    for (const auto &a : loaded.attempts) m.attempts.push_back({a.image, a.ok, a.why});
    m.program = loaded.program;
    m.ops = kl_launch_table(); // launch_free.cpp, in this library
    m.image = loaded.image;
    m.row_lanes = loaded.vector_floats;
    m.compute_units = std::max<size_t>(1, dev.get_info<sycl::info::device::max_compute_units>());
  } catch (const syclforge::Error &e) {
    throw Error(e.what());
  }
  m.native_queue = sycl::get_native<sycl::backend::opencl>(m.q); // retained; released by ~Runtime
  m.finish_native = [&m] { clFinish(static_cast<cl_command_queue>(m.native_queue)); };
}

Runtime::~Runtime() {
  try {
    impl_->sync();
  } catch (...) {
  }
  for (auto &kv : impl_->kernels) clReleaseKernel(static_cast<cl_kernel>(kv.second));
  if (impl_->program) clReleaseProgram(static_cast<cl_program>(impl_->program));
  impl_->finish_native = nullptr;
  if (impl_->native_queue) clReleaseCommandQueue(static_cast<cl_command_queue>(impl_->native_queue));
}

// Free-function kernels appear in the images as __sycl_kernel_<name>.
// Called with mutex held.
static cl_kernel kernel_of(Runtime::Impl &m, const char *name, size_t nargs) {
  auto it = m.kernels.find(name);
  if (it != m.kernels.end()) return static_cast<cl_kernel>(it->second);
  cl_int err = CL_SUCCESS;
  std::string entry = std::string("__sycl_kernel_") + name;
  cl_kernel k = clCreateKernel(static_cast<cl_program>(m.program), entry.c_str(), &err);
  if (err != CL_SUCCESS)
    throw Error("image " + m.image + " has no kernel " + name + ": " + describe(err));
  // The device compiler drops parameters a kernel never reads; the launcher
  // would then set the wrong arguments.
  cl_uint have = 0;
  clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof have, &have, nullptr);
  if (have != nargs) {
    clReleaseKernel(k);
    throw Error("kernel " + std::string(name) + " of image " + m.image + " takes " + std::to_string(have) +
                " arguments, the launcher passes " + std::to_string(nargs) +
                " (does the kernel use every parameter?)");
  }
  // The kernels take USM pointers as addresses (free_kernels.cpp: usm<T>):
  // the runtime must then let them reach any USM allocation. It no longer
  // books which allocations a launch uses, so nothing may be freed under a
  // running kernel: kl_free and the staged copies wait for the queue first.
  for (cl_kernel_exec_info what : {CL_KERNEL_EXEC_INFO_INDIRECT_HOST_ACCESS_INTEL,
                                   CL_KERNEL_EXEC_INFO_INDIRECT_DEVICE_ACCESS_INTEL,
                                   CL_KERNEL_EXEC_INFO_INDIRECT_SHARED_ACCESS_INTEL}) {
    const cl_bool yes = CL_TRUE;
    err = clSetKernelExecInfo(k, what, sizeof yes, &yes);
    if (err != CL_SUCCESS) {
      clReleaseKernel(k);
      throw Error("kernel " + std::string(name) + ": the OpenCL platform refuses indirect USM access: " +
                  describe(err));
    }
  }
  m.kernels.emplace(name, k);
  return k;
}

void Runtime::Impl::enqueue(const char *name, int dims, const size_t *global, const size_t *local, const Arg *args,
                            size_t nargs) {
  cl_command_queue cq = static_cast<cl_command_queue>(native_queue);
  std::lock_guard<std::mutex> lock(mutex); // arguments live in the cl_kernel until it is enqueued
  cl_kernel k = kernel_of(*this, name, nargs);
  for (size_t i = 0; i < nargs; ++i) {
    cl_int err = clSetKernelArg(k, cl_uint(i), args[i].size, args[i].value);
    if (err != CL_SUCCESS) throw Error(std::string(name) + ": setting argument " + std::to_string(i) + " failed: " + describe(err));
  }
  size_t g[3], l[3]; // OpenCL's dimension 0 is SYCL's last (fastest)
  for (int d = 0; d < dims; ++d) {
    g[d] = global[dims - 1 - d];
    l[d] = local[dims - 1 - d];
  }
  cl_int err = clEnqueueNDRangeKernel(cq, k, cl_uint(dims), nullptr, g, l, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) throw Error(std::string(name) + ": enqueue failed: " + describe(err));
}


} // namespace kl
