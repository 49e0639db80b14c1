// What ./install.sh --acpp-cuda compiles with the CUDA flavour it has just
// built (acpp -O3 --acpp-targets=cuda:sm_90,sm_80) before moving it into
// place: USM, an nd_range kernel, sycl::exp and reduce_over_group, the
// program of ../shared/ENVIRONMENT.md's H200 run. It is only compiled here
// (no GPU); its cubins and PTX are then read from the binary with cuobjdump.
// On a GPU machine it runs on the first GPU (never on the OpenMP host
// device, which a default selector could pick) and prints PASS or FAIL.
#include <sycl/sycl.hpp>
#include <cmath>
#include <cstdio>

int main() {
  sycl::queue q{sycl::gpu_selector_v};
  constexpr int n = 1 << 20, wg = 256;
  float *in = sycl::malloc_device<float>(n, q);
  float *out = sycl::malloc_device<float>(n / wg, q);
  q.parallel_for(sycl::range<1>(n), [=](sycl::id<1> i) { in[i] = float(i[0] % 7) * 0.25f; }).wait();
  q.parallel_for(sycl::nd_range<1>(n, wg), [=](sycl::nd_item<1> it) {
    float s = sycl::reduce_over_group(it.get_group(), sycl::exp(in[it.get_global_id(0)]),
                                      sycl::plus<float>());
    if (it.get_local_id(0) == 0) out[it.get_group(0)] = s;
  }).wait();
  float host[n / wg];
  q.memcpy(host, out, sizeof(host)).wait();
  int bad = 0;
  for (int g = 0; g < n / wg; ++g) {
    double want = 0;
    for (int i = g * wg; i < (g + 1) * wg; ++i) want += std::exp((i % 7) * 0.25);
    if (std::fabs(host[g] - want) > 1e-4 * want) ++bad;
  }
  std::printf("device: %s\n%d of %d groups wrong\n%s\n",
              q.get_device().get_info<sycl::info::device::name>().c_str(), bad, n / wg,
              bad ? "FAIL" : "PASS");
  sycl::free(in, q);
  sycl::free(out, q);
  return bad != 0;
}
