// kl-info: what this fat binary holds, which image runs here, and whether
// every kernel of the library agrees with a host computation.
// Exit status: 0 all kernels pass, 1 a mismatch, 2 the runtime could not start.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/elementwise.hpp"
#include "ops/rope.hpp"
#include "ops/saxpy.hpp"
#include "syclforge/kl.hpp"

namespace {

template <typename T> struct Usm {
  sycl::queue &q;
  T *p;
  size_t n;
  Usm(sycl::queue &q, size_t n) : q(q), p(sycl::malloc_shared<T>(n ? n : 1, q)), n(n) {}
  Usm(sycl::queue &q, const std::vector<T> &v) : Usm(q, v.size()) { std::copy(v.begin(), v.end(), p); }
  Usm(const Usm &) = delete;
  ~Usm() { sycl::free(p, q); }
  T &operator[](size_t i) { return p[i]; }
};

std::vector<float> random_vector(size_t n, unsigned seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

// Error of one element: relative where |want| > 1, else absolute; NaN and
// Inf must match exactly.
double error(double got, double want) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got) ? 0 : INFINITY;
  if (std::isinf(want) || std::isinf(got)) return got == want ? 0 : INFINITY;
  return std::fabs(got - want) / std::max(1.0, std::fabs(want));
}
template <typename T> double worst(const T *got, const std::vector<double> &want) {
  double w = 0;
  for (size_t i = 0; i < want.size(); ++i) w = std::max(w, error(double(got[i]), want[i]));
  return w;
}

double check_saxpy(kl::Runtime &rt) {
  const size_t n = 1000; // not a multiple of the work-group size
  auto hx = random_vector(n, 1), hy = random_vector(n, 2);
  Usm<float> x(rt.queue(), hx), y(rt.queue(), hy);
  kl::saxpy(rt, 2.5f, x.p, y.p, n);
  rt.wait();
  std::vector<double> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = kl::ops::saxpy(2.5f, hx[i], hy[i]);
  return worst(y.p, want);
}

