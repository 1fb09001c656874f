// attention_kernels.hpp: the per-block step of the fast MA kernels (internal to the backend).
//
// attention.cpp drives MA: it splits the work into items of (request, kv heads, query rows, block
// range), gathers each item's query rows, and hands every block's K and V runs of each of the
// item's kv heads, as stored in the pool, to one of the functions below, which fold them into
// the rows' running states (online softmax, base 2, see core/attention_state.hpp). The portable
// version is plain C++ (it converts f16/bf16 to f32 into scratch first); the AVX2 and AVX-512
// versions convert in registers as they load, so each KV byte is touched once, and are compiled
// for their target alone (function attributes, so nothing else in the binary needs AVX2).
// Also here: the weighted sum behind merge_partials (one row of the merge of partial states).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/block_geometry.hpp"

namespace infllm::cpu::detail {

// Query rows of one (request, kv head): row = (query token, head within the group), token-major,
// so positions never decrease along the rows.
struct MaRows {
  const float* q = nullptr;           // (rows, head_dim) queries times scale * log2(e)
  const std::int64_t* pos = nullptr;  // (rows) absolute position of each row's query token
  float* o = nullptr;                 // (rows, head_dim) running unnormalised outputs
  float* m = nullptr;                 // (rows) running max, log2 units
  float* l = nullptr;                 // (rows) running sum of exponentials
  // Live rows. The buffers above hold rows rounded up to a multiple of kMaxTileRows: the padding
  // rows repeat the last live row and their results are dropped, so a kernel may skip their work
  // (their running state is then unspecified).
  int rows = 0;
  int head_dim = 0;
};

// One block's K and V runs of one kv head, as stored in the pool.
struct MaKeys {
  const std::byte* k = nullptr;  // (tokens, head_dim) of dtype
  const std::byte* v = nullptr;  // (tokens, head_dim) of dtype
  KvDtype dtype = KvDtype::kF32;
  std::int64_t first_pos = 0;  // position of token 0
  int tokens = 0;
  bool masked = false;  // some token lies after some row's position: apply the causal mask
  // The runs the item reads next (next kv head, or the next block's first), to prefetch while
  // this one computes: each run starts on a fresh page where hardware prefetchers stop, and
  // blocks sit anywhere in the pool. Null at the item's end.
  const std::byte* next_k = nullptr;
  const std::byte* next_v = nullptr;
  std::size_t run_bytes = 0;  // bytes of one K (or V) run: tokens * head_dim * elem
};

// 2^f for f in [-0.5, 0.5]: a degree-7 Taylor polynomial (ln 2)^k / k!, highest power first,
// for Horner's rule (relative error < 1e-8 before rounding). The SIMD kernels' exp2 of
// non-positive weights multiplies it by 2^n.
inline constexpr float kExp2Taylor[8] = {1.5252733804059841e-05f, 1.5403530393381608e-04f,
                                         1.3333558146428443e-03f, 9.6181291076284772e-03f,
                                         5.5504108664821580e-02f, 2.4022650695910071e-01f,
                                         6.9314718055994531e-01f, 1.0f};

// Rows processed together: K and V are read from L1 once per tile of this many rows.
inline constexpr int kMaxTileRows = 4;

// Floats of scratch a BlockUpdateFn needs for blocks of `tokens` tokens of `head_dim`: the
// tile's scores (kMaxTileRows, tokens rounded up to 8) and f32 copies of K and V.
inline std::size_t block_update_scratch(int tokens, int head_dim) {
  const auto t = static_cast<std::size_t>(tokens);
  return kMaxTileRows * ((t + 7) / 8 * 8) + 2 * t * static_cast<std::size_t>(head_dim);
}

using BlockUpdateFn = void (*)(const MaRows& rows, const MaKeys& keys, float* scratch);

// Reorders the head_dim axis of `rows` rows of head_dim floats into the order a kernel widens a
// dtype's K and V in (to_kernel), or back. The driver applies it to the scaled queries before an
// item's first block and to the outputs after its last; dot products and the online softmax do
// not care about the order as long as q, K, V and o share it.
using LayoutFn = void (*)(float* x, std::size_t rows, int head_dim, KvDtype dtype, bool to_kernel);

struct MaIsa {
  const char* name;
  BlockUpdateFn update;
  LayoutFn layout = nullptr;  // null: natural order
};

// out[i] = sum over p < parts of x[p][i] * scale[p], for i < n: one row of merging partial
// states, each output element written once. out may not alias any x[p].
using WeightedSumFn = void (*)(float* out, const float* const* x, const float* scale, int parts,
                               int n);
// The AVX2 version when this CPU has it, else weighted_sum_portable.
WeightedSumFn weighted_sum_fn();
void weighted_sum_portable(float* out, const float* const* x, const float* scale, int parts, int n);

MaIsa portable_isa();
// AVX2 + FMA + F16C, head_dim a multiple of 8. Null functions when not compiled in.
MaIsa avx2_isa();
bool avx2_supported();  // compiled in and this CPU has it
// AVX-512 F/BW/DQ/VL (and the AVX2 set), head_dim a multiple of 32. Null functions when not
// compiled in.
MaIsa avx512_isa();
bool avx512_supported();  // compiled in, and this CPU and OS have it

}  // namespace infllm::cpu::detail
