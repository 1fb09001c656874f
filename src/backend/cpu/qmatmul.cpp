// qmatmul.cpp: see qmatmul.hpp.
//
// Work split: output rows in chunks of about kChunkBytes of weights (at least 4 chunks per
// thread when the matrix allows), handed out by attention_parallel_for; small matrices run on
// the calling thread. Each output row is read from memory once, front to back (a plain forward
// stream: interleaving several rows' blocks defeated the hardware prefetchers on the test VM and
// cost up to 4x); while its bytes sit in L1 the kernel runs over the activation rows in groups
// of up to kGroupRows, a group's accumulators in registers.
//
// AVX2 kernel, per block of 32 weights: widen to four f32 vectors (Q8_0: vpmovsxbd straight
// from memory; Q4_1: vpmovzxbd of 8 bytes, then the low nibbles by a mask and the high nibbles
// by a shift, which lands them in the element order of the block), t = x_b . q_b in eight lanes
// per activation row, acc += d * t. Q4_1's scales are converted eight blocks at a time (vector
// loads of the [d, m] words, one F16C conversion per four blocks) into a small f32 table; the
// m * sum(x_b) terms then cost one FMA per four blocks against the per-call block sums. One or
// two activation rows get two accumulator sets (even and odd blocks) so the FMA latency of the
// accumulation does not bound the loop. Groups of 5-8 activation rows (batched decode) take a
// wide form instead: each block is widened once into its exact weights (q * d + m), which all
// the group's rows then multiply, so the widening is shared by twice as many rows and the block
// sums drop out (about 5% faster at 8 rows than two groups of 4). The portable kernel has the
// block-sum order of work in plain C++.
#include "backend/cpu/qmatmul.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/attention_kernels.hpp"  // detail::avx2_supported
#include "backend/cpu/attention_parallel.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "core/errors.hpp"
#include "core/half.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define INFLLM_QMAT_AVX2 1
#include <immintrin.h>
#define INFLLM_AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define INFLLM_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline
#endif

