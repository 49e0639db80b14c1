// syclforge's fat-binary runtime: what the build put in this binary, and
// (runtime-compiler builds, oneapi-pip) the loader that picks its best device
// image at run time.
//
// Every binary built by env.SyclProgram / env.SyclSharedLibrary with device
// sources carries a table of its device images, in the loader's order of
// preference (native ISAs best first, then the portable SPIR-V). The table and
// this runtime are private to each binary (hidden symbols), so a program and
// the libraries it links each see their own.
//
// Environment at run time:
//   SYCLFORGE_IMAGE=<id>            force one image (an ISA/arch id, or 'spirv')
//   SYCLFORGE_VERBOSE=1             report the chosen device and image on stderr
//   SYCLFORGE_CPU_ISAS=avx2,sse4.2  use only these of the CPU's ISAs
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <sycl/sycl.hpp>

#pragma GCC visibility push(hidden)
namespace syclforge {

// An error the user can act on (bad SYCLFORGE_IMAGE, no device, ...).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Image {
  std::string id;    // 'avx2', 'spirv', 'sm_90', ...
  std::string kind;  // 'native' or 'portable'
  size_t size;       // bytes embedded (0 where the SYCL runtime holds the images)
};

struct Attempt {
  std::string image;
  bool ok;
  std::string why; // why it was refused, empty when ok
};

std::string build_target();    // the targets.yaml name this binary was built for
std::string build_toolchain(); // the toolchain family that built it
std::string build_device();    // the target's device kind (targets.yaml): "cpu" or "gpu"
std::vector<Image> images();   // what this binary holds, in order of preference
bool verbose();                // SYCLFORGE_VERBOSE is set (and not 0)

#ifndef SYCLFORGE_RUNTIME_COMPILER
// Single-source builds. Where the family compiles one native image per
// binary (AdaptiveCpp's omp flow: -march=x86-64-v4/v3/v2), the device
// sources are compiled once per image into a module that the binary embeds,
// and load_module() loads the best one this process may run: by the CPU's
// features and SYCLFORGE_CPU_ISAS, or the one forced by `image` (else
// $SYCLFORGE_IMAGE); Error names every attempt when none runs. Call the
// device code through symbols the device sources export (extern "C", default
// visibility): a module is loaded privately (RTLD_LOCAL), so it must not call
// back into the binary. Where the driver holds every image in the binary
// itself (icpx, intel/llvm clang), the binary is its own module and its
// image is "runtime-selected": the SYCL runtime picks.
struct Module {
  void *handle = nullptr;     // dlopen handle of the module (or of this binary)
  std::string image;          // the chosen image's id
  std::vector<Attempt> attempts;
  void *symbol(const char *name) const; // Error if the module lacks it
};
Module load_module(const std::string &image = "");
#endif

#ifdef SYCLFORGE_RUNTIME_COMPILER
// An OpenCL error code as text: "CL_INVALID_BINARY (...) [-42]".
std::string describe_cl_error(int err);

// The OpenCL CPU device of the oneAPI runtime (Error with advice if none).
sycl::device opencl_cpu_device();

// The first embedded image the device of q accepts, best first, or the one
// forced by `image` (else $SYCLFORGE_IMAGE). Reports the choice on stderr
// under SYCLFORGE_VERBOSE. Error names every attempt when none runs.
struct Loaded {
  void *program = nullptr;   // the built cl_program; the caller releases it (clReleaseProgram)
  std::string image;         // the chosen image's id
  size_t vector_floats = 4;  // floats per vector of the code that runs
  std::vector<Attempt> attempts;
};
Loaded load_image(const sycl::queue &q, const std::string &image = "");

// The simple way: an in-order queue on the OpenCL CPU device with the best
// image loaded, and its free-function kernels by name.
//
//   syclforge::Program p;
//   sycl::kernel k = p.kernel("saxpy");   // extern "C" free-function kernel
//   p.queue().submit([&](sycl::handler &h) { h.set_args(a, x, y); h.parallel_for(sycl::nd_range<1>{n, 64}, k); });
class Program {
public:
  explicit Program(const std::string &image = "");
  ~Program();
  Program(const Program &) = delete;
  Program &operator=(const Program &) = delete;
  sycl::queue &queue() { return q_; }
  const std::string &image() const { return loaded_.image; }
  const std::vector<Attempt> &attempts() const { return loaded_.attempts; }
  void *native_program() const { return loaded_.program; } // cl_program
  sycl::kernel kernel(const std::string &name) const;

private:
  sycl::queue q_;
  Loaded loaded_;
};
#endif

} // namespace syclforge
#pragma GCC visibility pop