// y = x . w^T in double
std::vector<double> matmul_nt(const std::vector<float> &x, const std::vector<float> &w, size_t M, size_t N,
                              size_t K) {
  std::vector<double> y(M * N);
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) {
      double s = 0;
      for (size_t k = 0; k < K; ++k) s += double(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

double check_gemm(kl::Runtime &rt) {
  double w = 0;
  // every path of kl::gemm: large M (ragged edges, exact tiles), mid M, one row
  // (decode), a few rows, K = 0
  const size_t shapes[][3] = {{137, 53, 300}, {192, 64, 128}, {37, 53, 300}, {1, 70, 90}, {7, 45, 100}, {5, 3, 0}};
  for (auto &s : shapes) {
    size_t M = s[0], N = s[1], K = s[2];
    auto hx = random_vector(M * K, 3), hw = random_vector(N * K, 4);
    Usm<float> x(rt.queue(), hx), wt(rt.queue(), hw), y(rt.queue(), M * N);
    for (size_t i = 0; i < M * N; ++i) y[i] = NAN;
    kl::gemm(rt, x.p, wt.p, y.p, M, N, K);
    rt.wait();
    w = std::max(w, worst(y.p, matmul_nt(hx, hw, M, N, K)));
  }
  return w;
}

double check_gemv(kl::Runtime &rt) {
  double w = 0;
  const size_t shapes[][2] = {{77, 333}, {768, 288}, {5, 3}};
  for (auto &s : shapes) {
    size_t N = s[0], K = s[1];
    auto hx = random_vector(K, 5), hw = random_vector(N * K, 6);
    Usm<float> x(rt.queue(), hx), wt(rt.queue(), hw), y(rt.queue(), N);
    kl::gemv(rt, x.p, wt.p, y.p, N, K);
    rt.wait();
    w = std::max(w, worst(y.p, matmul_nt(hx, hw, 1, N, K)));
  }
  return w;
}

// decode's fused ops (kl_c.h): GEMV + residual, RMSNorm + GEMV
double check_gemv_add(kl::Runtime &rt) {
  const size_t N = 301, K = 333;
  auto hx = random_vector(K, 21), hw = random_vector(N * K, 22), hr = random_vector(N, 23);
  Usm<float> x(rt.queue(), hx), wt(rt.queue(), hw), y(rt.queue(), hr); // in place on the residual
  kl::gemv_add(rt, x.p, wt.p, y.p, y.p, N, K);
  rt.wait();
  auto want = matmul_nt(hx, hw, 1, N, K);
  for (size_t n = 0; n < N; ++n) want[n] += hr[n];
  return worst(y.p, want);
}

// w[N,K] . rmsnorm(x; g, eps) in double
std::vector<double> rmsnorm_gemv_want(const std::vector<float> &hx, const std::vector<float> &hg,
                                      const std::vector<float> &hw, size_t N, size_t K, float eps) {
  double ss = 0;
  for (float v : hx) ss += double(v) * v;
  const double inv = 1 / std::sqrt(ss / K + eps);
  std::vector<double> want(N, 0.0);
  for (size_t n = 0; n < N; ++n)
    for (size_t k = 0; k < K; ++k) want[n] += double(hw[n * K + k]) * (hx[k] * inv * hg[k]);
  return want;
}

double check_rmsnorm_gemv(kl::Runtime &rt) {
  const size_t N = 301, K = 333;
  const float eps = 1e-5f;
  auto hx = random_vector(K, 24), hg = random_vector(K, 25), hw = random_vector(N * K, 26);
  Usm<float> x(rt.queue(), hx), g(rt.queue(), hg), wt(rt.queue(), hw), y(rt.queue(), N);
  kl::rmsnorm_gemv(rt, x.p, g.p, wt.p, y.p, N, K, eps);
  rt.wait();
  return worst(y.p, rmsnorm_gemv_want(hx, hg, hw, N, K, eps));
}

// ... and the SwiGLU after it (w: N gate rows, then N up rows)
double check_rmsnorm_gemv_swiglu(kl::Runtime &rt) {
  const size_t N = 301, K = 333;
  const float eps = 1e-5f;
  auto hx = random_vector(K, 27), hg = random_vector(K, 28), hw = random_vector(2 * N * K, 29);
  Usm<float> x(rt.queue(), hx), g(rt.queue(), hg), wt(rt.queue(), hw), y(rt.queue(), N);
  kl::rmsnorm_gemv_swiglu(rt, x.p, g.p, wt.p, y.p, N, K, eps);
  rt.wait();
  auto gu = rmsnorm_gemv_want(hx, hg, hw, 2 * N, K, eps);
  std::vector<double> want(N);
  for (size_t n = 0; n < N; ++n) want[n] = kl::ops::swiglu<double>(gu[n], gu[N + n]);
  return worst(y.p, want);
}

double check_rmsnorm(kl::Runtime &rt) {
  const size_t rows = 5, dim = 300;
  const float eps = 1e-5f;
  auto hx = random_vector(rows * dim, 7), hg = random_vector(dim, 8);
  Usm<float> x(rt.queue(), hx), g(rt.queue(), hg), y(rt.queue(), rows * dim);
  kl::rmsnorm(rt, x.p, g.p, y.p, rows, dim, eps);
  rt.wait();
  std::vector<double> want(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += double(hx[r * dim + i]) * hx[r * dim + i];
    double inv = 1 / std::sqrt(ss / dim + eps);
    for (size_t i = 0; i < dim; ++i) want[r * dim + i] = hx[r * dim + i] * inv * hg[i];
  }
  return worst(y.p, want);
}

double check_layernorm(kl::Runtime &rt) {
  const size_t rows = 5, dim = 300;
  const float eps = 1e-5f;
  auto hx = random_vector(rows * dim, 9, 2.f, 4.f), hg = random_vector(dim, 10), hb = random_vector(dim, 11);
  Usm<float> x(rt.queue(), hx), g(rt.queue(), hg), b(rt.queue(), hb), y(rt.queue(), rows * dim);
  kl::layernorm(rt, x.p, g.p, b.p, y.p, rows, dim, eps);
  rt.wait();
  std::vector<double> want(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < dim; ++i) mean += hx[r * dim + i];
    mean /= dim;
    for (size_t i = 0; i < dim; ++i) var += (hx[r * dim + i] - mean) * (hx[r * dim + i] - mean);
    double inv = 1 / std::sqrt(var / dim + eps);
    for (size_t i = 0; i < dim; ++i) want[r * dim + i] = (hx[r * dim + i] - mean) * inv * hg[i] + hb[i];
  }
  return worst(y.p, want);
}

double check_softmax(kl::Runtime &rt) {
  const size_t rows = 6, cols = 50, pos0 = 10;
  const float temperature = 0.7f;
  auto hx = random_vector(rows * cols, 12, -5.f, 5.f);
  double w = 0;
  for (int causal = 0; causal < 2; ++causal) {
    Usm<float> x(rt.queue(), hx), y(rt.queue(), rows * cols);
    kl::softmax(rt, x.p, y.p, rows, cols, causal, pos0, temperature);
    rt.wait();
    std::vector<double> want(rows * cols, 0.0);
    for (size_t r = 0; r < rows; ++r) {
      size_t vis = causal ? std::min(cols, pos0 + r + 1) : cols;
      double m = -INFINITY, s = 0;
      for (size_t c = 0; c < vis; ++c) m = std::max(m, double(hx[r * cols + c]) / temperature);
      for (size_t c = 0; c < vis; ++c) s += std::exp(double(hx[r * cols + c]) / temperature - m);
      for (size_t c = 0; c < vis; ++c) want[r * cols + c] = std::exp(double(hx[r * cols + c]) / temperature - m) / s;
    }
    w = std::max(w, worst(y.p, want));
    for (size_t i = 0; i < rows * cols; ++i) // masked entries are exactly 0
      if (want[i] == 0 && y[i] != 0.f) w = INFINITY;
  }
  return w;
}

double check_rope(kl::Runtime &rt) {
  const size_t tokens = 5, heads = 3, head_dim = 64, pos0 = 1000; // large positions: angle accuracy matters
  const float theta = 10000.f;
  auto hx = random_vector(tokens * heads * head_dim, 13);
  Usm<float> x(rt.queue(), hx);
  kl::rope(rt, x.p, tokens, heads, head_dim, pos0, theta);
  rt.wait();
  std::vector<double> want(hx.begin(), hx.end());
  const size_t half = head_dim / 2;
  for (size_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < heads; ++h)
      for (size_t i = 0; i < half; ++i) {
        double a = double(pos0 + t) * std::pow(double(theta), -2.0 * i / head_dim);
        double *v = &want[(t * heads + h) * head_dim];
        kl::ops::rope_pair(v[i], v[i + half], std::cos(a), std::sin(a));
      }
  return worst(x.p, want);
}

// RoPE of q and k, v copied: rows pos0.. of the caches against double
double check_rope_qkv(kl::Runtime &rt) {
  const size_t tokens = 2, n_heads = 4, n_kv = 2, head_dim = 64, pos0 = 1000, max_seq = 1003;
  const size_t width = (n_heads + 2 * n_kv) * head_dim, kv = n_kv * head_dim, half = head_dim / 2;
  auto hx = random_vector(tokens * width, 27);
  Usm<float> qkv(rt.queue(), hx), kc(rt.queue(), max_seq * kv), vc(rt.queue(), max_seq * kv);
  kl::rope_qkv(rt, qkv.p, kc.p, vc.p, tokens, n_heads, n_kv, head_dim, pos0, max_seq, 10000.f);
  rt.wait();
  std::vector<double> want(hx.begin(), hx.end());
  std::vector<float> got(tokens * width);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t h = 0; h < n_heads + n_kv; ++h)
      for (size_t i = 0; i < half; ++i) {
        double a = double(pos0 + t) * std::pow(10000.0, -2.0 * i / head_dim);
        double *v = &want[t * width + h * head_dim];
        kl::ops::rope_pair(v[i], v[i + half], std::cos(a), std::sin(a));
      }
    // what the op leaves: q in qkv, k and v in the caches' row pos0 + t
    std::copy(qkv.p + t * width, qkv.p + t * width + n_heads * head_dim, got.begin() + t * width);
    std::copy(kc.p + (pos0 + t) * kv, kc.p + (pos0 + t + 1) * kv, got.begin() + t * width + n_heads * head_dim);
    std::copy(vc.p + (pos0 + t) * kv, vc.p + (pos0 + t + 1) * kv, got.begin() + t * width + n_heads * head_dim + kv);
  }
  return worst(got.data(), want);
}

