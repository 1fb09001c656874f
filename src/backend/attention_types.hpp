// attention_types.hpp: the KV pool and micro-attention (MA) types every backend speaks.
//
// The forward pass (src/model), DistAttention (src/dist) and every backend (cpu/, cuda/) meet on
// these: a pool of rBlock slots, a request's blocks with the positions they hold, its queries
// and where its partial state (o, m, l) goes (core/attention_state.hpp has the state's math).
// Pointers are into the backend's own memory: host memory for the CPU backend, device memory
// for a device backend (Backend::host_memory() says which).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/block_geometry.hpp"
#include "core/ids.hpp"
#include "core/kv_block.hpp"

namespace infllm {

// One pool of rBlock slots as the kernels read it.
struct KvPool {
  const std::byte* base = nullptr;  // slot 0; slot s starts at base + s * slot_bytes
  std::size_t slot_bytes = 0;       // stride between slots, >= geometry.block_bytes()
  std::int32_t slots = 0;           // slots in the pool
  BlockGeometry geometry;
};

// The same pool, writable: where the forward pass stores new K and V (Backend::store_kv).
struct KvStore {
  std::byte* base = nullptr;
  std::size_t slot_bytes = 0;
  std::int32_t slots = 0;
  BlockGeometry geometry;

  KvPool view() const { return KvPool{base, slot_bytes, slots, geometry}; }
};

// One request's queries against one subset of its blocks.
struct MaQuery {
  const float* q = nullptr;         // (n_tokens, q_heads, head_dim) f32, not yet scaled
  int n_tokens = 1;                 // 1 for decode, the chunk length for a prefill chunk
  std::int64_t first_pos = 0;       // position of query token 0; token i is at first_pos + i
  std::span<const KvBlock> blocks;  // any order, possibly empty
};

// Where one request's result goes. With MaResult::kPartial all three are written; with
// kNormalized only o (which then holds softmax(q.K) @ V) and m, l may be null.
struct MaOutput {
  float* o = nullptr;  // (n_tokens, q_heads, head_dim) f32
  float* m = nullptr;  // (n_tokens, q_heads) running max, log2 units
  float* l = nullptr;  // (n_tokens, q_heads) sum of exponentials
};

enum class MaResult {
  kPartial,     // partial states, to merge with other partitions' states
  kNormalized,  // the caller passed all of the request's blocks: final attention output
};

struct MaParams {
  int layer = 0;
  int q_heads = 1;     // a multiple of pool.geometry.kv_heads
  float scale = 1.0f;  // softmax scale, usually 1 / sqrt(head_dim)
  MaResult result = MaResult::kPartial;
};

// Partial states of `rows` query heads (rows = n_tokens * q_heads), read-only.
struct PartialsView {
  const float* o = nullptr;  // (rows, head_dim)
  const float* m = nullptr;  // (rows)
  const float* l = nullptr;  // (rows)
};

}  // namespace infllm
