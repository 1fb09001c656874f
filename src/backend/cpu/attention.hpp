// attention.hpp: micro-attention (MA) over rBlocks in a pool, and merging partial states (CPU).
//
// MA is attention of a request's queries over any subset of its KV blocks, wherever their slots
// are in a pool. It returns partial states (o, m, l) (core/attention_state.hpp) that merge exactly
// into the attention over the union of the subsets, so a request's blocks may be spread over
// ranks (DistAttention): each rank runs MA over the blocks it holds and the home merges.
//
//   request's logical blocks   b0   b1   b2   b3   b4   b5 (tail, partial)
//   where they live            home r2   r2   home r5  home
//   MA partitions              {b0,b3,b5} at home, {b1,b2} on r2, {b4} on r5  -> 3 states
//   merge_partials(3 states) = attention over b0..b5
//
// One call covers one layer and one pool, and any number of requests. Each request brings its
// queries (1 token for decode, a chunk for prefill) with their absolute positions and the list of
// blocks with the positions they cover. The causal mask is by absolute position: key position
// j is visible to query position p iff j <= p. Every remote block is full and older than every
// query, so the mask only bites on the blocks the chunk itself writes (the caller writes the
// chunk's K and V into its blocks before calling MA; a chunk may start mid-block).
//
// Grouped-query attention: q_heads = group * kv_heads; query head qh reads kv head qh / group.
// The fast kernel reads each kv head's K and V once for all query heads (and tokens) of its group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "backend/attention_types.hpp"

namespace infllm::cpu {

// The pool, block, query and output types are the backend's (backend/attention_types.hpp);
// the CPU build adds the choice of kernel.
using infllm::KvBlock;
using infllm::KvPool;
using infllm::MaOutput;
using infllm::MaQuery;
using infllm::MaResult;
using infllm::PartialsView;

// Which implementation runs (tests pick; the model uses kAuto).
enum class MaKernel {
  kAuto,       // the fastest this CPU supports
  kReference,  // straightforward loops, fp64 accumulation, one thread
  kPortable,   // the fast kernel's structure in plain C++ (any CPU), threaded
  kAvx2,       // x86-64 AVX2 + FMA + F16C intrinsics, threaded; InternalError if unsupported
  kAvx512,     // x86-64 AVX-512 F/BW/DQ/VL, head_dim % 32 == 0; InternalError if unsupported
};

// The backend's parameters plus the kernel to run.
// An aggregate: cpu::MaParams{{layer, q_heads, scale, result}, kernel}, or {params} for kAuto.
struct MaParams : infllm::MaParams {
  MaKernel kernel = MaKernel::kAuto;
};

// Runs MA for every query; outputs[i] receives queries[i]'s result. Threads come from
// cpu::threads(), split across (request, kv head, query rows, block range). Misuse (a slot
// outside the pool, a null pointer, q_heads not a multiple of kv_heads, a block's tokens outside
// 1..block_tokens, a layer out of range) throws InternalError.
void micro_attention(const KvPool& pool, const MaParams& params, std::span<const MaQuery> queries,
                     std::span<const MaOutput> outputs);

// The kernel kAuto picks on this CPU for head_dim 128 ("avx512", "avx2" or "portable"; AVX-512
// needs head_dim % 32 == 0, AVX2 head_dim % 8 == 0).
const char* ma_auto_kernel_name();
bool ma_kernel_supported(MaKernel kernel);

// acc <- merge(acc, part), row by row. acc must not alias part.
void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                         int head_dim);

// out <- the merge of every partition's states (none: the empty state). out may not alias parts.
// With MaResult::kNormalized, out.o receives the final output and out.m, out.l may be null.
void merge_partials(std::span<const PartialsView> parts, std::int64_t rows, int head_dim,
                    const MaOutput& out, MaResult result = MaResult::kPartial);

// out (rows, head_dim) <- o / l; rows that saw no key get 0. out may alias states.o.
void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim, float* out);

}  // namespace infllm::cpu
