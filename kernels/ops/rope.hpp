// Rotary position embedding, Hugging Face Llama "rotate half" convention:
// element i < head_dim/2 pairs with i + head_dim/2.
#pragma once
#include <sycl/sycl.hpp>

#include "faults.hpp"

namespace kl::ops {

// cos and sin of pos * inv_freq, inv_freq = f_hi + f_lo (the host computes
// theta^(-2i/head_dim) in double and splits it into two floats). The angle
// is formed and reduced modulo 2 pi in double-float, so positions in the
// thousands keep ~1e-7 accuracy instead of the ~1e-4 that rounding the raw
// angle to float would cost.
inline void rope_cos_sin(float pos, float f_hi, float f_lo, float &c, float &s) {
  float p = pos * f_hi;
  float p_err = sycl::fma(pos, f_hi, -p) + pos * f_lo;  // exact product error + low part
  const float two_pi_hi = 6.28318548202514648f;        // float(2 pi)
  const float two_pi_lo = -1.7484555314695172e-07f;    // 2 pi - two_pi_hi
  float k = sycl::rint(p * 0.15915494309189535f);
  float r = sycl::fma(-k, two_pi_hi, p); // p - k*2pi_hi, rounded once, |r| <= ~pi
  r = sycl::fma(-k, two_pi_lo, r) + p_err;
  c = sycl::cos(r);
  s = sycl::sin(r);
}

// (x0, x1) = (x[i], x[i + half]) -> x * cos + rotate_half(x) * sin
template <typename T> inline void rope_pair(T &x0, T &x1, T c, T s) {
  T a = x0, b = x1;
  x0 = a * c - b * s;
  x1 = b * c + a * s;
}

// The pair of frequency i: (i, i + half). (f: test-only faults, faults.hpp:
// ROPE_PAIRS rotates 2i with 2i + 1.)
inline void rope_pair_index(size_t i, size_t half, Faults f, size_t &a, size_t &b) {
  a = has(f, fault::ROPE_PAIRS) ? 2 * i : i;
  b = has(f, fault::ROPE_PAIRS) ? 2 * i + 1 : i + half;
}

// Frequency i of every head of one token: x_t = x[t, :, :], at position pos.
inline void rope_token(float *x_t, size_t heads, size_t head_dim, size_t i, float pos, float f_hi, float f_lo,
                       Faults f) {
  float c, s;
  rope_cos_sin(pos, f_hi, f_lo, c, s);
  size_t a, b;
  rope_pair_index(i, head_dim / 2, f, a, b);
  for (size_t h = 0; h < heads; ++h) rope_pair(x_t[h * head_dim + a], x_t[h * head_dim + b], c, s);
}

// Frequency i of one token's stacked projection qkv_t = [q heads | k heads |
// v heads] (decode's one GEMV): q rotated in place, k rotated into its KV
// cache row k_row, v copied into v_row; qkv_t's k and v stay as they were.
// The same rope_pair on the same values as rope_token then two copies: the
// same bits, in one launch instead of three.
inline void rope_qkv_token(float *qkv_t, float *k_row, float *v_row, size_t n_heads, size_t n_kv_heads,
                           size_t head_dim, size_t i, float pos, float f_hi, float f_lo, Faults f) {
  float c, s;
  rope_cos_sin(pos, f_hi, f_lo, c, s);
  const size_t half = head_dim / 2;
  size_t a, b;
  rope_pair_index(i, half, f, a, b);
  for (size_t h = 0; h < n_heads; ++h) rope_pair(qkv_t[h * head_dim + a], qkv_t[h * head_dim + b], c, s);
  const float *k = qkv_t + n_heads * head_dim, *v = k + n_kv_heads * head_dim;
  const bool raw = has(f, fault::ROPE_QKV_K_RAW);
  for (size_t h = 0; h < n_kv_heads; ++h) {
    float k0 = k[h * head_dim + a], k1 = k[h * head_dim + b];
    if (!raw) rope_pair(k0, k1, c, s);
    k_row[h * head_dim + a] = k0;
    k_row[h * head_dim + b] = k1;
    v_row[h * head_dim + i] = v[h * head_dim + i];
    v_row[h * head_dim + i + half] = v[h * head_dim + i + half];
  }
}

} // namespace kl::ops
