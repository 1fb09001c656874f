// attention_avx2.cpp: the MA block step with AVX2 + FMA + F16C intrinsics (x86-64).
//
// Every function here carries the target attribute, so the rest of the binary stays baseline
// x86-64 and attention.cpp picks this step only when the CPU reports the features at run time.
// Shapes: a tile is kMaxTileRows = 4 query rows (the driver pads rows to a multiple of 4; a tile
// whose last rows are padding runs forms for its 1-3 live rows), a block is T tokens of head_dim
// elements, head_dim a multiple of 8 (the weighted sum of the merge, at the end of the file,
// takes any length). K and V are read straight from the pool and widened to f32 in registers
// (F16C for f16, a shift for bf16): decode is a stream over the KV, and a conversion pass through
// scratch would cost as much as the math.
//
//   scores:  x[t][r] (T rounded up to 2, 4 rows) = q[r] . k[t], two tokens per pass so each q
//            load feeds two FMAs; four rows' dot products reduced together with hadd
//   softmax: per row, m_new = max(m, max_t x), p = 2^(x - m_new) by a vector exp2
//   values:  o[r][d:d+16] = o * alpha[r] + sum_t p[t][r] * v[t][d:d+16], rows in registers
// Also here: the AVX2 weighted sum behind merge_partials.
#include "backend/cpu/attention_kernels.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define INFLLM_ATTENTION_AVX2 1
#endif

#if INFLLM_ATTENTION_AVX2
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/attention_state.hpp"
#include "core/half.hpp"

#define INFLLM_AVX2_FN __attribute__((target("avx2,fma,f16c")))
#endif

