// Matrix products with weights stored as a Hugging Face Linear: w[out, in],
// row-major, so both operands run along K.
//
// GEMM is shaped for CPUs whose OpenCL compiler vectorises across work-items
// of the fastest dimension: neighbouring work-items own neighbouring output
// columns, so the weight tile is stored transposed in local memory
// (ws[k][n]) and each k step is one vector load of weights per RN columns and
// one broadcast of x per RM rows, feeding RM x RN register accumulators.
#pragma once
#include "common.hpp"  // relative: the runtime compiler sees ops/ as a virtual folder
#include "elementwise.hpp"
#include "norm.hpp"

#include <type_traits>

namespace kl::ops {

// How a work-group copies its w tile into ws[k][n] (transposed):
// - COPY_GATHER: neighbouring lanes write neighbouring floats of ws, each
//   reading another row of w (a gather);
// - COPY_SCATTER: lanes read along k of one row of w (a vector load of whole
//   cache lines) and write one float into each of 16 rows of ws (a
//   scatter). Where K is a power of two, a gather's 16 rows sit in one L1
//   set and thrash it: on Zen 4 the gathers were 40% of GEMM 1024^3's
//   samples (perf) and the scatter copy ran 0.82x the time. AVX2 has no
//   scatter (it ran 1.04-1.18x there): the AVX2 tiles take COPY_SHUFFLE8.
// - COPY_SHUFFLE8: where a sub-group is 8 lanes (AVX2), each takes 8 x 8
//   blocks: 8 vector loads along k, a transpose in registers (sub-group
//   shuffles and selects), 8 vector stores; elsewhere (the last, partial k
//   tile; other sub-group sizes) the gather.
enum GemmCopy { COPY_GATHER, COPY_SCATTER, COPY_SHUFFLE8 };
template <int RM_, int RN_, int L0_, int L1_, int BK_, GemmCopy COPY_ = COPY_GATHER> struct GemmTiles {
  static constexpr int RM = RM_; // rows of y per work-item
  static constexpr int RN = RN_; // columns of y per work-item, L0 apart
  static constexpr int L0 = L0_; // work-items along N (the fast dimension)
  static constexpr int L1 = L1_; // work-items along M
  static constexpr int BK = BK_; // K per local tile
  static constexpr int BM = RM * L1, BN = RN * L0;
  static constexpr int LOCAL = BK * BN; // floats of local memory
  static constexpr GemmCopy COPY = COPY_;
};

// The AVX2 tiles copy with COPY_SHUFFLE8: on Zen 4 the gather (scalar
// loads and inserts there) was 17% of GEMM 1024^3's samples, the shuffle
// copy ~10%: compare.py 0.93-0.96x the time at 512^3 and 1024^3, 0.82-0.84x
// at prefill's 62x768x2048 and 62x2048x768.
// Measured on AVX2 (Zen 3), /tmp sweeps of RM x RN x L0 x L1 x BK: BM 96,
// BN 32 for large M; BM 32 wastes fewer rows for 16 < M <= 64. Both now
// serve SSE4.2 (Gemm) and AVX2's 16 < M <= 32 (GemmMid); AVX2's larger
// products take gemm_band's bands (below).
using Gemm = GemmTiles<6, 2, 16, 16, 128, COPY_SHUFFLE8>;
// Where a vector holds 16 floats (AVX-512, 32 vector registers): 4 x 4
// accumulators ran 0.88-0.93x Gemm's time at 512^3-2048^3 (Xeon,
// compare.py; on AVX2, with 16 registers, 1.16-1.43x), and BM 128 (L1 32)
// 0.86-0.93x BM 64's for M >= 128 (the transposed copy of a w tile feeds
// twice the rows); with the scatter copy BM 256 ran 0.93-0.97x BM 128's at
// 256 x 768^2 and 512^3 to 2048^3 (Zen 4) but 1.8-3.3x at M = 100, where
// it computes 156 rows for nothing: GemmWideBig where it wastes no more
// rows than GemmWide. BM 64 for 32 < M <= 64 (0.77-0.82x GemmMid's time).
using GemmWide = GemmTiles<4, 4, 16, 32, 128, COPY_SCATTER>;
using GemmWideBig = GemmTiles<4, 4, 16, 64, 128, COPY_SCATTER>;
using GemmWideMid = GemmTiles<4, 4, 16, 16, 128, COPY_SCATTER>;
using GemmMid = GemmTiles<4, 2, 16, 8, 128, COPY_SHUFFLE8>;
constexpr size_t GEMM_MID_MAX_M = 64;

// The 8 x 8 block of w at rows row0.. (past N: clamped), k0.., written
// transposed: dst[c * ld + lane] = w[row0 + lane][k0 + c], by a sub-group of
// 8 lanes: 8 vector loads along k, a transpose in registers (shuffles and
// selects), 8 vector stores.
inline void copy_block8(const sycl::sub_group &sg, int lane, const float *w, size_t N, size_t K, size_t row0,
                        size_t k0, float *dst, size_t ld) {
  // v[r][l] = w[row0 + r][k0 + l]; wanted: t[c][l] = v[l][c]
  float v[8], c8[8];
  for (int r = 0; r < 8; ++r) v[r] = w[imin(row0 + r, N - 1) * K + k0 + lane];
  // a[r][l] = v[r][(l + r) % 8]; c8[j][m] = a[(j - m) % 8][m] = v[(j - m) % 8][j]
  for (int r = 0; r < 8; ++r) v[r] = sycl::select_from_group(sg, v[r], (lane + r) & 7);
  for (int j = 0; j < 8; ++j) {
    c8[j] = v[0];
    for (int r = 1; r < 8; ++r) c8[j] = ((j - lane) & 7) == r ? v[r] : c8[j];
  }
  // t[c][l] = c8[c][(c - l) % 8] = v[l][c]
  for (int c = 0; c < 8; ++c) dst[c * ld + lane] = sycl::select_from_group(sg, c8[c], (c - lane) & 7);
}

// A work-group's copy of the w tile (rows n0.., k0 + [0, kc)) into ws[k][n],
// transposed, as Tiles::COPY says (above).
template <typename Tiles>
inline void copy_w_tile(const sycl::nd_item<2> &it, const float *w, size_t N, size_t K, size_t k0, size_t kc,
                        float *ws) {
  constexpr int RN = Tiles::RN, L0 = Tiles::L0, L1 = Tiles::L1, BK = Tiles::BK, BN = Tiles::BN;
  const size_t n0 = it.get_group(1) * BN;
  const size_t ly = it.get_local_id(0), lx = it.get_local_id(1);
  bool gather = Tiles::COPY == COPY_GATHER;
  if constexpr (Tiles::COPY == COPY_SHUFFLE8) {
    const auto sg = it.get_sub_group();
    // the largest sub-group, not this one's: the same in the whole group
    static_assert((L0 * L1) % 8 == 0, "8-lane sub-groups fill the work-group");
    gather = kc < size_t(BK) || sg.get_max_local_range()[0] != 8;
    if (!gather) {
      constexpr int BLOCKS = (BN / 8) * (BK / 8);
      static_assert(BN % 8 == 0 && BK % 8 == 0, "8 x 8 blocks");
      const int lane = int(sg.get_local_id()[0]), subs = int(sg.get_group_range()[0]);
      // Each sub-group a run of blocks along k of one 8-row band, the next
      // sub-group the run after it: the band's rows are read in order, 8
      // streams at a time (the hardware prefetcher's pattern); where a
      // sub-group has an even number of blocks, each line's two by one.
      const int per = (BLOCKS + subs - 1) / subs, b0 = int(sg.get_group_id()[0]) * per;
      const int b1 = b0 + per < BLOCKS ? b0 + per : BLOCKS;
      for (int b = b0; b < b1; ++b) {
        const int kb = b % (BK / 8), nb = b / (BK / 8);
        copy_block8(sg, lane, w, N, K, n0 + 8 * nb, k0 + 8 * kb, ws + 8 * kb * BN + 8 * nb, BN);
      }
    }
  }
  if (gather && L1 % RN == 0) {
    // Work-item (ly, lx) copies column nn of the tile (row n0 + nn of w),
    // k = kk0, kk0 + L1/RN, ...
    const size_t nn = lx + L0 * (ly % RN), kk0 = ly / RN;
    const float *wrow = w + imin(n0 + nn, N - 1) * K + k0; // columns past N: clamped, not stored
    float *dst = ws + nn;
    if (kc == size_t(BK)) {
      for (size_t kk = kk0; kk < size_t(BK); kk += L1 / RN) dst[kk * BN] = wrow[kk];
    } else {
      for (size_t kk = kk0; kk < size_t(BK); kk += L1 / RN) dst[kk * BN] = wrow[imin(kk, kc - 1)];
    }
  } else if (gather) {
    // the same walk where the rows of work-items do not split evenly into
    // the RN column sets: work-item (ly, lx), step t, copies column
    // lx + L0 (q % RN), k = q / RN, q = ly + t L1
    for (size_t q = ly; q < size_t(RN * BK); q += L1) {
      const size_t nn = lx + L0 * (q % RN), kk = q / RN;
      ws[kk * BN + nn] = w[imin(n0 + nn, N - 1) * K + k0 + imin(kk, kc - 1)];
    }
  } else if constexpr (Tiles::COPY == COPY_SCATTER) {
    // Work-item (ly, lx) copies k = kq + lx of row nn, for the (nn, kq)
    // that step t gives it.
    constexpr int KL = BK / L0; // runs of L0 floats in a row of the tile
    static_assert(BK % L0 == 0 && (BN * KL) % L1 == 0, "the copy gives each work-item whole runs");
    const size_t nlast = N - 1 - n0; // columns past N: clamped, not stored
    float *dst = ws + lx * BN;
    const float *src = w + n0 * K + k0 + lx;
    for (int t = 0; t < (BN * KL) / L1; ++t) {
      const size_t q = t * L1 + ly, nn = q / KL, kq = (q % KL) * L0;
      // the last tile's k past kc: not read (a masked load), never used
      if (kc == size_t(BK) || kq + lx < kc) dst[kq * BN + nn] = src[imin(nn, nlast) * K + kq];
    }
  }
}

// One k step of a tile: RN weights from the transposed w tile (ws[k][n],
// this lane's columns L0 apart), each x row's value broadcast, RM x RN FMAs
// (gemm_tile and gemm_band).
template <int RN, int L0, int BN, int RM, typename Index>
__attribute__((always_inline)) inline void tile_step(float (&acc)[RM][RN], const float *wk, const float *x,
                                                     const size_t (&xr)[RM], Index kk) {
  float b[RN];
  for (int j = 0; j < RN; ++j) b[j] = wk[kk * BN + j * L0];
  for (int i = 0; i < RM; ++i) {
    float a = x[xr[i] + kk];
    for (int j = 0; j < RN; ++j) acc[i][j] = madd(a, b[j], acc[i][j]);
  }
}

// One work-group computes y[BM, BN] tile (group(0), group(1)) of
// y[M,N] = x[M,K] . w[N,K]^T. ws: Tiles::LOCAL floats of local memory.
template <typename Tiles>
inline void gemm_tile(const sycl::nd_item<2> &it, const float *x, const float *w, float *y, size_t M, size_t N,
                      size_t K, float *ws, Faults f) {
  constexpr int RM = Tiles::RM, RN = Tiles::RN, L0 = Tiles::L0, BK = Tiles::BK, BN = Tiles::BN;
  auto g = it.get_group();
  float acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = 0.f;
  for (size_t k0 = 0; k0 < K; k0 += BK) {
    const size_t kc = imin(size_t(BK), K - k0);
    copy_w_tile<Tiles>(it, w, N, K, k0, kc, ws);
    sycl::group_barrier(g);
    const size_t m0 = it.get_group(0) * Tiles::BM + it.get_local_id(0) * RM;
    size_t xr[RM]; // the same in every lane: x loads are broadcasts
    for (int i = 0; i < RM; ++i) xr[i] = imin(m0 + i, M - 1) * K + k0; // rows past M: clamped, not stored
    const float *wk = ws + it.get_local_id(1);
    if (kc == size_t(BK)) {
#pragma unroll 8
      for (int kk = 0; kk < BK; ++kk) {
        tile_step<RN, L0, BN>(acc, wk, x, xr, kk);
      }
    } else {
      const size_t kn = has(f, fault::GEMM_K_TAIL) ? kc - 1 : kc;
      for (size_t kk = 0; kk < kn; ++kk) {
        tile_step<RN, L0, BN>(acc, wk, x, xr, kk);
      }
    }
    if (has(f, fault::GEMM_HALF_ACC))
      for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = half_round(acc[i][j]);
    sycl::group_barrier(g);
  }
  const size_t m0 = it.get_group(0) * Tiles::BM + it.get_local_id(0) * RM;
  const size_t n0 = it.get_group(1) * BN + it.get_local_id(1);
  // A tile wholly inside y (the same for the whole group) stores without the
  // bounds checks, whose masked vector stores (vmaskmovps) were 4% of AVX2
  // GEMM's samples on Zen 4.
  if ((it.get_group(0) + 1) * Tiles::BM <= M && (it.get_group(1) + 1) * BN <= N) {
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) y[(m0 + i) * N + n0 + j * L0] = acc[i][j];
    return;
  }
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) {
      size_t m = m0 + i, n = n0 + j * L0;
      if (m < M && n < N) y[m * N + n] = acc[i][j];
    }
}

