// The table the build generates for each binary with device sources (see
// syclforge/core/embed.py): one entry per device image in the loader's
// order of preference. Hidden: each binary has its own.
#pragma once
#include <cstddef>

#pragma GCC visibility push(hidden)
extern "C" {
struct syclforge_embedded_image {
  const char *id;
  const char *kind; // "native" or "portable"
  const unsigned char *data; // null where the SYCL runtime holds the images
  size_t size;
};
extern const syclforge_embedded_image syclforge_embedded_images[];
extern const size_t syclforge_embedded_image_count;
extern const char syclforge_build_target[];
extern const char syclforge_build_toolchain[];
extern const char syclforge_build_device[]; // the target's device kind: "cpu" or "gpu"
}
#pragma GCC visibility pop