// One element-wise op against the same formula evaluated in double.
template <typename Op, typename Ref> double check_unary(kl::Runtime &rt, Op op, Ref ref) {
  const size_t n = 9001; // several work-groups' blocks and a ragged end
  auto hx = random_vector(n, 14, -8.f, 8.f);
  Usm<float> x(rt.queue(), hx), y(rt.queue(), n);
  op(rt, x.p, y.p, n);
  rt.wait();
  std::vector<double> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = ref(double(hx[i]));
  return worst(y.p, want);
}
template <typename Op, typename Ref> double check_binary(kl::Runtime &rt, Op op, Ref ref) {
  const size_t n = 9001;
  auto ha = random_vector(n, 15, -8.f, 8.f), hb = random_vector(n, 16, -8.f, 8.f);
  Usm<float> a(rt.queue(), ha), b(rt.queue(), hb), y(rt.queue(), n);
  op(rt, a.p, b.p, y.p, n);
  rt.wait();
  std::vector<double> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = ref(double(ha[i]), double(hb[i]));
  return worst(y.p, want);
}

double check_embedding(kl::Runtime &rt) {
  const size_t vocab = 50, dim = 70;
  auto ht = random_vector(vocab * dim, 17);
  std::vector<int32_t> ids = {3, 0, 49, 17, 3};
  Usm<float> table(rt.queue(), ht), y(rt.queue(), ids.size() * dim);
  kl::embedding(rt, table.p, ids.data(), y.p, ids.size(), dim, vocab);
  ids.assign(ids.size(), -1); // the call copied the ids: reusing the array is safe
  rt.wait();
  std::vector<int32_t> used = {3, 0, 49, 17, 3};
  std::vector<double> want(used.size() * dim);
  for (size_t i = 0; i < used.size(); ++i)
    for (size_t j = 0; j < dim; ++j) want[i * dim + j] = ht[used[i] * dim + j];
  double w = worst(y.p, want);
  // an id outside the vocabulary is refused, by index and value
  std::vector<int32_t> bad = {1, 2, 50};
  try {
    kl::embedding(rt, table.p, bad.data(), y.p, bad.size(), dim, vocab);
    w = INFINITY;
  } catch (const kl::Error &e) {
    if (std::string(e.what()).find("ids[2] = 50") == std::string::npos) w = INFINITY;
  }
  return w;
}

