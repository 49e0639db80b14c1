// syclforge kernel library: the host API.
//
// One Runtime per process and device. With runtime-compiler toolchains the
// library embeds one device image per ISA/arch plus a portable SPIR-V image
// and picks the best one the device accepts; single-source toolchains leave
// that choice to their SYCL runtime.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sycl/sycl.hpp>

namespace kl {

// An error the user can act on (bad SYCLFORGE_IMAGE, no device, ...).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ImageInfo {
  std::string id;    // 'avx2', 'spirv', 'sm_90', ...
  std::string kind;  // 'native' or 'portable'
  size_t size;       // bytes embedded (0 when the SYCL runtime owns images)
};

struct Attempt {
  std::string image;
  bool ok;
  std::string why;   // why it was refused, empty when ok
};

class Runtime {
public:
  // Picks the device and the image (honours SYCLFORGE_IMAGE and
  // SYCLFORGE_VERBOSE). Throws kl::Error with a readable message.
  Runtime();
  ~Runtime();
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;

  sycl::queue &queue();
  std::string device_name() const;
  std::string image() const;                    // the chosen image id
  const std::vector<Attempt> &attempts() const; // the loader's tries, in order
  static std::vector<ImageInfo> images();       // what this binary holds
  static std::string target();                  // targets.yaml name
  static std::string toolchain();               // the family that built it

  struct Impl;
  Impl &impl() { return *impl_; }

private:
  std::unique_ptr<Impl> impl_;
};

// ---- ops (device pointers are USM allocations on rt.queue()) -------------
void saxpy(Runtime &rt, float a, const float *x, float *y, size_t n);

} // namespace kl
