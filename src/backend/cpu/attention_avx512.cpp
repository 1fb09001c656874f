// attention_avx512.cpp: the MA block step with AVX-512 (F, BW, DQ, VL) intrinsics (x86-64).
//
// Like attention_avx2.cpp, every function carries the target attribute and attention.cpp picks
// this step only when the CPU (and the OS) report AVX-512 at run time. Shapes: a tile is
// kMaxTileRows = 4 query rows, head_dim a multiple of 32, any number of tokens per block. A tile
// whose last rows are the driver's padding runs forms for its 1-3 live rows (templates on R).
//
//   scores:  4 tokens x 4 rows of 16-lane accumulators (16 zmm, chains of head_dim / 16 FMAs),
//            reduced together by a transpose-add tree into one vector x[4 t + r]
//   softmax: once per block, in vectors of 4 tokens x 4 rows; the weights are computed with the
//            running max as each group of 4 tokens is scored, and recomputed only when the
//            block raises the max (see tile_scores)
//   values:  o[4 rows][64 columns] held in 16 zmm across all tokens of the block (fewer for a
//            tile with padding rows): each V chunk is widened once per token and used for the 4
//            rows (p broadcast from memory)
//
// Widening: f32 is loaded as is, f16 with vcvtph2ps. bf16 skips the unpacking: a 32-bit lane of a
// 64-byte load holds two elements, the even one low, so one shift gives the even elements as f32
// and one and the odd ones. The element order inside each 32-element chunk is then (even, odd)
// for q, K, V and o alike; the driver puts q in that order before an item's first block and o
// back after its last (layout_rows).
//
// NOTE: measured on the dev VM (Zen 4, one thread, CPU time, one block of 16 tokens x 128 dims
// in cache, 4 rows): vcvtph2ps beat widening f16 with integer shifts (to f32 patterns of
// h * 2^-112, rescaled by powers of two): 400 vs 416 ns per block and head; the bf16 shift-and
// beat vpmovzxwd + shift: 389 vs 400 ns. A zmm FMA issues at 1 per cycle; vpermt2ps and
// vshuff32x4 take FMA-pipe slots, vshufps, blends, shifts and logic do not.
#include "backend/cpu/attention_kernels.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define INFLLM_ATTENTION_AVX512 1
#endif

#if INFLLM_ATTENTION_AVX512
// NOTE: GCC 12's AVX-512 intrinsics start from a deliberately uninitialized vector
// (_mm512_undefined_ps) and then warn about it when inlined (-W[maybe-]uninitialized, fixed in
// GCC 13); the warning says nothing about this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/attention_state.hpp"
#include "core/half.hpp"

#define INFLLM_AVX512_FN __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define INFLLM_AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"), always_inline)) inline
#endif

namespace infllm::cpu::detail {

#if INFLLM_ATTENTION_AVX512
namespace {

// How a dtype's 32-element chunk becomes two f32 vectors a, b. kPermuted: a holds the even
// elements and b the odd ones (else a = 0..15, b = 16..31).
template <typename T>
struct Widen;

template <>
struct Widen<float> {
  static constexpr bool kPermuted = false;
  INFLLM_AVX512_INLINE static void load(const float* p, __m512& a, __m512& b) {
    a = _mm512_loadu_ps(p);
    b = _mm512_loadu_ps(p + 16);
  }
};

template <>
struct Widen<bf16> {
  static constexpr bool kPermuted = true;
  INFLLM_AVX512_INLINE static void load(const bf16* p, __m512& a, __m512& b) {
    const __m512i x = _mm512_loadu_si512(p);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
};

template <>
struct Widen<f16> {
  static constexpr bool kPermuted = false;
  INFLLM_AVX512_INLINE static void load(const f16* p, __m512& a, __m512& b) {
    a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  }
};

// 2^x for x <= 0 (and -inf): 0 below -126, else kExp2Taylor's polynomial of 2^f on f in
// [-0.5, 0.5] times 2^n (the same values as the AVX2 step).
INFLLM_AVX512_INLINE __m512 exp2_nonpositive(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-126.0f);
  const __mmask16 valid = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
  const __m512 xc = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_roundscale_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(xc, n);
  __m512 p = _mm512_set1_ps(kExp2Taylor[0]);
  for (int k = 1; k < 8; ++k) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Taylor[k]));
  const __m512i e =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mul_ps(valid, p, _mm512_castsi512_ps(e));
}

