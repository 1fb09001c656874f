// kv_block.hpp: one rBlock of a request as attention reads it, and where a step's attention
// finds each of a request's blocks. The step loop (step_loop.hpp) plans them, the backends
// (backend/attention_types.hpp) and DistAttention read them.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

// One rBlock of a request: where it is and which absolute positions it holds.
struct KvBlock {
  SlotId slot;
  std::int64_t first_pos = 0;  // position of the block's token 0 (logical index * block_tokens)
  std::int32_t tokens = 0;     // valid tokens, 1..block_tokens (a tail block may be partial)
};

// The blocks one creditor holds for a request and attends over itself (push-query).
struct RemotePart {
  RankId creditor;
  std::vector<KvBlock> blocks;  // slots on the creditor
};

// One batch item's attention plan for a step.
struct SeqPlan {
  std::vector<KvBlock> local;      // in this instance's pool
  std::vector<KvBlock> pulled;     // in the step's pulled-block buffer (slot = its index there)
  std::vector<RemotePart> pushed;  // attended by their creditors
};

}  // namespace infllm
