// What the build put in this binary (every toolchain family).
#include <cstdlib>

#include "embedded.hpp"
#include "syclforge/fatbin.hpp"

namespace syclforge {

std::string build_target() { return syclforge_build_target; }
std::string build_toolchain() { return syclforge_build_toolchain; }
std::string build_device() { return syclforge_build_device; }

std::vector<Image> images() {
  std::vector<Image> out;
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
    const auto &img = syclforge_embedded_images[i];
    out.push_back({img.id, img.kind, img.data ? img.size : 0});
  }
  return out;
}

bool verbose() {
  const char *v = std::getenv("SYCLFORGE_VERBOSE");
  return v && *v && std::string(v) != "0";
}

} // namespace syclforge
