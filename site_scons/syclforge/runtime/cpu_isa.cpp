#include "cpu_isa.hpp"

#include <cstdlib>
#include <sstream>

namespace syclforge::cpu {

const char *const ISA_IDS[3] = {"avx512", "avx2", "sse4.2"};

namespace {
const char *level_of(const std::string &id) {
  if (id == "avx512") return "x86-64-v4";
  if (id == "avx2") return "x86-64-v3";
  if (id == "sse4.2") return "x86-64-v2";
  return nullptr;
}
} // namespace

bool supports(const std::string &id) {
  // Host code only: a CUDA flow (acpp --acpp-targets=cuda:...) compiles
  // every source for the device too, and the x86 CPU builtins do not exist
  // there ("builtin is not supported on this target").
#ifndef __CUDA_ARCH__
  __builtin_cpu_init();
  // __builtin_cpu_supports needs a literal.
  if (id == "avx512") return __builtin_cpu_supports("x86-64-v4");
  if (id == "avx2") return __builtin_cpu_supports("x86-64-v3");
  if (id == "sse4.2") return __builtin_cpu_supports("x86-64-v2");
#endif
  return false;
}

const Isas &isas() {
  static const Isas parsed = [] {
    Isas c;
    const char *v = std::getenv("SYCLFORGE_CPU_ISAS");
    if (!v || !*v) return c;
    c.value = v;
    std::string known, item;
    for (const char *i : ISA_IDS) known += std::string(known.empty() ? "" : ", ") + i;
    std::istringstream in(c.value);
    while (std::getline(in, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item.empty()) continue;
      if (!level_of(item)) {
        c.error = "SYCLFORGE_CPU_ISAS=" + c.value + ": unknown ISA '" + item + "' (known: " + known + ")";
        return c;
      }
      c.listed.insert(item);
    }
    bool any = false;
    for (const auto &id : c.listed) any |= supports(id);
    if (!any)
      c.error = "SYCLFORGE_CPU_ISAS=" + c.value + " names no ISA this CPU has (it can lower the set, not raise it;"
                " known: " + known + ")";
    return c;
  }();
  return parsed;
}

bool has(const std::string &id) {
  const Isas &c = isas();
  return supports(id) && (c.value.empty() || c.listed.count(id));
}

std::string why_not(const std::string &id) {
  if (has(id)) return "";
  if (!level_of(id)) return id + " is no CPU ISA";
  if (supports(id)) return "SYCLFORGE_CPU_ISAS=" + isas().value + " leaves " + id + " out of this process";
  return std::string("this CPU lacks ") + id + " (" + level_of(id) + ")";
}

} // namespace syclforge::cpu