// The sums of v[0..15] as one vector: lane i = sum of v[i]'s lanes. Each level adds pairs of
// vectors after interleaving them; the first two levels stay within 128-bit lanes (vshufps, which
// does not compete with the FMAs on Zen 4), only the last two cross them (vshuff32x4), when just
// 4 and 2 vectors are left.
INFLLM_AVX512_INLINE __m512 reduce16(const __m512* v) {
  __m512 w[8], z[4], u[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    const __m512 x = _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 y = _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
    w[i] = _mm512_add_ps(x, y);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512 x = _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 y = _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
    z[i] = _mm512_add_ps(x, y);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    const __m512 x = _mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 y = _mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
    u[i] = _mm512_add_ps(x, y);
  }
  const __m512 x = _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 y = _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1));
  return _mm512_add_ps(x, y);
}

// Scores of 4 tokens (k0..k3, each head_dim elements) against the tile's first R of 4 rows q
// (kernel layout): lane 4 j + r = q[r] . k[j], 0 for r >= R (padding rows, which repeat a real
// row and whose results are dropped, take no FMAs).
template <typename T, int R>
INFLLM_AVX512_INLINE __m512 scores4(const float* q, std::ptrdiff_t hd, const T* k0, const T* k1,
                                    const T* k2, const T* k3) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  for (std::ptrdiff_t d = 0; d < hd; d += 32) {
    __m512 ka[4], kb[4];
    Widen<T>::load(k0 + d, ka[0], kb[0]);
    Widen<T>::load(k1 + d, ka[1], kb[1]);
    Widen<T>::load(k2 + d, ka[2], kb[2]);
    Widen<T>::load(k3 + d, ka[3], kb[3]);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 qa = _mm512_loadu_ps(q + r * hd + d);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[4 * j + r] = _mm512_fmadd_ps(qa, ka[j], acc[4 * j + r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_loadu_ps(q + r * hd + d + 16);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[4 * j + r] = _mm512_fmadd_ps(qb, kb[j], acc[4 * j + r]);
    }
  }
  return reduce16(acc);
}

// Software prefetch of the item's next K and V runs into L2. When both runs fit in kMaxBurst
// lines per group of 4 tokens, they are prefetched during the scores, a share per group, K and V
// line by line (f16/bf16 blocks of 16 tokens x 128 dims: 4 KiB runs, 32 lines per group). Larger
// runs (f32) prefetch K during the scores and V during the values pass, a share per token.
// NOTE: measured on the dev VM (one thread, 64K tokens, CPU time): f32 KV read 12.4 GB/s with all
// 256 lines prefetched during the scores in bursts of 64, 17 with bursts of 32 and the rest
// during the values, 19-20 with K and V split as now; f16 lost 10% with its V moved to the values
// pass. Prefetching 2, 4, 8 or 16 runs ahead instead of 1 gave nothing, every other line only
// (leaving the rest to the adjacent-line prefetcher) lost 35%, T0 and NTA hints 30%. A loop that
// only touches the runs in this order, with this prefetch, reads 15-19 GB/s against 24-28 GB/s
// for a sequential read: the shuffled 4 KiB runs bound the stream, not the prefetch distance.
struct Prefetch {
  static constexpr std::size_t kMaxBurst = 32;
  const std::byte* k = nullptr;
  const std::byte* v = nullptr;
  std::size_t lines = 0;  // of one run
  std::size_t k_line = 0, v_line = 0;
  std::size_t per_score_step = 0;  // K and V lines each
  std::size_t per_value_step = 0;  // V lines; 0 when the scores' steps cover V as well

  INFLLM_AVX512_INLINE void plan(const MaKeys& keys, std::size_t score_steps,
                                 std::size_t value_steps) {
    if (keys.next_k == nullptr) return;
    k = keys.next_k;
    v = keys.next_v;
    lines = keys.run_bytes / 64;
    per_score_step = (lines + score_steps - 1) / score_steps;
    if (2 * per_score_step > kMaxBurst) {
      per_value_step = (lines + value_steps - 1) / value_steps;
      v_line = lines;  // not during the scores
    }
  }
  INFLLM_AVX512_INLINE void score_step() {
    for (std::size_t i = 0; i < per_score_step && k_line < lines; ++i, ++k_line) {
      _mm_prefetch(reinterpret_cast<const char*>(k + 64 * k_line), _MM_HINT_T1);
      if (per_value_step == 0)
        _mm_prefetch(reinterpret_cast<const char*>(v + 64 * k_line), _MM_HINT_T1);
    }
  }
  INFLLM_AVX512_INLINE void value_step() {
    for (std::size_t i = 0; i < per_value_step && v_line < 2 * lines; ++i, ++v_line) {
      _mm_prefetch(reinterpret_cast<const char*>(v + 64 * (v_line - lines)), _MM_HINT_T1);
    }
  }
};