namespace infllm::cpu::detail {

#if INFLLM_ATTENTION_AVX2
namespace {

// 2^x for x <= 0 (and -inf): 0 below -126 (a weight under 2^-126 of the row's max is dropped),
// else kExp2Taylor's polynomial of 2^f on f in [-0.5, 0.5] times 2^n.
INFLLM_AVX2_FN inline __m256 exp2_nonpositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-126.0f);
  const __m256 valid = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  const __m256 xc = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(xc, n);
  __m256 p = _mm256_set1_ps(kExp2Taylor[0]);
  for (int k = 1; k < 8; ++k) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2Taylor[k]));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(valid, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// 8 consecutive KV elements of type T as f32.
template <typename T>
INFLLM_AVX2_FN inline __m256 load8(const T* p);
template <>
INFLLM_AVX2_FN inline __m256 load8<float>(const float* p) {
  return _mm256_loadu_ps(p);
}
template <>
INFLLM_AVX2_FN inline __m256 load8<f16>(const f16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <>
INFLLM_AVX2_FN inline __m256 load8<bf16>(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The sums of a0..a3 as one vector [sum a0, sum a1, sum a2, sum a3].
INFLLM_AVX2_FN inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// x (round_up(T, 2), 4) <- scores of rows r0..r0+3; padding tokens get -inf. Only the first R
// rows are live: the others (the driver's padding) score 0 and take no FMAs.
template <typename T, int R>
INFLLM_AVX2_FN void tile_scores(const MaRows& rows, int r0, const MaKeys& keys, float* x) {
  const std::ptrdiff_t hd = rows.head_dim;
  const int tokens = keys.tokens;
  const float* q = rows.q + static_cast<std::size_t>(r0) * hd;
  const T* k = reinterpret_cast<const T*>(keys.k);
  // Prefetch of the next runs into L2 (T1), spread over the token pairs so it never floods the
  // miss buffers. NOTE: measured on the dev VM (EPYC, 1 thread, 64K tokens, CPU time): no
  // prefetch 8 GB/s for f32 KV; into L1 (T0) 8.5; into L2 (T1) 15 of a 25 GB/s sequential read.
  const std::size_t lines = r0 == 0 && keys.next_k != nullptr ? keys.run_bytes / 64 : 0;
  const std::size_t per_pair = (lines + (tokens + 1) / 2 - 1) / ((tokens + 1) / 2);
  std::size_t line = 0;
  for (int t = 0; t < tokens; t += 2) {
    for (std::size_t i = 0; i < per_pair && line < lines; ++i, ++line) {
      _mm_prefetch(reinterpret_cast<const char*>(keys.next_k + 64 * line), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(keys.next_v + 64 * line), _MM_HINT_T1);
    }
    const T* k0 = k + static_cast<std::size_t>(t) * hd;
    const T* k1 = t + 1 < tokens ? k0 + hd : k0;
    __m256 a0[4], a1[4];
    for (int r = 0; r < 4; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
      const __m256 kv0 = load8(k0 + d);
      const __m256 kv1 = load8(k1 + d);
      for (int r = 0; r < R; ++r) {
        const __m256 qv = _mm256_loadu_ps(q + r * hd + d);
        a0[r] = _mm256_fmadd_ps(qv, kv0, a0[r]);
        a1[r] = _mm256_fmadd_ps(qv, kv1, a1[r]);
      }
    }
    const __m128 s0 = reduce4(a0[0], a0[1], a0[2], a0[3]);
    const __m128 s1 = t + 1 < tokens ? reduce4(a1[0], a1[1], a1[2], a1[3]) : _mm_set1_ps(-INFINITY);
    _mm256_storeu_ps(x + std::ptrdiff_t{4} * t, _mm256_set_m128(s1, s0));
  }
  if (keys.masked) {
    for (int t = 0; t < tokens; ++t) {
      for (int r = 0; r < 4; ++r) {
        if (keys.first_pos + t > rows.pos[r0 + r]) x[4 * t + r] = -INFINITY;
      }
    }
  }
}

// Online-softmax update of rows r0..r0+3: x becomes the weights p; alpha (4) the factor for the
// rows' previous o.
INFLLM_AVX2_FN void tile_softmax(const MaRows& rows, int r0, int T, float* x, float* alpha) {
  const int pairs = (T + 1) / 2;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (int i = 0; i < pairs; ++i)
    vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + std::ptrdiff_t{8} * i));
  alignas(16) float block_max[4];
  _mm_store_ps(block_max, _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1)));
  alignas(16) float m_sub[4];
  for (int r = 0; r < 4; ++r) {
    // The block's own scale, 2^(block_max - m), is folded into p below; only the running
    // state's factor is needed.
    const float m = std::fmax(rows.m[r0 + r], block_max[r]);
    alpha[r] = partition_scale(rows.m[r0 + r], m);
    rows.m[r0 + r] = m;
    // A row with nothing visible yet has every x = -inf; subtracting 0 keeps p = 2^-inf = 0.
    m_sub[r] = m == -INFINITY ? 0.0f : m;
  }
  const __m128 m4 = _mm_load_ps(m_sub);
  const __m256 m8 = _mm256_set_m128(m4, m4);
  __m256 vsum = _mm256_setzero_ps();
  for (int i = 0; i < pairs; ++i) {
    const __m256 p =
        exp2_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + std::ptrdiff_t{8} * i), m8));
    _mm256_storeu_ps(x + std::ptrdiff_t{8} * i, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  alignas(16) float sum[4];
  _mm_store_ps(sum, _mm_add_ps(_mm256_castps256_ps128(vsum), _mm256_extractf128_ps(vsum, 1)));
  for (int r = 0; r < 4; ++r) rows.l[r0 + r] = rows.l[r0 + r] * alpha[r] + sum[r];
}

