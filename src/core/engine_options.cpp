// engine_options.cpp: see engine_options.hpp.
#include "core/engine_options.hpp"

#include <algorithm>
#include <utility>

namespace infllm {

RManagerConfig rmanager_config(RankId me, const EngineOptions& o) {
  RManagerConfig rc;
  rc.rank = me;
  rc.capacity = o.instance.pool_slots;
  rc.block_tokens = o.instance.block_tokens;
  rc.max_lend_fraction = o.max_lend_fraction;
  // NOTE: the engine caps a prefill chunk at a quarter of the pool in new blocks, so a request
  // can always make room for its next chunk by pushing full blocks out: a chunk as large as the
  // pool would need more pushable blocks than the request has, which the gManager counts as
  // unmet (and would fail a request that fits). A configuration choice of this engine, not an
  // rManager rule: the rManager's own tests drive tiny pools with whole-pool chunks on purpose.
  const std::int64_t bt = o.instance.block_tokens;
  const std::int64_t max_chunk = std::max<std::int64_t>(
      bt, std::min<std::int64_t>(o.instance.max_batch_tokens, bt * o.instance.pool_slots / 4));
  rc.batch = BatchLimits{o.instance.max_batch_tokens, o.instance.max_num_seqs, max_chunk};
  return rc;
}

GManagerConfig gmanager_config(std::int32_t instances, std::size_t block_bytes,
                               const EngineOptions& o, std::vector<std::int32_t> nodes) {
  GManagerConfig gc;
  gc.shape.capacity.assign(static_cast<std::size_t>(instances), o.instance.pool_slots);
  gc.shape.max_lend_fraction = o.max_lend_fraction;
  gc.node_of_rank = std::move(nodes);  // the launcher's real mapping, whatever it was
  gc.reserve_growth = o.reserve_growth;
  gc.policy = o.policy;  // local: the same loop, and the gManager never lends
  gc.block_tokens = o.instance.block_tokens;
  // The byte budget in whole rBlocks: below one rBlock, no move (as --dgfm off).
  gc.dgfm_max_moves = o.dgfm ? o.dgfm_budget_bytes / static_cast<std::int64_t>(block_bytes) : 0;
  return gc;
}

}  // namespace infllm