// Sum or max over the 4 tokens of each row: lanes 4 j + r, j = 128-bit lane; the result has the
// row's value in all four of its lanes.
INFLLM_AVX512_INLINE __m512 row_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
}
INFLLM_AVX512_INLINE __m512 row_max(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
}

// The max to subtract before exp2: a row with nothing visible yet (m = -inf) has every x = -inf,
// and subtracting 0 keeps p = 2^-inf = 0.
INFLLM_AVX512_INLINE __m512 max_to_subtract(__m512 m) {
  return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ),
                            _mm512_setzero_ps());
}

// The online-softmax step of rows r0..r0+3 over one block, vectors with lane 4 j + r = row r,
// token 4 g + j for group g of 4 tokens.
//
// The running max m usually does not move within a long context, so the weights are computed
// with it as the group's scores come out of the dot products, p = 2^(x - m): exp2 then overlaps
// the next group's FMAs instead of waiting, with the values, for the block's max. When the
// block's max does exceed m after all (its first block, a rising score), the weights are
// recomputed from the saved scores with the new max (block_softmax). Either way p and the state
// are what one softmax update with m_new = max(m, block max) gives.
//
// p (groups of 16) <- the weights; x (the same) <- the scores in log2 units, -inf past the
// block's end and where masked; alpha (4) <- the factor for the rows' previous o.
template <typename T>
INFLLM_AVX512_FN void block_softmax(const MaRows& rows, int r0, int tokens, const float* x,
                                    float* p, __m512 vmax, float* alpha);

template <typename T, int R>
INFLLM_AVX512_FN void tile_scores(const MaRows& rows, int r0, const MaKeys& keys, float* p,
                                  float* x, float* alpha, Prefetch& pf) {
  const std::ptrdiff_t hd = rows.head_dim;
  const int tokens = keys.tokens;
  const float* q = rows.q + static_cast<std::ptrdiff_t>(r0) * hd;
  const T* k = reinterpret_cast<const T*>(keys.k);
  // lane -> (token within the group, row)
  const __m512i lane_token = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  // Last visible token (relative to the block) of each row, clamped to int range.
  __m512i last_visible = _mm512_set1_epi32(INT_MAX);
  if (keys.masked) {
    alignas(16) int lim[4];
    for (int r = 0; r < 4; ++r) {
      const std::int64_t rel = rows.pos[r0 + r] - keys.first_pos;
      lim[r] = static_cast<int>(std::clamp<std::int64_t>(rel, -1, INT_MAX));
    }
    last_visible = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(lim)));
  }
  const __m512 m_old = _mm512_broadcast_f32x4(_mm_loadu_ps(rows.m + r0));
  const __m512 m_sub = max_to_subtract(m_old);
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  __m512 vsum = _mm512_setzero_ps();
  for (int t = 0; t < tokens; t += 4) {
    pf.score_step();
    const T* k0 = k + static_cast<std::ptrdiff_t>(t) * hd;
    const T* k1 = t + 1 < tokens ? k0 + hd : k0;
    const T* k2 = t + 2 < tokens ? k0 + 2 * hd : k0;
    const T* k3 = t + 3 < tokens ? k0 + 3 * hd : k0;
    __m512 s = scores4<T, R>(q, hd, k0, k1, k2, k3);
    const __m512i tok = _mm512_add_epi32(lane_token, _mm512_set1_epi32(t));
    __mmask16 hide = _mm512_cmpge_epi32_mask(tok, _mm512_set1_epi32(tokens));
    hide |= _mm512_cmpgt_epi32_mask(tok, last_visible);
    s = _mm512_mask_mov_ps(s, hide, _mm512_set1_ps(-INFINITY));
    vmax = _mm512_max_ps(vmax, s);
    _mm512_storeu_ps(x + 4 * t, s);
    // Scores above m give weights above 1 here (or +inf, or NaN when m = -inf): the block is
    // then redone below, and these are never used.
    const __m512 w = exp2_nonpositive(_mm512_sub_ps(s, m_sub));
    vsum = _mm512_add_ps(vsum, w);
    _mm512_storeu_ps(p + 4 * t, w);
  }
  if (_mm512_cmp_ps_mask(vmax, m_old, _CMP_GT_OQ) != 0) {
    block_softmax<T>(rows, r0, tokens, x, p, vmax, alpha);
    return;
  }
  // The max did not move: alpha = 1, l += the weights' sum.
  const __m512 l = _mm512_add_ps(_mm512_broadcast_f32x4(_mm_loadu_ps(rows.l + r0)), row_sum(vsum));
  _mm_storeu_ps(rows.l + r0, _mm512_castps512_ps128(l));
  _mm_store_ps(alpha, _mm_set1_ps(1.0f));
}

