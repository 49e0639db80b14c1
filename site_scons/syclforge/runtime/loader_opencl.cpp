// The fat-binary loader of runtime-compiler builds (oneapi-pip): the device
// images are embedded in the binary (embedded.hpp); the loader hands them to
// the OpenCL backend under SYCL and keeps the first one the device accepts.
// A native image for an ISA the CPU lacks is refused by
// clCreateProgramWithBinary (CL_INVALID_BINARY), which is what makes the
// fallback to the next image safe.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <sycl/backend/opencl.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "cpu_isa.hpp"
#include "embedded.hpp"
#include "syclforge/fatbin.hpp"

#pragma GCC visibility push(hidden)
namespace syclforge {
namespace {

// The Intel OpenCL CPU runtime ships next to libOpenCL in the wheel; the ICD
// file the wheel installs holds a placeholder path, so point the ICD loader
// at the real library unless the user already chose one. It runs when the
// binary is loaded: SYCL enumerates platforms once, at its first use.
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
  case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
  case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
  case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
  default: return "OpenCL error";
  }
}

std::string describe(cl_int e) { return std::string(cl_error_name(e)) + " [" + std::to_string(e) + "]"; }

// Several runtimes of different images in one process, in any order. Intel's
// CPU runtime (2025.3) decides what it accepts from process-wide state
// (measured on AVX2 and on AVX-512 CPUs, every order of the images in a fresh
// process, then every op of each; tests/test_isa_paths.py runs them):
// - CL_CONFIG_CPU_TARGET_ARCH, read when the runtime starts, caps the ISA of
//   the binaries it accepts; unset, the first native binary loaded lowers it.
// - Even under that cap, loading a lower-ISA binary narrows what it accepts
//   next: pinned to skx (AVX-512), after an sse4.2 binary an avx2 one is
//   refused (CL_INVALID_BINARY) while an avx512 one still loads, and after the
//   avx512 one the avx2 one loads again.
// - A SPIR-V program JIT-compiled right after a lower-ISA binary was loaded
//   computes garbage on AVX2 (it gets that binary's builtins).
// Loading a binary of the pinned ISA puts both back. So: pin the best ISA
// this process may use before SYCL starts the runtime, and load the image of
// that ISA just before building any other image. Never pin an ISA the CPU
// lacks: the runtime trusts the variable. A user's own value wins.
// The native images' ISAs, best first: CL_CONFIG_CPU_TARGET_ARCH
// (toolchains/oneapi-pip.yaml) and floats per vector.
struct Isa {
  const char *id, *arch;
  size_t floats;
};
constexpr Isa ISAS[] = {{"avx512", "skx", 16}, {"avx2", "core-avx2", 8}, {"sse4.2", "corei7", 4}};
const Isa *isa_of(const std::string &id) {
  for (const Isa &i : ISAS)
    if (id == i.id) return &i;
  return nullptr;
}
const char *arch_of(const std::string &id) { return isa_of(id) ? isa_of(id)->arch : nullptr; }

// Floats per vector of the code an image runs as (Loaded::vector_floats):
// a native image's ISA, or for the SPIR-V one what the device reports, as the
// CPU runtime compiles it for the host's ISA.
size_t vector_floats(const std::string &id, cl_device_id dev) {
  if (const Isa *i = isa_of(id)) return i->floats;
  cl_uint w = 0;
  if (clGetDeviceInfo(dev, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof w, &w, nullptr) != CL_SUCCESS) w = 0;
  return w >= 16 ? 16 : w >= 8 ? 8 : 4;
}

// The pin is set in this process's environment, which child processes
// inherit: SYCLFORGE_PINNED_ARCH marks it as ours, so that a child (say, one
// started with a lower SYCLFORGE_CPU_ISAS) pins afresh instead of taking it
// for the user's own choice.
__attribute__((constructor)) void pin_cpu_runtime_isa() {
  if (!cpu::isas().error.empty()) return; // load_image reports it
  const char *cur = std::getenv("CL_CONFIG_CPU_TARGET_ARCH"), *ours = std::getenv("SYCLFORGE_PINNED_ARCH");
  if (cur && !(ours && std::string(cur) == ours)) return; // the user's own value wins
  for (const Isa &i : ISAS)
    if (cpu::has(i.id)) {
      setenv("CL_CONFIG_CPU_TARGET_ARCH", i.arch, 1);
      setenv("SYCLFORGE_PINNED_ARCH", i.arch, 1);
      return;
    }
}

// Loads and drops the embedded native image of the pinned ISA (see above),
// unless that is the image about to be built.
void resync_builtins(cl_context ctx, cl_device_id dev, const std::string &next) {
  const char *pinned = std::getenv("CL_CONFIG_CPU_TARGET_ARCH");
  if (!pinned) return;
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
    const syclforge_embedded_image &img = syclforge_embedded_images[i];
    const char *arch = arch_of(img.id);
    if (std::string(img.kind) != "native" || !arch || std::string(arch) != pinned) continue;
    if (next == img.id) return;
    cl_int err = CL_SUCCESS, status = CL_SUCCESS;
    const unsigned char *bin = img.data;
    size_t size = img.size;
    cl_program p = clCreateProgramWithBinary(ctx, 1, &dev, &size, &bin, &status, &err);
    if (err == CL_SUCCESS) {
      clBuildProgram(p, 1, &dev, "", nullptr, nullptr);
      clReleaseProgram(p);
    }
    return;
  }
}

