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