template <typename T>
INFLLM_AVX512_FN void block_softmax(const MaRows& rows, int r0, int tokens, const float* x,
                                    float* p, __m512 vmax, float* alpha) {
  const int groups = (tokens + 3) / 4;
  const __m512 m_old = _mm512_broadcast_f32x4(_mm_loadu_ps(rows.m + r0));
  const __m512 m = _mm512_max_ps(m_old, row_max(vmax));
  // partition_scale(m_old, m): 2^(m_old - m), exactly 1 when the max did not move, 0 when m_old
  // is -inf, and 0 (not 2^NaN) when the row has seen nothing at all (m = -inf).
  const __m512 a = exp2_nonpositive(_mm512_sub_ps(m_old, m));
  const __m512 m_sub = max_to_subtract(m);
  __m512 vsum = _mm512_setzero_ps();
  for (int g = 0; g < groups; ++g) {
    const __m512 w = exp2_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + 16 * g), m_sub));
    vsum = _mm512_add_ps(vsum, w);
    _mm512_storeu_ps(p + 16 * g, w);
  }
  const __m512 l =
      _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_loadu_ps(rows.l + r0)), a, row_sum(vsum));
  _mm_storeu_ps(rows.m + r0, _mm512_castps512_ps128(m));
  _mm_storeu_ps(rows.l + r0, _mm512_castps512_ps128(l));
  _mm_store_ps(alpha, _mm512_castps512_ps128(a));
}

// o[r0..r0+R-1][d : d + 32 * C] <- o * alpha + p @ V[:, d : d + 32 * C] for the tile's R live
// rows, the R x 2C accumulators in registers across the block's tokens. o and the widened V share
// the kernel layout.
template <typename T, int C, bool kPrefetch, int R>
INFLLM_AVX512_INLINE void tile_values(const MaRows& rows, int r0, const MaKeys& keys,
                                      const float* p, const float* alpha, int d, Prefetch& pf) {
  const std::ptrdiff_t hd = rows.head_dim;
  const int tokens = keys.tokens;
  float* o = rows.o + static_cast<std::ptrdiff_t>(r0) * hd + d;
  __m512 acc[R][2 * C];
  // Most blocks of a long context leave every row's max where it was (alpha = 1).
  constexpr int kLive = (1 << R) - 1;
  const bool rescale =
      (_mm_movemask_ps(_mm_cmpeq_ps(_mm_load_ps(alpha), _mm_set1_ps(1.0f))) & kLive) != kLive;
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 4
    for (int c = 0; c < 2 * C; ++c) {
      acc[r][c] = _mm512_loadu_ps(o + r * hd + 16 * c);
      if (rescale) acc[r][c] = _mm512_mul_ps(acc[r][c], a);
    }
  }
  const T* v = reinterpret_cast<const T*>(keys.v) + d;
  for (int t = 0; t < tokens; ++t, v += hd, p += 4) {
    if constexpr (kPrefetch) pf.value_step();
    __m512 vv[2 * C];
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) Widen<T>::load(v + 32 * c, vv[2 * c], vv[2 * c + 1]);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_set1_ps(p[r]);
#pragma GCC unroll 4
      for (int c = 0; c < 2 * C; ++c) acc[r][c] = _mm512_fmadd_ps(w, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 2 * C; ++c) _mm512_storeu_ps(o + r * hd + 16 * c, acc[r][c]);
  }
}