double check_attention(kl::Runtime &rt) {
  // GQA (2 query heads per kv head); positions past one chunk of the cache
  const size_t tokens = 3, n_heads = 4, n_kv = 2, head_dim = 48, pos0 = 70, max_seq = 80;
  const float scale = 1.f / std::sqrt(float(head_dim));
  auto hq = random_vector(tokens * n_heads * head_dim, 18, -2.f, 2.f);
  auto hk = random_vector(max_seq * n_kv * head_dim, 19, -2.f, 2.f);
  auto hv = random_vector(max_seq * n_kv * head_dim, 20);
  Usm<float> q(rt.queue(), hq), k(rt.queue(), hk), v(rt.queue(), hv), out(rt.queue(), tokens * n_heads * head_dim);
  kl::attention(rt, q.p, k.p, v.p, out.p, tokens, n_heads, n_kv, head_dim, pos0, max_seq, scale);
  rt.wait();
  std::vector<double> want(tokens * n_heads * head_dim, 0.0);
  for (size_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < n_heads; ++h) {
      size_t kvh = h / (n_heads / n_kv), n_pos = pos0 + t + 1;
      std::vector<double> s(n_pos);
      double m = -INFINITY, z = 0;
      for (size_t p = 0; p < n_pos; ++p) {
        double d = 0;
        for (size_t i = 0; i < head_dim; ++i)
          d += double(hq[(t * n_heads + h) * head_dim + i]) * hk[(p * n_kv + kvh) * head_dim + i];
        s[p] = d * scale;
        m = std::max(m, s[p]);
      }
      for (auto &e : s) z += (e = std::exp(e - m));
      for (size_t p = 0; p < n_pos; ++p)
        for (size_t i = 0; i < head_dim; ++i)
          want[(t * n_heads + h) * head_dim + i] += s[p] / z * hv[(p * n_kv + kvh) * head_dim + i];
    }
  return worst(out.p, want);
}

