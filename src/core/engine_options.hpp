// engine_options.hpp: the engine's options, one struct for every layer: the command line
// parses into it (app/cli.hpp), and the MPI engine, the in-process one and the managers'
// set-up read it (model/engine/engine.hpp, sim/simulator.hpp), and the managers' settings that
// follow from it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/block_geometry.hpp"
#include "core/g_manager.hpp"
#include "core/kv_policy.hpp"
#include "core/r_manager.hpp"

namespace infllm {

// One instance's pool, batch limits and EOS ids.
struct InstanceOptions {
  int block_tokens = 16;
  std::int32_t pool_slots = 0;  // rBlocks in the pool (from --kv-pool-mb and the model)
  KvDtype kv_dtype = KvDtype::kF32;
  int max_batch_tokens = 512;         // tokens of one step
  int max_num_seqs = 16;              // running requests
  std::vector<std::int32_t> eos_ids;  // any ends a request (unless ignore_eos); from the model
};

struct EngineOptions {
  InstanceOptions instance;
  double max_lend_fraction = 0.5;
  KvPolicy policy = KvPolicy::kPooled;
  RemoteAttention remote = RemoteAttention::kAuto;
  bool dgfm = true;
  std::int64_t dgfm_budget_bytes = 64ll << 20;  // per boundary
  // A rank done with its step before the others runs extra steps of its all-home requests
  // until every rank is done (LoopOptions::fill_waits).
  bool fill_waits = true;
  bool reserve_growth = true;  // GManagerConfig::reserve_growth (--admission)
  // At every boundary, each instance checks its rManager and instance 0 the gManager, the
  // ledger and the cross-instance rule (core/cluster_check.hpp). A broken invariant is an
  // InternalError.
  bool check_invariants = false;
};

// Instance `me`'s rManager settings.
RManagerConfig rmanager_config(RankId me, const EngineOptions& options);
// The gManager's settings for `instances` instances on `nodes` (node of each instance), with
// rBlocks of `block_bytes` (the DGFM budget counts them).
GManagerConfig gmanager_config(std::int32_t instances, std::size_t block_bytes,
                               const EngineOptions& options, std::vector<std::int32_t> nodes);

}  // namespace infllm
