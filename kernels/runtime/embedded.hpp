// The table that the build generates (images.cpp) for runtime-compiler
// toolchains: one entry per device image, in the loader's order of
// preference (native best first, then portable).
#pragma once
#include <cstddef>

extern "C" {
struct kl_embedded_image {
  const char *id;
  const char *kind; // "native" or "portable"
  const unsigned char *data;
  size_t size;
};
extern const kl_embedded_image kl_embedded_images[];
extern const size_t kl_embedded_image_count;
extern const char kl_build_target[];
extern const char kl_build_toolchain[];
}