// Bands (AVX2, M > 32): a work-group is one sub-group of 8 lanes that
// computes a band of rows (a multiple of RM, given at launch) x BN = 2 x 8
// columns of y. For each k tile (kt long, at most BK, given at launch) it
// copies the w tile transposed into ws, then runs every RM-row block of the
// band through it, each block's 6 x 2 accumulators loaded from y and stored
// back (exact: floats as they were). Each lane copies and reads only its
// own columns of ws (lane and lane + 8), so there is no barrier; the sums
// run in k order as gemm_tile's do, bit for bit the same.
// Why: gemm_tile's work-group of 64 sub-groups ran them one after another
// between two barriers a k tile, each saving and reloading 12 accumulators,
// and its x rows were read 128 floats at a time; here a block's x rows
// stream up to 512 floats (whole k tiles of 512: 32 KiB of w, the L1D).
// Against the 192- and 96-row tiles and GemmMid64 (Zen 4, avx2 image, an
// interleaved A/B in one process): 0.77-0.91x the time at 512^3, 0.87-0.92x
// at 1024^3, 0.88-0.94x at 2048^3, 0.84x at 200x2048x2048, 0.75-0.79x at
// 300x200x300, 0.91-0.94x at 100x768^2; prefill's 62-row products
// 0.92-1.08x (noise), 33x2048x768 1.00; at 20x768^2 1.03-1.08x, so GemmMid
// keeps M <= 32. Bands of ~288 rows (192 and 384 within 1-2%, 128 2-5%
// slower); k tiles of at most 256 or 384 ran 1.03-1.06x 512's.
// (An int copy of get_local_id(1) as the lane, in the copy and the column
// addresses, made the whole 1.05-1.10x slower: hence sg's lane and size_t.)
template <int RM_, int BK_> struct GemmBandTiles {
  static constexpr int RM = RM_, RN = 2, L0 = 8, BK = BK_, BN = RN * L0;
  static constexpr int LOCAL = BK * BN; // floats of local memory
};
template <typename Tiles>
inline void gemm_band(const sycl::nd_item<2> &it, const float *x, const float *w, float *y, size_t M, size_t N,
                      size_t K, size_t band, size_t kt, float *ws, Faults f) {
  constexpr int RM = Tiles::RM, RN = Tiles::RN, L0 = Tiles::L0, BN = Tiles::BN;
  const auto sg = it.get_sub_group();
  const int lane = int(sg.get_local_id()[0]);
  const bool shuffle = sg.get_max_local_range()[0] == 8;
  const size_t mb0 = it.get_group(0) * band, mb1 = imin(M, mb0 + band);
  const size_t nw = it.get_group(1) * BN, n0 = nw + it.get_local_id(1);
  const bool whole_n = nw + BN <= N;
  for (size_t k0 = 0; k0 < K; k0 += kt) {
    const size_t kc = imin(kt, K - k0), kc8 = shuffle ? kc - kc % 8 : 0;
    for (int nb = 0; nb < RN; ++nb) // 8 rows of w at a time: 8 streams for the hardware prefetcher
      for (int kb = 0; kb < Tiles::BK; kb += 8)
        if (size_t(kb) < kc8) copy_block8(sg, lane, w, N, K, nw + 8 * nb, k0 + kb, ws + kb * BN + 8 * nb, BN);
    for (size_t kk = kc8; kk < kc; ++kk) // the rest: each lane its own columns
      for (int j = 0; j < RN; ++j)
        ws[kk * BN + it.get_local_id(1) + j * L0] = w[imin(n0 + j * L0, N - 1) * K + k0 + kk];
    // the fault: the last k of K left out
    const size_t kn = has(f, fault::GEMM_K_TAIL) && k0 + kc == K ? kc - 1 : kc;
    const float *wk = ws + it.get_local_id(1);
    for (size_t m0 = mb0; m0 < mb1; m0 += RM) {
      const bool whole = whole_n && m0 + RM <= M;
      float acc[RM][RN];
      for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j)
          acc[i][j] = k0 == 0 ? 0.f
                      : whole ? y[(m0 + i) * N + n0 + j * L0]
                              : y[imin(m0 + i, M - 1) * N + imin(n0 + j * L0, N - 1)];
      size_t xr[RM]; // the same in every lane: x loads are broadcasts
      for (int i = 0; i < RM; ++i) xr[i] = imin(m0 + i, M - 1) * K + k0; // rows past M: clamped, not stored
#pragma unroll 8
      for (size_t kk = 0; kk < kn; ++kk) {
        tile_step<RN, L0, BN>(acc, wk, x, xr, kk);
      }
      if (has(f, fault::GEMM_HALF_ACC))
        for (int i = 0; i < RM; ++i)
          for (int j = 0; j < RN; ++j) acc[i][j] = half_round(acc[i][j]);
      if (whole) {
        for (int i = 0; i < RM; ++i)
          for (int j = 0; j < RN; ++j) y[(m0 + i) * N + n0 + j * L0] = acc[i][j];
      } else {
        for (int i = 0; i < RM; ++i)
          for (int j = 0; j < RN; ++j)
            if (m0 + i < M && n0 + j * L0 < N) y[(m0 + i) * N + n0 + j * L0] = acc[i][j];
      }
    }
  }
}
using GemmBand = GemmBandTiles<6, 512>;
constexpr size_t GEMM_BAND_ROWS = 288; // rows a band, where that leaves enough bands (launch_free.cpp)