namespace infllm::cpu {

namespace {

using Byte = std::uint8_t;

constexpr std::int64_t kQK = 32;         // elements per block
constexpr std::int64_t kQ4_1Bytes = 20;  // [d f16][m f16][qs 16]
constexpr std::int64_t kQ8_0Bytes = 34;  // [d f16][q int8 32]
constexpr std::size_t kGroupRows = 8;    // activation rows per kernel pass (AVX2)
constexpr std::int64_t kChunkBytes = 64 << 10;
// Below this many weight bytes (about 15 us of work on one core) the call runs on the calling
// thread alone: waking the pool costs 5 us at best, and far more on a busy machine.
constexpr std::size_t kSerialBytes = 256 << 10;

void check(bool ok, const std::string& what) {
  if (!ok) throw InternalError("qmatmul: " + what);
}

std::int64_t block_bytes(QuantType type) {
  switch (type) {
    case QuantType::kQ4_1:
      return kQ4_1Bytes;
    case QuantType::kQ8_0:
      return kQ8_0Bytes;
  }
  throw InternalError("qmatmul: unknown quant type " + std::to_string(static_cast<int>(type)));
}

float f16_at(const Byte* p) { return to_f32(f16{static_cast<std::uint16_t>(p[0] | (p[1] << 8))}); }

// One call's operands, shared by every chunk.
struct Job {
  const float* x = nullptr;  // (m, cols)
  const Byte* w = nullptr;   // rows of row_bytes
  float* y = nullptr;        // (m, rows)
  std::int64_t rows = 0, cols = 0, nb = 0;
  std::size_t row_bytes = 0;
  std::size_t m = 0;
  // Q4_1: per activation row r, at sums + r * sums_stride, the pairs (0, sum of x over block b)
  // for b < nb, zero pairs up to a multiple of 8 blocks; null for Q8_0.
  const float* sums = nullptr;
  std::size_t sums_stride = 0;
  bool accumulate = false;
};

inline void store(const Job& job, std::size_t r, std::int64_t i, float v) {
  float& out = job.y[r * static_cast<std::size_t>(job.rows) + static_cast<std::size_t>(i)];
  out = job.accumulate ? out + v : v;
}

using RowsFn = void (*)(const Job& job, std::int64_t begin, std::int64_t end);

// ---- portable -----------------------------------------------------------------------------

// x_b . q_b over 32 elements in eight partial sums (vectorizable without reassociation flags).
inline float dot32(const float* x, const float* q) {
  float p[8] = {};
  for (int j = 0; j < 32; j += 8) {
    for (int k = 0; k < 8; ++k) p[k] += x[j + k] * q[j + k];
  }
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

template <QuantType kType>
void rows_portable(const Job& job, std::int64_t begin, std::int64_t end) {
  constexpr std::size_t kMaxRows = 16;
  float acc[kMaxRows];
  float q[kQK];
  for (std::int64_t i = begin; i < end; ++i) {
    const Byte* row = job.w + static_cast<std::size_t>(i) * job.row_bytes;
    for (std::size_t r0 = 0; r0 < job.m; r0 += kMaxRows) {
      const std::size_t n = std::min(kMaxRows, job.m - r0);
      std::fill(acc, acc + n, 0.0f);
      for (std::int64_t b = 0; b < job.nb; ++b) {
        const float* xb = job.x + r0 * job.cols + b * kQK;
        if constexpr (kType == QuantType::kQ4_1) {
          const Byte* blk = row + b * kQ4_1Bytes;
          const float d = f16_at(blk), mn = f16_at(blk + 2);
          for (int j = 0; j < 16; ++j) {
            q[j] = static_cast<float>(blk[4 + j] & 0xF);
            q[j + 16] = static_cast<float>(blk[4 + j] >> 4);
          }
          const float* s = job.sums + r0 * job.sums_stride + 2 * b + 1;
          for (std::size_t r = 0; r < n; ++r) {
            acc[r] += d * dot32(xb + r * job.cols, q) + mn * s[r * job.sums_stride];
          }
        } else {
          const Byte* blk = row + b * kQ8_0Bytes;
          const float d = f16_at(blk);
          for (int j = 0; j < 32; ++j) {
            q[j] = static_cast<float>(static_cast<std::int8_t>(blk[2 + j]));
          }
          for (std::size_t r = 0; r < n; ++r) acc[r] += d * dot32(xb + r * job.cols, q);
        }
      }
      for (std::size_t r = 0; r < n; ++r) store(job, r0 + r, i, acc[r]);
    }
  }
}

// ---- AVX2 ---------------------------------------------------------------------------------

#if INFLLM_QMAT_AVX2

INFLLM_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The [d, m] words of the four Q4_1 blocks at p (bytes 0, 20, 40, 60): words 0 and 5 of the
// 32 bytes at p, 2 and 7 of the 32 bytes after.
INFLLM_AVX2_INLINE __m128i q4_1_scales4(const Byte* p) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
  const __m256i sel = _mm256_setr_epi32(0, 5, 2, 7, 0, 5, 2, 7);
  return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_blend_epi32(a, b, 0x84), sel));
}

// The scales of the n (1..8) Q4_1 blocks from p on as f32 [d0, m0, d1, m1, ...] in dm (16
// floats, zeros past n). A full group takes four vector loads and two conversions instead of
// sixteen scalar ones; the block loop then broadcasts each d with a plain load.
INFLLM_AVX2_INLINE void q4_1_scales8(const Byte* p, std::int64_t n, float* dm) {
  if (n == 8) {
    _mm256_store_ps(dm, _mm256_cvtph_ps(q4_1_scales4(p)));
    _mm256_store_ps(dm + 8, _mm256_cvtph_ps(q4_1_scales4(p + 80)));
    return;
  }
  // A partial group (the end of a row): the words are combined in general registers so the
  // vector to convert is built in registers too (via memory, it would stall on store-to-load
  // forwarding of narrower stores).
  const auto word = [&](std::int64_t k) -> std::uint64_t {
    std::uint32_t v = 0;
    if (k < n) std::memcpy(&v, p + k * kQ4_1Bytes, 4);
    return v;
  };
  const std::uint64_t w0 = word(0) | word(1) << 32, w1 = word(2) | word(3) << 32;
  const std::uint64_t w2 = word(4) | word(5) << 32, w3 = word(6) | word(7) << 32;
  _mm256_store_ps(
      dm, _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(w1), static_cast<long long>(w0))));
  _mm256_store_ps(dm + 8, _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(w3),
                                                         static_cast<long long>(w2))));
}

// acc[r] += d * (x_r,b . q_b) for the R rows at xb (stride cols), q_b in q0..q3.
template <int R>
INFLLM_AVX2_INLINE void fma_rows(const float* xb, std::int64_t cols, __m256 q0, __m256 q1,
                                 __m256 q2, __m256 q3, __m256 d, __m256* acc) {
  for (int r = 0; r < R; ++r) {
    const float* xr = xb + r * cols;
    __m256 t = _mm256_mul_ps(_mm256_loadu_ps(xr), q0);
    t = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8), q1, t);
    t = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 16), q2, t);
    t = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 24), q3, t);
    acc[r] = _mm256_fmadd_ps(t, d, acc[r]);
  }
}

