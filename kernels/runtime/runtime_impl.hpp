// Internal state shared by the runtime and the launch wrappers.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sycl/sycl.hpp>

#include "ops/common.hpp"
#include "runtime/launch.hpp"
#include "syclforge/kl.hpp"

namespace kl {

// The test-only faults that KL_FAULTS names (ops/faults.hpp); kl::Error on
// an unknown name. faults.cpp.
ops::Faults faults_from_env();

struct Runtime::Impl {
  // Test-only faults (ops/faults.hpp): 0 unless KL_FAULTS names some. Every
  // kernel gets them as its last argument.
  const ops::Faults faults = faults_from_env();
  sycl::queue q;
  std::string image;
  std::vector<Attempt> attempts;
  const launch::Table *ops = nullptr; // the launch layer: this binary's, or the chosen module's
  // Ops launched so far (kl_launches): what a token costs in launches.
  std::atomic<unsigned long long> launches{0};
  const launch::Table &launch() {
    launches.fetch_add(1, std::memory_order_relaxed);
    return *ops;
  }
  void *program = nullptr; // cl_program, runtime-compiler toolchains only
  std::map<std::string, void *> kernels; // name -> cl_kernel
  std::mutex mutex;                      // kernels, rope_tables, kernel arguments while enqueueing
  void *native_queue = nullptr;          // cl_command_queue under q, runtime-compiler toolchains
  std::function<void()> finish_native;   // clFinish of it
  // Work-items per row (row-wise ops) and per block (element-wise ops), at
  // most ops::ROW_LANES: on a CPU, the float vector width of the image that
  // runs, so that a work-group is one vector rather than two done one after
  // the other (on AVX2, 8 instead of 16 made RMSNorm ~20% and softmax ~10%
  // faster).
  size_t row_lanes = ops::ROW_LANES;
  size_t compute_units = 1; // of the device: how many work-groups keep it busy

  // Asynchronous errors (a failed kernel), reported by Runtime::wait().
  std::mutex error_mutex;
  std::vector<std::string> async_errors;
  sycl::async_handler async_handler() {
    return [this](sycl::exception_list list) {
      std::lock_guard<std::mutex> lock(error_mutex);
      for (auto &e : list) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception &x) {
          async_errors.push_back(x.what());
        } catch (...) {
          async_errors.push_back("unknown asynchronous error");
        }
      }
    };
  }

  // RoPE inverse frequencies per (theta, head_dim), on the device: hi[half]
  // then lo[half], computed in double on the host (ops/rope.hpp says why).
  std::map<std::pair<uint32_t, size_t>, float *> rope_tables;
  const float *rope_table(float theta, size_t head_dim);

  // Host-USM copies of embedding ids (the caller's array may be gone by the
  // time the kernel runs), freed at the next sync(), when no kernel reads them.
  std::mutex staged_mutex;
  std::vector<void *> staged;
  void *stage(const void *data, size_t bytes);

  // Waits for everything enqueued (SYCL's and native), then frees staged copies.
  void sync();

  ~Impl();

  // Runtime-compiler toolchains: enqueue free-function kernel `name` straight
  // on the OpenCL queue under the SYCL queue (an in-order queue, so it stays
  // ordered with SYCL's copies); that costs ~5 us a launch against ~14 us
  // through handler::set_arg + parallel_for. Sizes in SYCL order (slowest
  // dimension first). Checks that the kernel takes nargs arguments; the
  // fault mask goes last (device/free_kernels.cpp). Every argument is a
  // plain value, USM pointers too: the kernels take them as addresses
  // (free_kernels.cpp: usm<T>), which halves the CPU runtime's cost a launch.
  struct Arg {
    const void *value;
    size_t size;
  };
  void enqueue(const char *name, int dims, const size_t *global, const size_t *local, const Arg *args,
               size_t nargs);

  template <int D, typename... Args>
  void launch(const char *name, sycl::range<D> global, sycl::range<D> local, const Args &...args) {
    const Arg a[] = {Arg{&args, sizeof(Args)}..., Arg{&faults, sizeof faults}};
    size_t g[D], l[D];
    for (int d = 0; d < D; ++d) {
      g[d] = global[d];
      l[d] = local[d];
    }
    enqueue(name, D, g, l, a, sizeof...(Args) + 1);
  }

  static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }
};

} // namespace kl