// Few-row products (GEMV for decode, GEMM with small M): no transposed
// tile, since each weight is used only M times. A work-group has
// GROUPS x LANES work-items; each takes RPW rows of w and MB rows of x (each
// weight load feeds MB FMAs, each x load RPW), its lane strides K
// (contiguous loads), KU steps at a time, and the lanes' partial sums meet in
// registers where a sub-group is LANES wide (CPUs), else in local memory.
// Group g covers w rows (g % nb) * ROWS.. and x rows (g / nb) * MB..,
// nb = ceil(N / ROWS).
template <int RPW_, int MB_, int KU_, int GROUPS_ = 4> struct RowTiles {
  static constexpr int RPW = RPW_, MB = MB_, KU = KU_;
  // Lanes: LANES in single-source launches; the runtime-compiler ones use
  // the image's vector width (Runtime::Impl::row_lanes, at most ROW_LANES):
  // on AVX-512, 16 lanes made GEMV 1.2-1.5x faster than 8.
  static constexpr int GROUPS = GROUPS_, LANES = 8;
  static constexpr int ROWS = RPW * GROUPS;            // rows of w per work-group
  static constexpr int LOCAL = ROWS * MB * ROW_LANES;  // floats of local memory, for up to ROW_LANES lanes
};
// One token; 64 rows a group (fewer groups cost the CPU runtime less). 8 rows
// a work-item: 8 weight streams in flight per core, so weights that come from
// DRAM (decode of a model larger than the LLC) stream at 1.15-1.3x the
// bandwidth of 4 rows x 2 steps (Zen 4, rotating weights past the L3;
// cache-resident shapes within noise, compare.py avx512 and avx2).
using Gemv = RowTiles<8, 1, 1, 8>;
using GemmFew = RowTiles<4, 2, 1>;   // a few tokens
constexpr size_t GEMM_FEW_MAX_M = 16; // up to here GemmFew beats the tiled GEMM (measured)

