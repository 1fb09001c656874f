// engine.cpp: see engine.hpp.
#include "model/engine/engine.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "core/errors.hpp"
#include "core/in_process.hpp"
#include "model/engine/model_executor.hpp"
#include "model/forward/dist_attention.hpp"

namespace infllm::model {

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

GenResult ended(const GenRequest& r, GenStatus status, std::string reason) {
  GenResult g;
  g.id = r.id;
  g.status = status;
  g.reason = std::move(reason);
  if (status == GenStatus::kDone) g.finish_reason = "length";
  g.prompt_tokens = static_cast<std::int64_t>(r.prompt.size());
  return g;
}

void submit_requests(ManagerLoop& manager, const std::vector<GenRequest>& requests,
                     const std::vector<std::size_t>& to_run, std::int64_t max_pos,
                     const std::function<void(GenResult&&)>& on_ended) {
  for (std::size_t idx : to_run) {
    const GenRequest& r = requests.at(idx);
    if (const auto v = admission_verdict(r, max_pos)) {
      on_ended(ended(r, v->first, v->second));
      continue;
    }
    const auto prompt = static_cast<std::int64_t>(r.prompt.size());
    const RequestSpec spec{RequestId{static_cast<std::int64_t>(idx)}, prompt,
                           std::min<std::int64_t>(r.max_new_tokens, max_pos - prompt),
                           static_cast<std::int64_t>(idx)};
    if (const auto v = manager.submit(spec)) {
      on_ended(ended(r, GenStatus::kRejected, end_reason_name(v->reason)));
    }
  }
}

RunSummary run_in_process(const ModelConfig& config, const Weights& weights, Backend& backend,
                          const Tokenizer* tokenizer, const std::vector<GenRequest>& requests,
                          const EngineOptions& options, std::int32_t instances,
                          std::int32_t per_node, const InProcessHooks& hooks,
                          const LoopOptions& loop_options) {
  if (options.instance.pool_slots <= 0 || options.instance.block_tokens <= 0 ||
      options.instance.max_batch_tokens <= 0 || options.instance.max_num_seqs <= 0) {
    throw InternalError("engine: pool, block, batch and sequence sizes must be positive");
  }
  const BlockGeometry geometry =
      kv_geometry(config, options.instance.block_tokens, options.instance.kv_dtype);
  // Every instance's pool in the backend's memory.
  std::vector<std::unique_ptr<BackendMemory>> pools;
  InProcessCluster cluster(instances, geometry.block_bytes(), options.instance.pool_slots, per_node,
                           [&](std::int32_t, std::size_t bytes) {
                             pools.push_back(backend.allocate(bytes, MemoryUse::kKvPool));
                             return std::span<std::byte>(pools.back()->data(), bytes);
                           });
  // Results stay in this process: the bytes that cross the boundary name the request, and the
  // result waits here.
  std::mutex results_mu;
  std::map<std::int64_t, GenResult> results;
  ManagerHooks mh;
  mh.on_result = [&](RequestId id, std::vector<std::uint8_t>&&, int preemptions) {
    GenResult r;
    {
      const std::lock_guard lock(results_mu);
      r = std::move(results.at(id.value()));
      results.erase(id.value());
    }
    r.preemptions = preemptions;
    hooks.on_result(std::move(r));
  };
  mh.on_failed = [&](const Verdict& v, int preemptions) {
    GenResult r = ended(requests.at(static_cast<std::size_t>(v.request.value())),
                        GenStatus::kFailed, end_reason_name(v.reason));
    r.preemptions = preemptions;
    hooks.on_result(std::move(r));
  };
  mh.on_step = hooks.on_step;
  ManagerLoop manager(
      gmanager_config(instances, geometry.block_bytes(), options, cluster.control(0).nodes()), mh);
  std::vector<std::size_t> all(requests.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  submit_requests(manager, requests, all, config.max_position_embeddings, hooks.on_result);

  LoopOptions lo = loop_options;
  lo.remote = options.remote;
  lo.fill_waits = options.fill_waits;
  lo.check_invariants = options.check_invariants;
  lo.stop = hooks.stop;
  cluster.run([&](std::int32_t r) {
    Forward forward(config, weights, backend);
    BlockTransport& blocks = cluster.blocks(r);
    const KvStore store{blocks.local(SlotId{0}).data(), geometry.block_bytes(),
                        options.instance.pool_slots, geometry};
    DistAttention attention(cluster.exchange(r), backend, store.view(),
                            static_cast<int>(config.num_heads));
    ModelExecutor executor(forward, tokenizer, requests, options.instance.eos_ids, store, attention,
                           blocks, [&](RequestId id, GenResult&& g) {
                             const std::lock_guard lock(results_mu);
                             results[id.value()] = std::move(g);
                             return std::vector<std::uint8_t>{};
                           });
    InstanceLoop loop(cluster.control(r), blocks, executor, rmanager_config(RankId{r}, options), lo,
                      r == 0 ? &manager : nullptr);
    loop.run();
  });
  return std::move(manager.summary());
}

}  // namespace infllm::model