// Why the runtime refused a native image (CL_INVALID_BINARY).
std::string why_refused(const std::string &id) {
  std::string base = "CL_INVALID_BINARY [-42]";
  if (cpu::supports(id) && !cpu::has(id))
    return base + " (the device lacks this ISA: " + cpu::why_not(id) + ")";
  if (cpu::has(id))
    return base + " (this CPU has " + id +
           ", but the CPU runtime was started for a lower ISA: CL_CONFIG_CPU_TARGET_ARCH, or the OpenCL CPU"
           " runtime started before this library was loaded)";
  return base + " (the device lacks this ISA)";
}

// One loader at a time in the process: the runtime's state is global.
std::mutex loader_mutex;


bool is_opencl_cpu(const sycl::device &d) {
  return d.get_backend() == sycl::backend::opencl && d.is_cpu();
}

} // namespace

std::string describe_cl_error(int err) { return describe(err); }

sycl::device opencl_cpu_device() {
  for (const auto &d : sycl::device::get_devices())
    if (is_opencl_cpu(d)) return d;
  throw Error("no OpenCL CPU device found (is intel-opencl-rt installed, and "
              "OCL_ICD_FILENAMES unset or pointing at libintelocl.so?)");
}

Loaded load_image(const sycl::queue &q, const std::string &image) {
  Loaded m;
  sycl::device dev = q.get_device();
  cl_context ctx = sycl::get_native<sycl::backend::opencl>(q.get_context());
  cl_device_id cdev = sycl::get_native<sycl::backend::opencl>(dev);
  std::string device_name = dev.get_info<sycl::info::device::name>();

  const char *forced = image.empty() ? std::getenv("SYCLFORGE_IMAGE") : image.c_str();
  if (forced && !*forced) forced = nullptr;
  // How errors name the choice: the environment variable, or the argument.
  const std::string asked = forced ? (image.empty() ? "SYCLFORGE_IMAGE=" : "image ") + std::string(forced) : "";
  if (forced) {
    bool known = false;
    std::string ids;
    for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
      known |= std::string(forced) == syclforge_embedded_images[i].id;
      ids += (i ? ", " : "") + std::string(syclforge_embedded_images[i].id);
    }
    if (!known) throw Error(asked + ": no such image in this binary (it holds: " + ids + ")");
  }
  if (!cpu::isas().error.empty()) throw Error(cpu::isas().error);

  std::lock_guard<std::mutex> lock(loader_mutex);
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
    const syclforge_embedded_image &img = syclforge_embedded_images[i];
    if (forced && std::string(forced) != img.id) continue;
    cl_int err = CL_SUCCESS;
    cl_program p;
    resync_builtins(ctx, cdev, img.id);
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
      std::string why = err == CL_INVALID_BINARY ? why_refused(img.id) : describe(err);
      m.attempts.push_back({img.id, false, why});
      continue;
    }
    m.attempts.push_back({img.id, true, ""});
    m.program = p;
    m.image = img.id;
    m.vector_floats = vector_floats(m.image, cdev);
    break;
  }
  if (!m.program) {
    std::string why;
    for (const auto &a : m.attempts) why += "\n  " + a.image + ": " + a.why;
    throw Error(std::string(forced ? asked + " cannot run" : "no embedded image runs") + " on device \"" +
                device_name + "\":" + why);
  }
  if (verbose()) std::fprintf(stderr, "syclforge: device=\"%s\" image=%s\n", device_name.c_str(), m.image.c_str());
  return m;
}

Program::Program(const std::string &image)
    : q_(opencl_cpu_device(), sycl::property::queue::in_order()), loaded_(load_image(q_, image)) {}

Program::~Program() {
  try {
    q_.wait();
  } catch (...) {
  }
  if (loaded_.program) clReleaseProgram(static_cast<cl_program>(loaded_.program));
}

// Free-function kernels appear in the images as __sycl_kernel_<name>.
sycl::kernel Program::kernel(const std::string &name) const {
  cl_int err = CL_SUCCESS;
  cl_kernel k = clCreateKernel(static_cast<cl_program>(loaded_.program), ("__sycl_kernel_" + name).c_str(), &err);
  if (err != CL_SUCCESS)
    throw Error("image " + loaded_.image + " has no kernel " + name + ": " + describe(err) +
                " (is it an extern \"C\" free-function kernel of the device sources?)");
  sycl::kernel out = sycl::make_kernel<sycl::backend::opencl>(k, q_.get_context());
  clReleaseKernel(k); // make_kernel retained it
  return out;
}

} // namespace syclforge
#pragma GCC visibility pop