// o[r0..r0+R-1][d:d+16] <- o * alpha + p @ V[:, d:d+16] for the tile's R live rows. Eight
// named accumulators: GCC spills arrays of __m256 here.
template <typename T, int R>
INFLLM_AVX2_FN inline void tile_values16(const MaRows& rows, int r0, const MaKeys& keys,
                                         const float* p, const float* alpha, int d) {
  const std::ptrdiff_t hd = rows.head_dim;
  const int tokens = keys.tokens;
  float* o0 = rows.o + static_cast<std::size_t>(r0) * hd + d;
  float* o1 = o0 + hd;
  float* o2 = o1 + hd;
  float* o3 = o2 + hd;
  const __m256 z = _mm256_setzero_ps();
  __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(o0), _mm256_set1_ps(alpha[0]));
  __m256 b0 = _mm256_mul_ps(_mm256_loadu_ps(o0 + 8), _mm256_set1_ps(alpha[0]));
  __m256 a1 = z, b1 = z, a2 = z, b2 = z, a3 = z, b3 = z;
  if constexpr (R > 1) {
    a1 = _mm256_mul_ps(_mm256_loadu_ps(o1), _mm256_set1_ps(alpha[1]));
    b1 = _mm256_mul_ps(_mm256_loadu_ps(o1 + 8), _mm256_set1_ps(alpha[1]));
  }
  if constexpr (R > 2) {
    a2 = _mm256_mul_ps(_mm256_loadu_ps(o2), _mm256_set1_ps(alpha[2]));
    b2 = _mm256_mul_ps(_mm256_loadu_ps(o2 + 8), _mm256_set1_ps(alpha[2]));
  }
  if constexpr (R > 3) {
    a3 = _mm256_mul_ps(_mm256_loadu_ps(o3), _mm256_set1_ps(alpha[3]));
    b3 = _mm256_mul_ps(_mm256_loadu_ps(o3 + 8), _mm256_set1_ps(alpha[3]));
  }
  const T* v = reinterpret_cast<const T*>(keys.v) + d;
  for (int t = 0; t < tokens; ++t, v += hd, p += 4) {
    const __m256 va = load8(v);
    const __m256 vb = load8(v + 8);
    __m256 w = _mm256_broadcast_ss(p);
    a0 = _mm256_fmadd_ps(w, va, a0);
    b0 = _mm256_fmadd_ps(w, vb, b0);
    if constexpr (R > 1) {
      w = _mm256_broadcast_ss(p + 1);
      a1 = _mm256_fmadd_ps(w, va, a1);
      b1 = _mm256_fmadd_ps(w, vb, b1);
    }
    if constexpr (R > 2) {
      w = _mm256_broadcast_ss(p + 2);
      a2 = _mm256_fmadd_ps(w, va, a2);
      b2 = _mm256_fmadd_ps(w, vb, b2);
    }
    if constexpr (R > 3) {
      w = _mm256_broadcast_ss(p + 3);
      a3 = _mm256_fmadd_ps(w, va, a3);
      b3 = _mm256_fmadd_ps(w, vb, b3);
    }
  }
  _mm256_storeu_ps(o0, a0);
  _mm256_storeu_ps(o0 + 8, b0);
  if constexpr (R > 1) {
    _mm256_storeu_ps(o1, a1);
    _mm256_storeu_ps(o1 + 8, b1);
  }
  if constexpr (R > 2) {
    _mm256_storeu_ps(o2, a2);
    _mm256_storeu_ps(o2 + 8, b2);
  }
  if constexpr (R > 3) {
    _mm256_storeu_ps(o3, a3);
    _mm256_storeu_ps(o3 + 8, b3);
  }
}

// The same for 8 columns (head_dim % 16 == 8), all 4 rows (padding included: a rare shape).
template <typename T>
INFLLM_AVX2_FN inline void tile_values8(const MaRows& rows, int r0, const MaKeys& keys,
                                        const float* p, const float* alpha, int d) {
  const std::ptrdiff_t hd = rows.head_dim;
  const int tokens = keys.tokens;
  float* o = rows.o + static_cast<std::size_t>(r0) * hd + d;
  __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(o), _mm256_set1_ps(alpha[0]));
  __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(o + hd), _mm256_set1_ps(alpha[1]));
  __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(o + 2 * hd), _mm256_set1_ps(alpha[2]));
  __m256 a3 = _mm256_mul_ps(_mm256_loadu_ps(o + 3 * hd), _mm256_set1_ps(alpha[3]));
  const T* v = reinterpret_cast<const T*>(keys.v) + d;
  for (int t = 0; t < tokens; ++t, v += hd, p += 4) {
    const __m256 va = load8(v);
    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p), va, a0);
    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 1), va, a1);
    a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 2), va, a2);
    a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 3), va, a3);
  }
  _mm256_storeu_ps(o, a0);
  _mm256_storeu_ps(o + hd, a1);
  _mm256_storeu_ps(o + 2 * hd, a2);
  _mm256_storeu_ps(o + 3 * hd, a3);
}

