// The module loader of single-source builds.
//
// Where a family compiles one ISA per binary (AdaptiveCpp's omp flow: kernels
// are host code built for the -march it is given), the build compiles the
// device sources once per native image into a module (a shared object) and
// embeds every module in the binary (embedded.hpp). load_module() picks the
// best one this process may run, by the CPU's features (cpu_isa.hpp), and
// loads it from memory (memfd + dlopen), so the binary stays one file.
// Where the driver embeds every image in the binary itself (icpx, intel/llvm
// clang), there are no modules: the binary is its own module and the SYCL
// runtime picks the image.
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "cpu_isa.hpp"
#include "embedded.hpp"
#include "syclforge/fatbin.hpp"

#pragma GCC visibility push(hidden)
namespace syclforge {
namespace {

std::mutex modules_mutex;
std::map<std::string, void *> loaded_modules; // image id -> handle; never unloaded (SYCL code may be queued)

bool has_modules() {
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i)
    if (syclforge_embedded_images[i].data) return true;
  return false;
}

// This binary's own handle (no modules: the device code is linked in).
void *self_handle() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&self_handle), &info) && info.dli_fname)
    if (void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)) return h;
  return dlopen(nullptr, RTLD_LAZY); // the program itself
}

// dlopen of an embedded module, from an anonymous in-memory file.
void *open_module(const syclforge_embedded_image &img, std::string &why) {
  int fd = memfd_create(("syclforge-" + std::string(img.id)).c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    why = "memfd_create failed";
    return nullptr;
  }
  size_t done = 0;
  while (done < img.size) {
    ssize_t n = write(fd, img.data + done, img.size - done);
    if (n <= 0) {
      close(fd);
      why = "cannot write the module to memory";
      return nullptr;
    }
    done += size_t(n);
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) why = std::string("dlopen: ") + dlerror();
  close(fd); // the mapping keeps the code
  return h;
}

} // namespace

void *Module::symbol(const char *name) const {
  dlerror();
  void *p = dlsym(handle, name);
  if (!p)
    throw Error("image " + image + " has no symbol " + name +
                " (is it extern \"C\" with default visibility in the device sources?)");
  return p;
}

Module load_module(const std::string &image) {
  Module m;
  const char *forced = image.empty() ? std::getenv("SYCLFORGE_IMAGE") : image.c_str();
  if (forced && !*forced) forced = nullptr;
  const std::string asked = forced ? (image.empty() ? "SYCLFORGE_IMAGE=" : "image ") + std::string(forced) : "";
  if (!has_modules()) {
    if (forced && std::string(forced) != "runtime-selected")
      throw Error(asked + ": single-source builds (" + build_toolchain() +
                  ") leave the choice of device image to the SYCL runtime");
    m.handle = self_handle();
    m.image = "runtime-selected";
    m.attempts.push_back({m.image, true, ""});
    return m;
  }
  std::string ids;
  bool known = false;
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
    ids += (i ? ", " : "") + std::string(syclforge_embedded_images[i].id);
    known |= forced && std::string(forced) == syclforge_embedded_images[i].id;
  }
  if (forced && !known) throw Error(asked + ": no such image in this binary (it holds: " + ids + ")");
  if (!cpu::isas().error.empty()) throw Error(cpu::isas().error);

  std::lock_guard<std::mutex> lock(modules_mutex);
  for (size_t i = 0; i < syclforge_embedded_image_count; ++i) {
    const syclforge_embedded_image &img = syclforge_embedded_images[i];
    if (forced && std::string(forced) != img.id) continue;
    if (std::string why = cpu::why_not(img.id); !why.empty()) {
      m.attempts.push_back({img.id, false, why});
      continue;
    }
    void *&h = loaded_modules[img.id];
    std::string why;
    if (!h) h = open_module(img, why);
    if (!h) {
      loaded_modules.erase(img.id);
      m.attempts.push_back({img.id, false, why});
      continue;
    }
    m.attempts.push_back({img.id, true, ""});
    m.handle = h;
    m.image = img.id;
    break;
  }
  if (!m.handle) {
    std::string why;
    for (const auto &a : m.attempts) why += "\n  " + a.image + ": " + a.why;
    throw Error(std::string(forced ? asked + " cannot run" : "no embedded image runs") + " on this CPU:" + why);
  }
  if (verbose()) {
    std::string skipped;
    for (const auto &a : m.attempts)
      if (!a.ok) skipped += "; " + a.image + " skipped: " + a.why;
    std::fprintf(stderr, "syclforge: module image=%s%s\n", m.image.c_str(), skipped.c_str());
  }
  return m;
}

} // namespace syclforge
#pragma GCC visibility pop
