// The x86 ISAs of native CPU images (the ids of targets.yaml), what this CPU
// has of them, and SYCLFORGE_CPU_ISAS, which lowers that set for a process.
// Shared by the loaders of every family (loader_opencl.cpp, loader_module.cpp):
// one definition of which ISA a CPU may run. Hidden: private to each binary.
#pragma once
#include <set>
#include <string>

#pragma GCC visibility push(hidden)
namespace syclforge::cpu {

// The known ISA ids, best first.
extern const char *const ISA_IDS[3];

// Whether the CPU itself has the ISA of a native image id: the x86-64 level
// the id stands for (avx512 = x86-64-v4, avx2 = v3, sse4.2 = v2), which is what
// the images are compiled for. False for an id that is no CPU ISA.
bool supports(const std::string &id);

// SYCLFORGE_CPU_ISAS=avx2,sse4.2: this process treats the CPU as having only
// those of its ISAs (it can lower the set, never raise it). Read once.
struct Isas {
  std::string value;  // the variable, empty when unset
  std::string error;  // why it cannot be used (loaders report it)
  std::set<std::string> listed;
};
const Isas &isas();

// Whether this process may use the ISA of a native image id.
bool has(const std::string &id);

// Why this process may not use it ("" when it may): the CPU lacks it, or
// SYCLFORGE_CPU_ISAS leaves it out.
std::string why_not(const std::string &id);

} // namespace syclforge::cpu
#pragma GCC visibility pop