// 8 int8 at p as f32.
INFLLM_AVX2_INLINE __m256 widen_i8(const Byte* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// acc[r] += d * (x_r,b . q_b) of one Q4_1 block for R rows; d at *d.
template <int R>
INFLLM_AVX2_INLINE void q4_1_block(const Byte* blk, const float* xb, std::int64_t cols,
                                   const float* d, __m256* acc) {
  const __m256i v0 =
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 4)));
  const __m256i v1 =
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 12)));
  const __m256i low = _mm256_set1_epi32(0xF);
  fma_rows<R>(xb, cols, _mm256_cvtepi32_ps(_mm256_and_si256(v0, low)),
              _mm256_cvtepi32_ps(_mm256_and_si256(v1, low)),
              _mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)),
              _mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), _mm256_broadcast_ss(d), acc);
}

// acc[r] += d * (x_r,b . q_b) of one Q8_0 block for R rows (d broadcast as f16, then widened).
template <int R>
INFLLM_AVX2_INLINE void q8_0_block(const Byte* blk, const float* xb, std::int64_t cols,
                                   __m256* acc) {
  std::uint16_t d;
  std::memcpy(&d, blk, 2);
  fma_rows<R>(xb, cols, widen_i8(blk + 2), widen_i8(blk + 10), widen_i8(blk + 18),
              widen_i8(blk + 26), _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(d))), acc);
}

// Block k of a group of 8 from blk on into accumulator set acc.
template <QuantType kType, int R>
INFLLM_AVX2_INLINE void group_block(const Byte* blk, int k, const float* xb, std::int64_t cols,
                                    const float* dm, __m256* acc) {
  if constexpr (kType == QuantType::kQ4_1) {
    q4_1_block<R>(blk + k * kQ4_1Bytes, xb + k * kQK, cols, dm + 2 * k, acc);
  } else {
    q8_0_block<R>(blk + k * kQ8_0Bytes, xb + k * kQK, cols, acc);
  }
}

// out[r] = row . x_r for R (<= 4) activation rows at x (cols apart). The row is read in order,
// in groups of 8 blocks (a plain forward stream for the hardware prefetchers); one or two rows
// keep two accumulator sets (even and odd blocks) so the FMA latency of the accumulation does
// not bound the loop. Q4_1: s2 holds the activation rows' block sums as pairs (0, sum) every
// s2_stride floats; one FMA with the [d, m, ...] scales of four blocks adds m * sum in the odd
// lanes (d * 0 in the even ones) to the accumulator.
template <QuantType kType, int R>
INFLLM_AVX2_FN void row_kernel(const Byte* row, std::int64_t nb, const float* x, std::int64_t cols,
                               const float* s2, std::size_t s2_stride, float* out) {
  constexpr bool kQ4 = kType == QuantType::kQ4_1;
  constexpr std::int64_t kBytes = kQ4 ? kQ4_1Bytes : kQ8_0Bytes;
  constexpr int kSets = R <= 2 ? 2 : 1;
  __m256 acc[kSets][R];
  for (int u = 0; u < kSets; ++u) {
    for (int r = 0; r < R; ++r) acc[u][r] = _mm256_setzero_ps();
  }
  alignas(32) float dm[16];
  for (std::int64_t b0 = 0; b0 < nb; b0 += 8) {
    const std::int64_t n = std::min<std::int64_t>(8, nb - b0);
    const Byte* blk = row + b0 * kBytes;
    const float* xb = x + b0 * kQK;
    if constexpr (kQ4) {
      q4_1_scales8(blk, n, dm);
      const __m256 lo = _mm256_load_ps(dm), hi = _mm256_load_ps(dm + 8);
      for (int r = 0; r < R; ++r) {
        const float* s = s2 + r * s2_stride + 2 * b0;
        acc[0][r] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(s), acc[0][r]);
        acc[kSets - 1][r] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(s + 8), acc[kSets - 1][r]);
      }
    }
    if (n == 8) {
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) group_block<kType, R>(blk, k, xb, cols, dm, acc[k % kSets]);
    } else {
      for (int k = 0; k < n; ++k) group_block<kType, R>(blk, k, xb, cols, dm, acc[0]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m256 a = acc[0][r];
    for (int u = 1; u < kSets; ++u) a = _mm256_add_ps(a, acc[u][r]);
    out[r] = hsum(a);
  }
}

