// sf-aot: SPIR-V -> native x86 device code for one ISA, at build time, through
// the Intel OpenCL CPU runtime (what DPC++'s `opencl-aot -march=` does): the
// runtime reads CL_CONFIG_CPU_TARGET_ARCH when it builds a program, and
// CL_PROGRAM_BINARIES is then an ELF for that ISA.
//
// usage: sf-aot --arch CPU_TARGET_ARCH -o OUT.bin IN.spv
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char **argv) {
  const std::string tool = "sf-aot";
  std::string arch, out, in;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--arch" || a == "-o") && i + 1 >= argc) sf::die(tool, a + " needs a value");
    if (a == "--arch") arch = argv[++i];
    else if (a == "-o") out = argv[++i];
    else if (!a.empty() && a[0] == '-') sf::die(tool, "unknown option " + a);
    else in = a;
  }
  if (arch.empty() || out.empty() || in.empty()) sf::die(tool, "usage: sf-aot --arch ARCH -o OUT IN.spv");
  // Must be set before the runtime builds the program.
  setenv("CL_CONFIG_CPU_TARGET_ARCH", arch.c_str(), 1);
  std::string il = sf::read_file(tool, in);

  cl_uint np = 0;
  if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0)
    sf::die(tool, "no OpenCL platform (set OCL_ICD_FILENAMES to the wheel's libintelocl.so)");
  std::vector<cl_platform_id> platforms(np);
  clGetPlatformIDs(np, platforms.data(), nullptr);
  cl_device_id dev = nullptr;
  for (auto p : platforms)
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_CPU, 1, &dev, nullptr) == CL_SUCCESS) break;
  if (!dev) sf::die(tool, "no OpenCL CPU device");
  cl_int err = CL_SUCCESS;
  cl_context ctx = clCreateContext(nullptr, 1, &dev, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) sf::die(tool, "clCreateContext failed: " + std::to_string(err));
  cl_program prog = clCreateProgramWithIL(ctx, il.data(), il.size(), &err);
  if (err != CL_SUCCESS) sf::die(tool, in + ": not accepted as SPIR-V (" + std::to_string(err) + ")");
  err = clBuildProgram(prog, 1, &dev, "", nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    sf::die(tool, in + ": build for " + arch + " failed (" + std::to_string(err) + "):\n" + log);
  }
  size_t size = 0;
  clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr);
  std::vector<unsigned char> bin(size);
  unsigned char *ptr = bin.data();
  clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr);
  if (size == 0) sf::die(tool, "the runtime returned an empty binary for " + arch);
  sf::write_file_atomic(tool, out, bin.data(), bin.size());
  clReleaseProgram(prog);
  clReleaseContext(ctx);
  return 0;
}
