// Causal grouped-query attention over a KV cache, one query row (token,
// head) per work-group, streaming the cache in chunks with an online softmax
// (running max and denominator), so no sequence length limit applies.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder

namespace kl::ops {

constexpr int ATTN_CHUNK = 128;                          // positions per chunk
constexpr int ATTN_LOCAL = ATTN_CHUNK * (1 + ROW_LANES); // floats of local memory: weights + partial dots

// q, out: [head_dim] of one query row. k, v: position 0 of its kv head;
// position p is at k + p * stride. Attends to positions 0 .. n_pos-1.
// s: ATTN_LOCAL floats of local memory; the work-group has at most
// ROW_LANES work-items. The output row doubles as the accumulator, so
// head_dim is unbounded too.
template <int D>
inline void attention_row(const sycl::nd_item<D> &it, const float *q, const float *k, const float *v, float *out,
                          size_t n_pos, size_t head_dim, size_t stride, float scale, float *s, Faults f) {
  const bool no_max = has(f, fault::ATTN_NO_MAX), approx = has(f, fault::ATTN_APPROX_EXP);
  const int mode = approx ? 1 : no_max ? 2 : 0; // the weights' 2^w, picked once (faults.hpp, with_mode)
  constexpr int PB = 8; // positions whose dot products a work-item builds at once
  Lanes l(it);
  auto g = it.get_group();
  float *part = s + ATTN_CHUNK; // part[p * lanes + lane]: a lane's share of q . k_p
  float m = -INF, denom = 0.f;  // the same in every work-item
  l.each(head_dim, [&](size_t d) { out[d] = 0.f; });
  for (size_t p0 = 0; p0 < n_pos; p0 += ATTN_CHUNK) {
    const size_t cn = imin(n_pos - p0, ATTN_CHUNK);
    const float *kc = k + p0 * stride, *vc = v + p0 * stride;
    // scores, step 1: work-items over head_dim (contiguous loads of k rows),
    // PB positions at a time, independent FMA chains
    for (size_t pb = 0; pb < cn; pb += PB) {
      const float *kp[PB];
      for (int i = 0; i < PB; ++i) kp[i] = kc + imin(pb + i, cn - 1) * stride; // past cn: repeats, unused
      float acc[PB] = {};
      l.each(head_dim, [&](size_t d) {
        const float qd = q[d];
        for (int i = 0; i < PB; ++i) acc[i] = madd(qd, kp[i][d], acc[i]);
      });
      for (int i = 0; i < PB; ++i) part[(pb + i) * l.lanes + l.lane] = acc[i];
    }
    sycl::group_barrier(g);
    // step 2: work-items over positions add up the lanes' shares
    float lane_max = -INF;
    l.each(cn, [&](size_t p) {
      float dot = 0.f;
      for (size_t j = 0; j < l.lanes; ++j) dot += part[p * l.lanes + j];
      s[p] = dot * scale;
      lane_max = sycl::fmax(lane_max, s[p]);
    });
    float m_new = sycl::fmax(m, sycl::reduce_over_group(g, lane_max, sycl::maximum<float>()));
    if (no_max) m_new = 0.f; // the fault: plain exp, which overflows for large scores
    const float corr = no_max ? 1.f : approx ? exp_approx(m - m_new) : sycl::exp(m - m_new); // 0 on the first chunk
    float sum = 0.f;
    with_mode(mode, [&](auto md) {
      constexpr int M = decltype(md)::value;
      l.each(cn, [&](size_t p) {
        const float w = (s[p] - m_new) * LOG2E;
        float e;
        if constexpr (M == 1) e = exp2_approx(w);
        else if constexpr (M == 2) e = sycl::exp2(w);
        else e = exp2_flush(w);
        sum += (s[p] = e);
      });
    });
    denom = denom * corr + sycl::reduce_over_group(g, sum, sycl::plus<float>());
    m = m_new;
    sycl::group_barrier(g); // every weight written before anyone reads them
    // weighted values: work-items over head_dim, 4 independent chains
    l.each(head_dim, [&](size_t d) {
      float a[4] = {out[d] * corr, 0.f, 0.f, 0.f};
      size_t p = 0;
      for (; p + 4 <= cn; p += 4)
        for (int u = 0; u < 4; ++u) a[u] = madd(s[p + u], vc[(p + u) * stride + d], a[u]);
      for (; p < cn; ++p) a[0] = madd(s[p], vc[p * stride + d], a[0]);
      out[d] = (a[0] + a[1]) + (a[2] + a[3]);
    });
    sycl::group_barrier(g); // weights and partial dots are read before the next chunk overwrites them
  }
  l.each(head_dim, [&](size_t d) { out[d] = out[d] / denom; });
}

} // namespace kl::ops