// Fused into the product, each one launch fewer in a layer of decode:
// - y = res + x . w^T where res is given (the residual add after the GEMV;
//   res may be y itself, each element is read and written by the one
//   work-item that owns it). res + sum rounds as the separate add did.
// - NORM: x . w^T of RMSNorm(x rows; norm_w, eps) (the norm before the
//   GEMV): each work-group forms 1 / rms of its x rows with rms_inv and
//   normalises x as it loads it, with rms_apply. On CPUs (a sub-group is
//   the lanes) rms_inv sums as kl_rmsnorm does.
// - SWIGLU: y[n] = silu(g_n) * u_n of g = w[0:N] . x, u = w[N:2N] . x (w
//   holds 2N rows, gate then up: the gate/up GEMV and the SwiGLU after it).
//   A work-item takes RPW/2 gate rows and the RPW/2 up rows that pair with
//   them, so each output is its own work-item's and the gate/up vector is
//   never stored.
// All bit-identical to the separate ops where a sub-group is the lanes
// (oneapi-pip's images; tests). Elsewhere rms_inv sums over the work-group.
// always_inline: with several kernels calling it (kl_gemv, kl_gemv_add, ...)
// the CPU compiler kept it out of line and vectorized none across
// work-items: GEMV ran 4-5x slower (768x288: 21 -> 94 us).
// (NORM: 0 none, NORM_WEIGHTED, or NORM_UNWEIGHTED: the fault
// ROWS_NORM_NO_WEIGHT, an instance of its own so that it costs the others
// nothing.)
enum RowsNorm { NORM_NONE = 0, NORM_WEIGHTED = 1, NORM_UNWEIGHTED = 2 };
template <typename T, int NORM = NORM_NONE, bool SWIGLU = false>
__attribute__((always_inline)) inline void gemm_rows(const sycl::nd_item<2> &it, const float *x, const float *w,
                                                     float *y, size_t M, size_t N, size_t K, float *scratch,
                                                     Faults f, const float *res = nullptr,
                                                     const float *norm_w = nullptr, float eps = 0.f) {
  constexpr int RPW = T::RPW, MB = T::MB, KU = T::KU;
  constexpr int OUT = SWIGLU ? RPW / 2 : RPW; // outputs (columns of y) a work-item
  static_assert(!SWIGLU || RPW % 2 == 0, "SWIGLU pairs a work-item's rows");
  const Lanes l(it);
  const size_t rows = OUT * T::GROUPS; // outputs a work-group
  const size_t nb = (N + rows - 1) / rows, g = it.get_group(0);
  // r0: the work-item's first row in scratch; n0: its first output
  const size_t r0 = it.get_local_id(0) * RPW, n0 = (g % nb) * rows + it.get_local_id(0) * OUT, m0 = (g / nb) * MB;
  const float *wr[RPW], *xr[MB];
  for (int j = 0; j < RPW; ++j) // rows past N or M: clamped, not stored; SWIGLU's up rows N on
    wr[j] = w + ((j < OUT ? 0 : N) + imin(n0 + j % OUT, N - 1)) * K;
  for (int i = 0; i < MB; ++i) xr[i] = x + imin(m0 + i, M - 1) * K;
  const auto sg = it.get_sub_group();
  const bool lanes_are_sg = sg.get_max_local_range()[0] == l.lanes;
  float inv[MB];
  if constexpr (NORM != NORM_NONE)
    for (int i = 0; i < MB; ++i)
      inv[i] = lanes_are_sg ? rms_inv(sg, xr[i], K, eps, f) : rms_inv(it.get_group(), xr[i], K, eps, f);
  auto xin = [&](int i, size_t k) {
    if constexpr (NORM == NORM_WEIGHTED) return rms_apply(xr[i][k], inv[i], norm_w[k]);
    else if constexpr (NORM == NORM_UNWEIGHTED) return rms_apply(xr[i][k], inv[i], 1.f);
    else return xr[i][k];
  };
  float acc[RPW][MB][KU] = {};
  const size_t step = KU * l.lanes, whole = K - K % step;
  // Two instances of the loop, so that the fault (an fp16 accumulator) costs
  // the normal one nothing.
  auto blocks = [&](auto half) {
    for (size_t b = 0; b < whole; b += step)
      for (int u = 0; u < KU; ++u) {
        const size_t k = b + u * l.lanes + l.lane;
        float xv[MB];
        for (int i = 0; i < MB; ++i) xv[i] = xin(i, k);
        for (int j = 0; j < RPW; ++j) {
          const float wv = wr[j][k];
          for (int i = 0; i < MB; ++i) {
            acc[j][i][u] = madd(wv, xv[i], acc[j][i][u]);
            if constexpr (decltype(half)::value) acc[j][i][u] = half_round(acc[j][i][u]);
          }
        }
      }
  };
  if (has(f, fault::ROWS_HALF_ACC)) blocks(std::true_type{});
  else blocks(std::false_type{});
  const size_t kend = has(f, fault::ROWS_K_TAIL) && whole < K ? K - 1 : K;
  for (size_t k = whole + l.lane; k < kend; k += l.lanes) // short tail
    for (int j = 0; j < RPW; ++j)
      for (int i = 0; i < MB; ++i) acc[j][i][0] = madd(wr[j][k], xin(i, k), acc[j][i][0]);
  float part[RPW][MB];
  for (int j = 0; j < RPW; ++j)
    for (int i = 0; i < MB; ++i) {
      part[j][i] = 0.f;
      for (int u = 0; u < KU; ++u) part[j][i] += acc[j][i][u];
    }
  // The fault: the residual as each lane's starting sum, so the lanes' sums
  // add it `lanes` times.
  const float res_times = has(f, fault::ROWS_RES_PER_LANE) ? float(l.lanes) : 1.f;
  const bool silu_fault = faulty_silu(f); // SwiGLU's exp (elementwise.hpp)
  if (lanes_are_sg) {
    // A sub-group is one row of lanes (the CPU's vector): sum the lanes in
    // registers, no local memory or barrier. Lane q stores outputs n0 + q,
    // n0 + q + lanes, ... (OUT may exceed the lanes: 4 on SSE4.2; SWIGLU:
    // the sums of rows j and j + OUT make output j).
    for (int i = 0; i < MB; ++i) {
      float s[RPW];
      for (int j = 0; j < RPW; ++j) s[j] = sycl::reduce_over_group(sg, part[j][i], sycl::plus<float>());
      for (size_t j0 = 0; j0 < size_t(OUT); j0 += l.lanes) {
        float mine = 0.f, u = 0.f;
        for (int j = 0; j < OUT; ++j) {
          mine = size_t(j) == j0 + l.lane ? s[j] : mine;
          if constexpr (SWIGLU) u = size_t(j) == j0 + l.lane ? s[j + OUT] : u;
        }
        if (j0 + l.lane < size_t(OUT) && n0 + j0 + l.lane < N && m0 + i < M) {
          const size_t idx = (m0 + i) * N + n0 + j0 + l.lane;
          if constexpr (SWIGLU) y[idx] = silu_fault ? swiglu<float, true>(mine, u) : swiglu(mine, u);
          else y[idx] = res ? res_times * res[idx] + mine : mine;
        }
      }
    }
    return;
  }
  for (int j = 0; j < RPW; ++j)
    for (int i = 0; i < MB; ++i) scratch[((r0 + j) * MB + i) * l.lanes + l.lane] = part[j][i];
  sycl::group_barrier(it.get_group());
  // lane q sums outputs n0 + q, n0 + q + lanes, ... for every x row (SWIGLU:
  // and the up row OUT after each)
  auto sum = [&](size_t j, int i) {
    float s = 0.f;
    for (size_t q = 0; q < l.lanes; ++q) s += scratch[((r0 + j) * MB + i) * l.lanes + q];
    return s;
  };
  for (size_t j = l.lane; j < size_t(OUT) && n0 + j < N; j += l.lanes)
    for (int i = 0; i < MB; ++i) {
      const float s = sum(j, i);
      if (m0 + i >= M) continue;
      const size_t idx = (m0 + i) * N + n0 + j;
      if constexpr (SWIGLU) y[idx] = silu_fault ? swiglu<float, true>(s, sum(j + OUT, i)) : swiglu(s, sum(j + OUT, i));
      else y[idx] = res ? res_times * res[idx] + s : s;
    }
}

} // namespace kl::ops
