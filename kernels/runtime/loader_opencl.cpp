// Runtime for runtime-compiler toolchains (oneapi-pip): the device images are
// embedded in this library; the loader hands them to the OpenCL backend under
// SYCL and keeps the first one the device accepts. A native image for an ISA
// the CPU lacks is refused by clCreateProgramWithBinary (CL_INVALID_BINARY),
// which is what makes the fallback to the next image safe.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <sycl/backend/opencl.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "runtime/embedded.hpp"
#include "runtime/runtime_impl.hpp"
#include "syclforge/kl.hpp"

namespace kl {
namespace {

// The Intel OpenCL CPU runtime ships next to libOpenCL in the wheel; the ICD
// file the wheel installs holds a placeholder path, so point the ICD loader
// at the real library unless the user already chose one. It runs when the
// library is loaded: SYCL enumerates platforms once, at its first use.
__attribute__((constructor)) void point_icd_loader_at_cpu_runtime() {
  if (std::getenv("OCL_ICD_FILENAMES")) return;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void *>(&clGetPlatformIDs), &info) || !info.dli_fname) return;
  std::string dir = info.dli_fname;
  dir = dir.substr(0, dir.rfind('/') + 1);
  std::string icd = dir + "libintelocl.so";
  if (FILE *f = std::fopen(icd.c_str(), "rb")) {
    std::fclose(f);
    setenv("OCL_ICD_FILENAMES", icd.c_str(), 0);
  }
}

const char *cl_error_name(cl_int e) {
  switch (e) {
  case CL_INVALID_BINARY: return "CL_INVALID_BINARY (the device lacks this ISA)";
  case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
  case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
  case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
  default: return "OpenCL error";
  }
}

std::string describe(cl_int e) { return std::string(cl_error_name(e)) + " [" + std::to_string(e) + "]"; }

bool is_opencl_cpu(const sycl::device &d) {
  return d.get_backend() == sycl::backend::opencl && d.is_cpu();
}

} // namespace

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  Impl &m = *impl_;
  sycl::device dev;
  bool found = false;
  for (const auto &d : sycl::device::get_devices())
    if (is_opencl_cpu(d)) { dev = d; found = true; break; }
  if (!found)
    throw Error("no OpenCL CPU device found (is intel-opencl-rt installed, and "
                "OCL_ICD_FILENAMES unset or pointing at libintelocl.so?)");
  m.q = sycl::queue(dev, sycl::property::queue::in_order());
  cl_context ctx = sycl::get_native<sycl::backend::opencl>(m.q.get_context());
  cl_device_id cdev = sycl::get_native<sycl::backend::opencl>(dev);

  const char *forced = std::getenv("SYCLFORGE_IMAGE");
  if (forced && !*forced) forced = nullptr;
  if (forced) {
    bool known = false;
    std::string ids;
    for (size_t i = 0; i < kl_embedded_image_count; ++i) {
      known |= std::string(forced) == kl_embedded_images[i].id;
      ids += (i ? ", " : "") + std::string(kl_embedded_images[i].id);
    }
    if (!known)
      throw Error(std::string("SYCLFORGE_IMAGE=") + forced + ": no such image in this binary (it holds: " + ids + ")");
  }

  for (size_t i = 0; i < kl_embedded_image_count; ++i) {
    const kl_embedded_image &img = kl_embedded_images[i];
    if (forced && std::string(forced) != img.id) continue;
    cl_int err = CL_SUCCESS;
    cl_program p;
    if (std::string(img.kind) == "portable") {
      p = clCreateProgramWithIL(ctx, img.data, img.size, &err);
    } else {
      cl_int status = CL_SUCCESS;
      const unsigned char *bin = img.data;
      size_t size = img.size;
      p = clCreateProgramWithBinary(ctx, 1, &cdev, &size, &bin, &status, &err);
      if (err == CL_SUCCESS && status != CL_SUCCESS) err = status;
    }
    if (err == CL_SUCCESS) {
      err = clBuildProgram(p, 1, &cdev, "", nullptr, nullptr);
      if (err != CL_SUCCESS) clReleaseProgram(p);
    }
    if (err != CL_SUCCESS) {
      m.attempts.push_back({img.id, false, describe(err)});
      continue;
    }
    m.attempts.push_back({img.id, true, ""});
    m.program = p;
    m.image = img.id;
    break;
  }
  if (!m.program) {
    std::string why;
    for (const auto &a : m.attempts) why += "\n  " + a.image + ": " + a.why;
    throw Error(std::string(forced ? "SYCLFORGE_IMAGE=" + std::string(forced) + " cannot run"
                                   : "no embedded image runs") +
                " on device \"" + device_name() + "\":" + why);
  }
  if (const char *v = std::getenv("SYCLFORGE_VERBOSE"); v && *v && std::string(v) != "0")
    std::fprintf(stderr, "syclforge: device=\"%s\" image=%s\n", device_name().c_str(), m.image.c_str());
}

Runtime::~Runtime() {
  for (auto &kv : impl_->kernels) clReleaseKernel(static_cast<cl_kernel>(kv.second.first));
  if (impl_->program) clReleaseProgram(static_cast<cl_program>(impl_->program));
}

// Free-function kernels appear in the images as __sycl_kernel_<name>.
sycl::kernel Runtime::Impl::kernel(const char *name) {
  auto it = kernels.find(name);
  if (it != kernels.end()) return it->second.second;
  cl_int err = CL_SUCCESS;
  std::string entry = std::string("__sycl_kernel_") + name;
  cl_kernel k = clCreateKernel(static_cast<cl_program>(program), entry.c_str(), &err);
  if (err != CL_SUCCESS)
    throw Error("image " + image + " has no kernel " + name + ": " + describe(err));
  sycl::kernel sk = sycl::make_kernel<sycl::backend::opencl>(k, q.get_context());
  kernels.emplace(name, std::make_pair(static_cast<void *>(k), sk));
  return sk;
}

std::vector<ImageInfo> Runtime::images() {
  std::vector<ImageInfo> out;
  for (size_t i = 0; i < kl_embedded_image_count; ++i)
    out.push_back({kl_embedded_images[i].id, kl_embedded_images[i].kind, kl_embedded_images[i].size});
  return out;
}
std::string Runtime::target() { return kl_build_target; }
std::string Runtime::toolchain() { return kl_build_toolchain; }

} // namespace kl
