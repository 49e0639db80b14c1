// The kernel bench's C++ helper (kernels/python/bench.py builds it with g++
// against the SYCL wheel's headers and caches it under build/bench/helper/;
// it is loaded with ctypes into the bench's own process).
//
// - sfb_device(): the SYCL device our runtime runs on, found the way the
//   oneapi-pip runtime finds it (the first OpenCL CPU device; OCL_ICD_FILENAMES
//   points the ICD loader at the wheel's libintelocl.so), its name and its
//   max_compute_units, which is what the runtime sizes its work by.
// - With -DSFB_ONEMKL: oneMKL's SYCL BLAS (oneapi::mkl::blas::row_major) GEMM
//   and GEMV on an in-order queue on that same device, in device USM as ours
//   (kl_alloc), each call enqueue + wait, so that Python times it exactly as
//   it times ours (enqueue + kl_wait).
// - sfb_launch_loop(): our library's time per launch, in a C loop through its
//   C ABI (no Python between the calls, as in minillm).
//
// Every function returns 0 / a handle on success, -1 / NULL on failure with
// the message in sfb_last_error(): nothing throws across the C boundary.
#include <sycl/sycl.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#ifdef SFB_ONEMKL
#include <oneapi/mkl.hpp>
#endif

namespace {

thread_local std::string last_error;
std::string async_errors; // from the queue's async handler, reported by the next wait

bool is_opencl_cpu(const sycl::device &d) { return d.is_cpu() && d.get_backend() == sycl::backend::opencl; }

sycl::device opencl_cpu_device() {
  for (const auto &d : sycl::device::get_devices())
    if (is_opencl_cpu(d)) return d;
  std::string seen;
  for (const auto &d : sycl::device::get_devices())
    seen += (seen.empty() ? "" : ", ") + d.get_info<sycl::info::device::name>();
  throw std::runtime_error("no OpenCL CPU device (devices: " + (seen.empty() ? std::string("none") : seen) +
                           "; is OCL_ICD_FILENAMES the wheel's libintelocl.so?)");
}

template <typename F> int guard(const char *fn, F &&f) {
  last_error.clear();
  try {
    f();
    return 0;
  } catch (const std::exception &e) {
    last_error = std::string(fn) + ": " + e.what();
  } catch (...) {
    last_error = std::string(fn) + ": unknown exception";
  }
  return -1;
}

void copy_string(const std::string &s, char *out, size_t len) {
  if (!out || !len) return;
  std::strncpy(out, s.c_str(), len - 1);
  out[len - 1] = '\0';
}

#ifdef SFB_ONEMKL
std::unique_ptr<sycl::queue> queue;

void wait_checked() {
  queue->wait_and_throw();
  if (!async_errors.empty()) {
    std::string e = async_errors;
    async_errors.clear();
    throw std::runtime_error("asynchronous SYCL error: " + e);
  }
}

struct Op {
  bool gemm;
  int64_t M, N, K;
  float *x = nullptr, *w = nullptr, *y = nullptr;
  size_t nx, nw, ny;
  ~Op() {
    for (float *p : {x, w, y})
      if (p) sycl::free(p, *queue);
  }
  void run() {
    using oneapi::mkl::transpose;
    namespace rm = oneapi::mkl::blas::row_major;
    if (gemm) // y[M,N] = x[M,K] . w[N,K]^T, as kl_gemm
      rm::gemm(*queue, transpose::nontrans, transpose::trans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    else // y[N] = w[N,K] . x[K], as kl_gemv
      rm::gemv(*queue, transpose::nontrans, N, K, 1.0f, w, K, x, 1, 0.0f, y, 1);
    wait_checked();
  }
};

float *device_copy(const float *host, size_t n) {
  float *p = sycl::malloc_device<float>(n ? n : 1, *queue);
  if (!p) throw std::runtime_error("malloc_device of " + std::to_string(n) + " floats failed");
  if (n) queue->memcpy(p, host, n * sizeof(float)).wait();
  return p;
}

Op *make(bool gemm, int64_t M, int64_t N, int64_t K, const float *x, const float *w) {
  if (!queue) throw std::runtime_error("sfb_onemkl_open() first");
  auto op = std::make_unique<Op>();
  op->gemm = gemm;
  op->M = M, op->N = N, op->K = K;
  op->nx = size_t(M) * K, op->nw = size_t(N) * K, op->ny = size_t(M) * N;
  op->x = device_copy(x, op->nx);
  op->w = device_copy(w, op->nw);
  op->y = sycl::malloc_device<float>(op->ny ? op->ny : 1, *queue);
  if (!op->y) throw std::runtime_error("malloc_device of the output failed");
  return op.release();
}
#endif

} // namespace

extern "C" {

const char *sfb_last_error(void) { return last_error.c_str(); }

// The OpenCL CPU device: its name (into name[len]) and max_compute_units.
int sfb_device(char *name, size_t len, int *compute_units) {
  return guard("sfb_device", [&] {
    sycl::device d = opencl_cpu_device();
    copy_string(d.get_info<sycl::info::device::name>(), name, len);
    *compute_units = static_cast<int>(d.get_info<sycl::info::device::max_compute_units>());
  });
}

// Time per launch of our library, without Python in the loop (as minillm's
// C++ loop pays it): `repeats` calls of kl_add(rt, a, a, y, n) through the
// library's own C ABI (its function pointers, from the caller), each followed
// by kl_wait (synced != 0: the round trip of an op waited for), or back to
// back with one kl_wait at the end (an op in a stream, as in a decode step).
// Seconds per launch; -1 when a call fails (kl_last_error() says why).
double sfb_launch_loop(void *kl_add, void *kl_wait, void *rt, const void *a, void *y, size_t n, int repeats,
                       int synced) {
  using add_fn = int (*)(void *, const float *, const float *, float *, size_t);
  using wait_fn = int (*)(void *);
  auto add = reinterpret_cast<add_fn>(kl_add);
  auto wait = reinterpret_cast<wait_fn>(kl_wait);
  auto x = static_cast<const float *>(a);
  auto out = static_cast<float *>(y);
  if (wait(rt) != 0) return -1;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) {
    if (add(rt, x, x, out, n) != 0) return -1;
    if (synced && wait(rt) != 0) return -1;
  }
  if (wait(rt) != 0) return -1;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / (repeats > 0 ? repeats : 1);
}

int sfb_has_onemkl(void) {
#ifdef SFB_ONEMKL
  return 1;
#else
  return 0;
#endif
}

#ifdef SFB_ONEMKL
// An in-order queue on the OpenCL CPU device (the device's default context,
// shared with every other queue on it in this process, ours included).
int sfb_onemkl_open(char *name, size_t len) {
  return guard("sfb_onemkl_open", [&] {
    if (queue) return;
    auto handler = [](sycl::exception_list errors) {
      for (const std::exception_ptr &e : errors) try {
          std::rethrow_exception(e);
        } catch (const std::exception &x) {
          async_errors += (async_errors.empty() ? "" : "; ") + std::string(x.what());
        }
    };
    queue = std::make_unique<sycl::queue>(opencl_cpu_device(), handler, sycl::property::queue::in_order());
    copy_string(queue->get_device().get_info<sycl::info::device::name>(), name, len);
  });
}

void sfb_onemkl_close(void) {
  guard("sfb_onemkl_close", [&] {
    if (queue) queue->wait();
    queue.reset();
  });
}

// Inputs copied to device memory once; run() is then one call, enqueue + wait.
void *sfb_gemm_new(int64_t M, int64_t N, int64_t K, const float *x, const float *w) {
  Op *op = nullptr;
  guard("sfb_gemm_new", [&] { op = make(true, M, N, K, x, w); });
  return op;
}

void *sfb_gemv_new(int64_t N, int64_t K, const float *x, const float *w) {
  Op *op = nullptr;
  guard("sfb_gemv_new", [&] { op = make(false, 1, N, K, x, w); });
  return op;
}

int sfb_run(void *op) {
  return guard(static_cast<Op *>(op)->gemm ? "oneapi::mkl::blas::row_major::gemm" : "oneapi::mkl::blas::row_major::gemv",
               [&] { static_cast<Op *>(op)->run(); });
}

// The last run's output (M*N floats) into host memory.
int sfb_result(void *op, float *out) {
  return guard("sfb_result", [&] {
    Op *o = static_cast<Op *>(op);
    queue->memcpy(out, o->y, o->ny * sizeof(float)).wait();
  });
}

void sfb_free(void *op) {
  guard("sfb_free", [&] { delete static_cast<Op *>(op); });
}
#endif

} // extern "C"
