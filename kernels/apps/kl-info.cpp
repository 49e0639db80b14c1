// kl-info: what this fat binary holds, which image runs here, and whether
// every kernel of the library agrees with a host computation.
// Exit status: 0 all kernels pass, 1 a mismatch, 2 the runtime could not start.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/saxpy.hpp"
#include "syclforge/kl.hpp"

namespace {

template <typename T> struct Usm {
  sycl::queue &q;
  T *p;
  size_t n;
  Usm(sycl::queue &q, size_t n) : q(q), p(sycl::malloc_shared<T>(n ? n : 1, q)), n(n) {}
  ~Usm() { sycl::free(p, q); }
  T &operator[](size_t i) { return p[i]; }
};

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

// Returns the largest relative error against the host result.
double check_saxpy(kl::Runtime &rt) {
  const size_t n = 1000; // not a multiple of the work-group size
  auto hx = random_vector(n, 1), hy = random_vector(n, 2);
  Usm<float> x(rt.queue(), n), y(rt.queue(), n);
  for (size_t i = 0; i < n; ++i) { x[i] = hx[i]; y[i] = hy[i]; }
  kl::saxpy(rt, 2.5f, x.p, y.p, n);
  rt.queue().wait_and_throw();
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double want = kl::ops::saxpy(2.5f, hx[i], hy[i]);
    double err = std::fabs(y[i] - want) / std::max(1.0, std::fabs(want));
    worst = std::max(worst, std::isnan(err) ? INFINITY : err);
  }
  return worst;
}

struct Check {
  const char *name;
  double tolerance; // relative; one FMA or not is all that may differ
  std::function<double(kl::Runtime &)> run;
};

} // namespace

int main(int argc, char **argv) {
  if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::printf("usage: kl-info\n  Lists SYCL devices, the device images in this binary and the one\n"
                "  chosen, then runs every kernel against a host computation.\n"
                "environment:\n  SYCLFORGE_IMAGE=<id>   force one image (see the list printed)\n"
                "  SYCLFORGE_VERBOSE=1    report the choice on stderr\n");
    return 0;
  }
  std::printf("target:    %s\ntoolchain: %s\n", kl::Runtime::target().c_str(),
              kl::Runtime::toolchain().c_str());
  std::printf("devices:\n");
  for (const auto &p : sycl::platform::get_platforms())
    for (const auto &d : p.get_devices())
      std::printf("  [%s] %s\n", p.get_info<sycl::info::platform::name>().c_str(),
                  d.get_info<sycl::info::device::name>().c_str());
  std::printf("images in this binary (loader order):\n");
  for (const auto &img : kl::Runtime::images())
    std::printf("  %-8s %-8s %zu bytes\n", img.id.c_str(), img.kind.c_str(), img.size);
  try {
    kl::Runtime rt;
    std::printf("loader:\n");
    for (const auto &a : rt.attempts())
      std::printf("  %-8s %s%s\n", a.image.c_str(), a.ok ? "accepted" : "refused: ", a.why.c_str());
    std::printf("chosen:    device=\"%s\" image=%s\n", rt.device_name().c_str(), rt.image().c_str());
    const std::vector<Check> checks = {
        {"saxpy", 1e-6, check_saxpy},
    };
    int failed = 0;
    std::printf("kernels:\n");
    for (const auto &c : checks) {
      double err = c.run(rt);
      bool ok = err <= c.tolerance;
      failed += !ok;
      std::printf("  %-10s %s  max rel err %.3g (tolerance %.3g)\n", c.name, ok ? "PASS" : "FAIL", err, c.tolerance);
    }
    std::printf("%zu passed, %d failed\n", checks.size() - failed, failed);
    return failed ? 1 : 0;
  } catch (const kl::Error &e) {
    std::fprintf(stderr, "kl-info: error: %s\n", e.what());
    return 2;
  } catch (const sycl::exception &e) {
    std::fprintf(stderr, "kl-info: SYCL error: %s\n", e.what());
    return 2;
  }
}
