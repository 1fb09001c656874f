// attention.cuh: micro-attention over rBlocks on the GPU, and the partial-state kernels.
//
// The work of one MaParams call (backend/attention_types.hpp) is cut into items, one thread
// block each:
//
//   item = (request, kv head, up to kAttnRows query rows, a run of the request's blocks)
//
// A query row is one (token, query head) of the kv head's group (row = token * group + head in
// group), so the K and V of a block are read once into shared memory and serve every query head
// of the group and every token of a prefill chunk (GQA-aware). Each item leaves a partial state
// (o, m, l) per row in a scratch area; splitting a long request's blocks over several items
// (flash-decoding) keeps a GPU's SMs busy for one long decode, and a second kernel merges the
// splits of each row (core/attention_state.hpp's merge) into the request's output: final
// outputs (MaResult::kNormalized) or a partial state for DistAttention to merge further.
//
// The causal mask is by absolute position, as on the CPU: a key at position p is visible to a
// query at position q when p <= q, whatever order the blocks come in.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/block_geometry.hpp"
#include "kernels/elem_type.hpp"

namespace infllm::kernels {

inline constexpr int kAttnRows = 16;  // query rows per item (thread block)
inline constexpr int kAttnMaxHeadDim = 256;

// One layer of the pool's rBlock layout as the kernels read it (core/block_geometry.hpp's
// offsets for that layer).
struct KvLayout {
  std::size_t slot_bytes = 0;      // from slot s to slot s + 1
  std::size_t layer_k_offset = 0;  // K[layer][kv head 0] within a block
  std::size_t head_bytes = 0;      // from one kv head's K (or V) run to the next
  std::size_t v_offset = 0;        // from a head's K run to its V run
  int block_tokens = 0;
  int head_dim = 0;
  int kv_heads = 0;
  ElemType type = ElemType::kF32;
};

inline ElemType elem_type_of(KvDtype d) {
  return d == KvDtype::kF16    ? ElemType::kF16
         : d == KvDtype::kBF16 ? ElemType::kBF16
                               : ElemType::kF32;
}

// Layer `layer` of a pool of rBlocks with geometry g, slots slot_bytes apart.
inline KvLayout kv_layout(const BlockGeometry& g, std::size_t slot_bytes, int layer) {
  KvLayout lay;
  lay.slot_bytes = slot_bytes;
  lay.layer_k_offset = g.k_offset(layer, 0);
  lay.head_bytes = g.head_elems() * g.elem_bytes();
  lay.v_offset = g.layer_half_bytes();
  lay.block_tokens = g.block_tokens;
  lay.head_dim = g.head_dim;
  lay.kv_heads = g.kv_heads;
  lay.type = elem_type_of(g.dtype);
  return lay;
}

struct AttnPool {
  const std::byte* base = nullptr;  // slot 0
  KvLayout layout;
};

// Where one row (token) of new K and V goes.
struct KvDest {
  std::int32_t slot = 0;
  std::int32_t token = 0;  // within the block
};

// One request's queries and where its result goes; device pointers.
struct AttnRequest {
  const float* q = nullptr;  // (n_tokens, q_heads, head_dim)
  float* o = nullptr;        // (n_tokens, q_heads, head_dim)
  float* m = nullptr;        // (n_tokens, q_heads), partial results only
  float* l = nullptr;        // (n_tokens, q_heads), partial results only
  std::int64_t first_pos = 0;
  std::int32_t n_tokens = 0;
  std::int32_t pad = 0;
};

struct AttnBlock {
  std::int64_t first_pos = 0;
  std::int32_t slot = 0;
  std::int32_t tokens = 0;
};

struct AttnItem {
  std::int32_t request = 0;
  std::int32_t kv_head = 0;
  std::int32_t row_begin = 0;    // first row within the request's rows of this kv head
  std::int32_t rows = 0;         // <= kAttnRows
  std::int32_t block_begin = 0;  // the item's blocks: [block_begin, block_end) of the table
  std::int32_t block_end = 0;
  std::int32_t partial = 0;  // its scratch slot: kAttnRows rows of (o, m, l)
};

// The rows of one (request, kv head, row range) and the `splits` consecutive scratch slots from
// `first_partial` that hold their states.
struct AttnCombine {
  std::int32_t request = 0;
  std::int32_t kv_head = 0;
  std::int32_t row_begin = 0;
  std::int32_t rows = 0;
  std::int32_t first_partial = 0;
  std::int32_t splits = 0;
};

struct AttnParams {
  AttnPool pool;
  int q_heads = 1;
  int group = 1;             // q_heads / kv_heads
  float score_scale = 1.0f;  // softmax scale * log2(e): scores in log2 units
  bool normalized = true;    // final outputs; else partial states (o, m, l)
};

// What the host plans for one call: the tables the kernels read, and the scratch they need.
struct AttnPlan {
  std::vector<AttnItem> items;
  std::vector<AttnCombine> combines;
  int partials = 0;  // scratch slots
};

// One request as the planner sees it: its token count and how many blocks it reads (its blocks
// sit at [block_begin, block_begin + blocks) of the block table).
struct AttnPlanRequest {
  std::int32_t n_tokens = 0;
  std::int32_t block_begin = 0;
  std::int32_t blocks = 0;
};

// Cuts the work into items of at most kAttnRows rows and `blocks_per_split` blocks (>= 1).
AttnPlan plan_attention(const std::vector<AttnPlanRequest>& requests, int kv_heads, int group,
                        int blocks_per_split);

// Scratch floats the plan needs: partials * kAttnRows * (head_dim + 2).
std::size_t attention_scratch_floats(const AttnPlan& plan, int head_dim);

// Runs the plan: requests, blocks, items and combines are device copies of the tables; scratch
// holds attention_scratch_floats floats. head_dim <= kAttnMaxHeadDim.
cudaError_t launch_attention(const AttnParams& params, const AttnRequest* requests,
                             const AttnBlock* blocks, const AttnItem* items, int n_items,
                             const AttnCombine* combines, int n_combines, float* scratch,
                             int partials, cudaStream_t stream);

// Stores k and v, each (rows, kv_heads * head_dim) f32, as the pool's type at dests[r].
cudaError_t launch_store_kv(std::byte* base, const KvLayout& layout, const KvDest* dests,
                            std::size_t rows, const float* k, const float* v, cudaStream_t stream);

// acc <- merge(acc, part) for `rows` rows of head_dim; acc's o, m, l and part's are distinct.
cudaError_t launch_merge_partials_into(float* acc_o, float* acc_m, float* acc_l,
                                       const float* part_o, const float* part_m,
                                       const float* part_l, std::int64_t rows, int head_dim,
                                       cudaStream_t stream);

// out (rows, head_dim) = o / l, 0 where l = 0; out may be o.
cudaError_t launch_normalize_partials(const float* o, const float* l, std::int64_t rows,
                                      int head_dim, float* out, cudaStream_t stream);

}  // namespace infllm::kernels