// out[r] = row . x_r for R (5..8) activation rows: the "wide" form for batched decode. Each
// block is widened once into the four vectors of its exact weights (Q4_1: q * d + m, Q8_0:
// q * d) and every row adds x_r,b * w_b with four FMAs, so a block's widening and scaling are
// shared by up to 8 rows and the rows need no block sums; one accumulator per row (8 rows keep
// 8 chains of 4 FMAs per block in flight, enough to cover the FMA latency).
template <QuantType kType, int R>
INFLLM_AVX2_FN void row_kernel_wide(const Byte* row, std::int64_t nb, const float* x,
                                    std::int64_t cols, float* out) {
  constexpr bool kQ4 = kType == QuantType::kQ4_1;
  constexpr std::int64_t kBytes = kQ4 ? kQ4_1Bytes : kQ8_0Bytes;
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  alignas(32) float dm[16];
  for (std::int64_t b0 = 0; b0 < nb; b0 += 8) {
    const std::int64_t n = std::min<std::int64_t>(8, nb - b0);
    if constexpr (kQ4) q4_1_scales8(row + b0 * kBytes, n, dm);
    for (std::int64_t k = 0; k < n; ++k) {
      const Byte* blk = row + (b0 + k) * kBytes;
      __m256 w[4];
      if constexpr (kQ4) {
        const __m256i v0 =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 4)));
        const __m256i v1 =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 12)));
        const __m256i low = _mm256_set1_epi32(0xF);
        const __m256 d = _mm256_broadcast_ss(dm + 2 * k), m = _mm256_broadcast_ss(dm + 2 * k + 1);
        w[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, low)), d, m);
        w[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, low)), d, m);
        w[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), d, m);
        w[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), d, m);
      } else {
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        const __m256 d = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
        for (int j = 0; j < 4; ++j) w[j] = _mm256_mul_ps(widen_i8(blk + 2 + 8 * j), d);
      }
      const float* xb = x + (b0 + k) * kQK;
      for (int r = 0; r < R; ++r) {
        const float* xr = xb + r * cols;
        for (int j = 0; j < 4; ++j)
          acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8 * j), w[j], acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// One group of activation rows at x against weight row `row`: out[r] = row . x_r. Groups of
// 5-8 rows take the wide form; 1-4 rows (a group of 4, the end of a batch and batch-1 decode,
// which streams the weights) the block-sum form. kGroupForms[n - 1] serves n rows.
using GroupFn = void (*)(const Byte* row, const Job& job, const float* x, const float* s,
                         float* out);
template <QuantType kType, int R>
INFLLM_AVX2_FN void sums_form(const Byte* row, const Job& job, const float* x, const float* s,
                              float* out) {
  row_kernel<kType, R>(row, job.nb, x, job.cols, s, job.sums_stride, out);
}
template <QuantType kType, int R>
INFLLM_AVX2_FN void wide_form(const Byte* row, const Job& job, const float* x, const float*,
                              float* out) {
  row_kernel_wide<kType, R>(row, job.nb, x, job.cols, out);
}
template <QuantType kType>
constexpr GroupFn kGroupForms[kGroupRows] = {
    &sums_form<kType, 1>, &sums_form<kType, 2>, &sums_form<kType, 3>, &sums_form<kType, 4>,
    &wide_form<kType, 5>, &wide_form<kType, 6>, &wide_form<kType, 7>, &wide_form<kType, 8>};

// Output rows [begin, end) in pieces of about kChunkBytes of weights; in each piece a group of
// up to kGroupRows activation rows at a time: the group's rows stay in L1 (8 rows of 576 floats
// are 18 KB) while the piece's weight rows pass, read from memory front to back for the first
// group and from L2 for the next ones. (Weight row outer, groups inner kept each weight row in
// L1 instead, but then 16 activation rows, 36-96 KB, came from L2 for every weight row: batch
// 16 took 2.5x the time of batch 8 per step, on one thread.)
template <QuantType kType>
INFLLM_AVX2_FN void rows_avx2(const Job& job, std::int64_t begin, std::int64_t end) {
  float out[kGroupRows];
  const std::int64_t piece =
      std::max<std::int64_t>(1, kChunkBytes / static_cast<std::int64_t>(job.row_bytes));
  for (std::int64_t p0 = begin; p0 < end; p0 += piece) {
    const std::int64_t p1 = std::min(end, p0 + piece);
    for (std::size_t r0 = 0; r0 < job.m; r0 += kGroupRows) {
      const std::size_t n = std::min(kGroupRows, job.m - r0);
      const float* x = job.x + r0 * job.cols;
      const float* s = job.sums ? job.sums + r0 * job.sums_stride : nullptr;
      const GroupFn form = kGroupForms<kType>[n - 1];
      for (std::int64_t i = p0; i < p1; ++i) {
        form(job.w + static_cast<std::size_t>(i) * job.row_bytes, job, x, s, out);
        for (std::size_t r = 0; r < n; ++r) store(job, r0 + r, i, out[r]);
      }
    }
  }
}

