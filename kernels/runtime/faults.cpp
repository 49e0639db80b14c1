// KL_FAULTS: the test-only faults of ops/faults.hpp, by name. Read once per
// Runtime; an unknown name is an error, so that a mistyped mutant never
// passes a test by switching nothing on.
#include <cstdlib>
#include <string>

#include "ops/faults.hpp"
#include "runtime/runtime_impl.hpp"
#include "syclforge/kl_c.h"

namespace kl {
namespace {
struct FaultInfo {
  const char *name, *what;
  ops::Faults bit;
};
constexpr FaultInfo FAULTS[] = {
#define KL_FAULT_ROW(id, name, what) {name, what, ops::fault::id},
    KL_FAULT_LIST(KL_FAULT_ROW)
#undef KL_FAULT_ROW
};
} // namespace

ops::Faults faults_from_env() {
  const char *env = std::getenv("KL_FAULTS");
  ops::Faults mask = 0;
  std::string names = env ? env : "", known;
  for (const auto &f : FAULTS) known += std::string(known.empty() ? "" : ", ") + f.name;
  for (size_t at = 0; at <= names.size();) {
    size_t end = names.find(',', at);
    if (end == std::string::npos) end = names.size();
    std::string name = names.substr(at, end - at);
    at = end + 1;
    if (name.empty()) continue;
    bool found = false;
    for (const auto &f : FAULTS)
      if (name == f.name) mask |= f.bit, found = true;
    if (!found) throw Error("KL_FAULTS: unknown fault '" + name + "' (known: " + known + ")");
  }
  return mask;
}

} // namespace kl

// name TAB what, one line per fault (kl_c.h).
extern "C" const char *kl_faults(void) {
  static const std::string table = [] {
    std::string t;
    for (const auto &f : kl::FAULTS) t += std::string(f.name) + "\t" + f.what + "\n";
    return t;
  }();
  return table.c_str();
}