// One tile of 4 rows, the first R live.
template <typename T, int R>
INFLLM_AVX2_FN void tile(const MaRows& rows, int r0, const MaKeys& keys, float* x, float* alpha) {
  tile_scores<T, R>(rows, r0, keys, x);
  tile_softmax(rows, r0, keys.tokens, x, alpha);
  int d = 0;
  for (; d + 16 <= rows.head_dim; d += 16) tile_values16<T, R>(rows, r0, keys, x, alpha, d);
  if (d < rows.head_dim) tile_values8<T>(rows, r0, keys, x, alpha, d);
}

template <typename T>
INFLLM_AVX2_FN void update_as(const MaRows& rows, const MaKeys& keys, float* scratch) {
  alignas(16) float alpha[4];
  // The last tile's padding rows (repeats of the last live row, dropped by the driver) take no
  // FMAs in the scores and the 16-column values pass.
  for (int r0 = 0; r0 < rows.rows; r0 += 4) {
    switch (std::min(rows.rows - r0, 4)) {
      case 1:
        tile<T, 1>(rows, r0, keys, scratch, alpha);
        break;
      case 2:
        tile<T, 2>(rows, r0, keys, scratch, alpha);
        break;
      case 3:
        tile<T, 3>(rows, r0, keys, scratch, alpha);
        break;
      default:
        tile<T, 4>(rows, r0, keys, scratch, alpha);
        break;
    }
  }
}

INFLLM_AVX2_FN void update(const MaRows& rows, const MaKeys& keys, float* scratch) {
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

INFLLM_AVX2_FN void weighted_sum_avx2(float* out, const float* const* x, const float* scale,
                                      int parts, int n) {
  // 32 columns at a time in four accumulators, every partition's row added before the store.
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int p = 0; p < parts; ++p) {
      const __m256 s = _mm256_broadcast_ss(scale + p);
      const float* xp = x[p] + i;
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp), s, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 8), s, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 16), s, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 24), s, a3);
    }
    _mm256_storeu_ps(out + i, a0);
    _mm256_storeu_ps(out + i + 8, a1);
    _mm256_storeu_ps(out + i + 16, a2);
    _mm256_storeu_ps(out + i + 24, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_setzero_ps();
    for (int p = 0; p < parts; ++p) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(x[p] + i), _mm256_broadcast_ss(scale + p), a);
    }
    _mm256_storeu_ps(out + i, a);
  }
  for (; i < n; ++i) {
    float a = 0.0f;
    for (int p = 0; p < parts; ++p) a += x[p][i] * scale[p];
    out[i] = a;
  }
}

}  // namespace

MaIsa avx2_isa() { return MaIsa{"avx2", &update}; }

bool avx2_supported() {
  static const bool supported = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool f16c = (c & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported;
}

#else

MaIsa avx2_isa() { return MaIsa{"avx2", nullptr}; }
bool avx2_supported() { return false; }

#endif

void weighted_sum_portable(float* out, const float* const* x, const float* scale, int parts,
                           int n) {
  for (int i = 0; i < n; ++i) out[i] = 0.0f;
  for (int p = 0; p < parts; ++p) {
    for (int i = 0; i < n; ++i) out[i] += x[p][i] * scale[p];
  }
}

WeightedSumFn weighted_sum_fn() {
#if INFLLM_ATTENTION_AVX2
  if (avx2_supported()) return &weighted_sum_avx2;
#endif
  return &weighted_sum_portable;
}

}  // namespace infllm::cpu::detail