// One tile of 4 rows, R of them live: the scores and softmax, then the values pass over the
// head dimension in pieces of 64 columns (and a last one of 32).
template <typename T, int R>
INFLLM_AVX512_INLINE void tile(const MaRows& rows, int r0, const MaKeys& keys, float* p, float* x,
                               float* alpha, Prefetch& pf) {
  tile_scores<T, R>(rows, r0, keys, p, x, alpha, pf);
  int d = 0;
  if (pf.per_value_step != 0) {
    for (; d + 64 <= rows.head_dim; d += 64)
      tile_values<T, 2, true, R>(rows, r0, keys, p, alpha, d, pf);
    if (d < rows.head_dim) tile_values<T, 1, true, R>(rows, r0, keys, p, alpha, d, pf);
  } else {
    for (; d + 64 <= rows.head_dim; d += 64)
      tile_values<T, 2, false, R>(rows, r0, keys, p, alpha, d, pf);
    if (d < rows.head_dim) tile_values<T, 1, false, R>(rows, r0, keys, p, alpha, d, pf);
  }
}

template <typename T>
INFLLM_AVX512_FN void update_as(const MaRows& rows, const MaKeys& keys, float* scratch) {
  // scratch: the weights p, then the scores x, each 4 tokens x 4 rows per group (the first part
  // of block_update_scratch holds one of them; the K and V copies that follow, unused here, the
  // other).
  const std::size_t part = block_update_scratch(keys.tokens, 0);
  float* p = scratch;
  float* x = scratch + part;
  alignas(16) float alpha[4];
  Prefetch pf;
  pf.plan(keys, static_cast<std::size_t>((keys.tokens + 3) / 4),
          static_cast<std::size_t>(keys.tokens) * ((rows.head_dim + 63) / 64));
  // The last tile's padding rows (repeats of the last real row, dropped by the driver) take no
  // FMAs: a tile of R live rows runs the R-row forms. (Decode with 3 query heads per kv head,
  // as SmolLM2 has, would otherwise spend a quarter of its FMAs on padding.)
  for (int r0 = 0; r0 < rows.rows; r0 += 4) {
    switch (std::min(rows.rows - r0, 4)) {
      case 1:
        tile<T, 1>(rows, r0, keys, p, x, alpha, pf);
        break;
      case 2:
        tile<T, 2>(rows, r0, keys, p, x, alpha, pf);
        break;
      case 3:
        tile<T, 3>(rows, r0, keys, p, x, alpha, pf);
        break;
      default:
        tile<T, 4>(rows, r0, keys, p, x, alpha, pf);
        break;
    }
  }
}

INFLLM_AVX512_FN void update(const MaRows& rows, const MaKeys& keys, float* scratch) {
  switch (keys.dtype) {
    case KvDtype::kF16:
      update_as<f16>(rows, keys, scratch);
      return;
    case KvDtype::kBF16:
      update_as<bf16>(rows, keys, scratch);
      return;
    case KvDtype::kF32:
      update_as<float>(rows, keys, scratch);
      return;
  }
}

// (even, odd) order within each 32-float chunk of every row and back.
INFLLM_AVX512_FN void layout_rows(float* x, std::size_t rows, int head_dim, KvDtype dtype,
                                  bool to_kernel) {
  const bool permuted = dtype == KvDtype::kF16    ? Widen<f16>::kPermuted
                        : dtype == KvDtype::kBF16 ? Widen<bf16>::kPermuted
                                                  : Widen<float>::kPermuted;
  if (!permuted) return;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const std::size_t n = rows * static_cast<std::size_t>(head_dim);
  for (std::size_t i = 0; i < n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i);
    const __m512 b = _mm512_loadu_ps(x + i + 16);
    if (to_kernel) {
      _mm512_storeu_ps(x + i, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(x + i + 16, _mm512_permutex2var_ps(a, odd, b));
    } else {
      _mm512_storeu_ps(x + i, _mm512_permutex2var_ps(a, lo, b));
      _mm512_storeu_ps(x + i + 16, _mm512_permutex2var_ps(a, hi, b));
    }
  }
}

}  // namespace

MaIsa avx512_isa() { return MaIsa{"avx512", &update, &layout_rows}; }

bool avx512_supported() {
  // __builtin_cpu_supports also checks that the OS saves the zmm state (XCR0).
  static const bool supported =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && avx2_supported();
  return supported;
}

#else

MaIsa avx512_isa() { return MaIsa{"avx512", nullptr, nullptr}; }
bool avx512_supported() { return false; }

#endif

}  // namespace infllm::cpu::detail