// Rows with NaN, ties and Inf, as NumPy treats them.
double check_reductions(kl::Runtime &rt, int which) {
  const size_t rows = 5, cols = 1000;
  auto hx = random_vector(rows * cols, 21, -3.f, 3.f);
  hx[1 * cols + 700] = NAN;
  hx[1 * cols + 500] = NAN;                               // row 1: first NaN at 500
  hx[2 * cols + 10] = hx[2 * cols + 900] = 7.f;           // row 2: tie, first at 10
  hx[3 * cols + 3] = INFINITY;                            // row 3: +inf
  for (size_t c = 0; c < cols; ++c) hx[4 * cols + c] = -INFINITY; // row 4: all -inf
  Usm<float> x(rt.queue(), hx), out(rt.queue(), rows);
  Usm<int32_t> idx(rt.queue(), rows);
  if (which == 0) kl::sum(rt, x.p, out.p, rows, cols);
  if (which == 1) kl::max(rt, x.p, out.p, rows, cols);
  if (which == 2) kl::argmax(rt, x.p, idx.p, rows, cols);
  rt.wait();
  std::vector<double> want(rows);
  for (size_t r = 0; r < rows; ++r) {
    double s = 0, m = -INFINITY;
    int32_t at = 0, nan_at = -1;
    for (size_t c = 0; c < cols; ++c) {
      double v = hx[r * cols + c];
      s += v;
      if (std::isnan(v)) {
        if (nan_at < 0) nan_at = int32_t(c);
      } else if (v > m) {
        m = v;
        at = int32_t(c);
      }
    }
    want[r] = which == 0 ? s : which == 1 ? (nan_at >= 0 ? NAN : m) : (nan_at >= 0 ? nan_at : at);
  }
  return which == 2 ? worst(idx.p, want) : worst(out.p, want);
}

struct Check {
  const char *name;
  double tolerance; // relative (absolute below 1): fp32 rounding and built-in ulps, no more
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
    using kl::Runtime;
    namespace ops = kl::ops;
    const std::vector<Check> checks = {
        {"saxpy", 1e-6, check_saxpy},
        {"gemm", 3e-5, check_gemm}, // fp32 sums of up to 300 products: K * eps
        {"gemv", 1e-5, check_gemv},
        {"gemv_add", 1e-5, check_gemv_add},
        {"rmsnorm_gemv", 2e-5, check_rmsnorm_gemv},
        {"rmsnorm_gemv_swiglu", 5e-5, check_rmsnorm_gemv_swiglu}, // the gate's error times |up| (to ~30)
        {"rmsnorm", 1e-5, check_rmsnorm},
        {"layernorm", 1e-5, check_layernorm},
        {"softmax", 1e-5, check_softmax},
        {"rope", 1e-5, check_rope},
        {"rope_qkv", 1e-5, check_rope_qkv},
        {"silu", 1e-5, [](Runtime &rt) { return check_unary(rt, kl::silu, ops::silu<double>); }},
        {"gelu_tanh", 1e-5, [](Runtime &rt) { return check_unary(rt, kl::gelu_tanh, ops::gelu_tanh<double>); }},
        {"gelu_erf", 1e-5, [](Runtime &rt) { return check_unary(rt, kl::gelu_erf, ops::gelu_erf<double>); }},
        {"swiglu", 1e-5, [](Runtime &rt) { return check_binary(rt, kl::swiglu, ops::swiglu<double>); }},
        {"add", 1e-6, [](Runtime &rt) { return check_binary(rt, kl::add, ops::add<double>); }},
        {"mul", 1e-6, [](Runtime &rt) { return check_binary(rt, kl::mul, ops::mul<double>); }},
        {"embedding", 0, check_embedding},
        {"attention", 1e-5, check_attention},
        {"sum", 1e-6, [](Runtime &rt) { return check_reductions(rt, 0); }},
        {"max", 0, [](Runtime &rt) { return check_reductions(rt, 1); }},
        {"argmax", 0, [](Runtime &rt) { return check_reductions(rt, 2); }},
    };
    int failed = 0;
    std::printf("kernels:\n");
    for (const auto &c : checks) {
      double err = c.run(rt);
      bool ok = err <= c.tolerance;
      failed += !ok;
      std::printf("  %-19s %s  max rel err %.3g (tolerance %.3g)\n", c.name, ok ? "PASS" : "FAIL", err, c.tolerance);
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