#endif

RowsFn pick(QuantType type, QmatKernel kernel) {
  bool avx2 = false;
  if (kernel == QmatKernel::kAvx2) {
    check(detail::avx2_supported(), "the AVX2 kernel needs an AVX2+FMA+F16C CPU");
    avx2 = true;
  } else if (kernel == QmatKernel::kAuto) {
    avx2 = detail::avx2_supported();
  } else {
    check(kernel == QmatKernel::kPortable, "unknown kernel");
  }
#if INFLLM_QMAT_AVX2
  if (avx2) {
    return type == QuantType::kQ4_1 ? &rows_avx2<QuantType::kQ4_1> : &rows_avx2<QuantType::kQ8_0>;
  }
#endif
  return type == QuantType::kQ4_1 ? &rows_portable<QuantType::kQ4_1>
                                  : &rows_portable<QuantType::kQ8_0>;
}

}  // namespace

std::size_t quant_row_bytes(QuantType type, std::int64_t cols) {
  check(cols >= 0 && cols % kQK == 0,
        "cols " + std::to_string(cols) + " is not a non-negative multiple of 32");
  return static_cast<std::size_t>(cols / kQK * block_bytes(type));
}

void qmatmul(const float* x, const QuantMatrix& w, float* y, std::size_t m, bool accumulate,
             QmatKernel kernel) {
  check(w.cols > 0 && w.cols % kQK == 0,
        "cols " + std::to_string(w.cols) + " is not a positive multiple of 32");
  check(w.rows >= 0, "negative rows");
  const std::size_t row_bytes = quant_row_bytes(w.type, w.cols);
  const RowsFn fn = pick(w.type, kernel);
  if (m == 0 || w.rows == 0) return;
  check(x != nullptr && y != nullptr && w.data != nullptr, "null pointer");

  Job job;
  job.x = x;
  job.w = reinterpret_cast<const Byte*>(w.data);
  job.y = y;
  job.rows = w.rows;
  job.cols = w.cols;
  job.nb = w.cols / kQK;
  job.row_bytes = row_bytes;
  job.m = m;
  job.accumulate = accumulate;

  // Q4_1's per-block sums of x (layout: Job::sums).
  thread_local std::vector<float> sums;
  if (w.type == QuantType::kQ4_1) {
    job.sums_stride = static_cast<std::size_t>((job.nb + 7) / 8 * 16);
    sums.assign(m * job.sums_stride, 0.0f);
    for (std::size_t r = 0; r < m; ++r) {
      const float* xr = x + r * static_cast<std::size_t>(w.cols);
      float* sr = sums.data() + r * job.sums_stride;
      for (std::int64_t b = 0; b < job.nb; ++b) {
        float p[8] = {};
        for (int j = 0; j < kQK; j += 8) {
          for (int k = 0; k < 8; ++k) p[k] += xr[b * kQK + j + k];
        }
        sr[2 * b + 1] = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
      }
    }
    job.sums = sums.data();
  }

  const std::size_t total = row_bytes * static_cast<std::size_t>(w.rows);
  const int threads = total < kSerialBytes ? 1 : std::max(1, cpu::threads());
  if (threads == 1) {
    fn(job, 0, w.rows);
    return;
  }
  // About kChunkBytes per chunk, and at least 4 chunks per thread (items are handed out one at a
  // time, so the threads finish together).
  std::int64_t chunk = kChunkBytes / static_cast<std::int64_t>(row_bytes);
  chunk = std::max<std::int64_t>(1, std::min(chunk, w.rows / (4 * threads)));
  const std::int64_t chunks = (w.rows + chunk - 1) / chunk;
  attention_parallel_for(chunks, threads, [&](std::int64_t c) {
    fn(job, c * chunk, std::min(w.rows, (c + 1) * chunk));
  });
}

const char* qmat_auto_kernel_name() { return detail::avx2_supported() ? "avx2" : "portable"; }

bool qmat_kernel_supported(QmatKernel kernel) {
  return kernel != QmatKernel::kAvx2 || detail::avx2_supported();
}

}  // namespace infllm::cpu
