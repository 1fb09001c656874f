// engine_run.cpp: Engine::run, the step loop of core/step_loop.hpp on one rank over
// the MPI ports: MpiControlPort for the boundary, the RmaPool window for rBlocks, a
// ModelExecutor with DistAttention over MpiAttentionExchange for the steps (docs/design.md, "The
// distributed engine").
#include <optional>

#include "core/step_loop.hpp"
#include "dist/control_mpi.hpp"
#include "dist/engine.hpp"
#include "dist/rma_pool.hpp"
#include "dist/wire.hpp"
#include "model/dist_attention.hpp"
#include "model/model_executor.hpp"

namespace infllm::dist {

namespace {

// The rManager's settings for this engine.
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

GManagerConfig gmanager_config(int ranks, std::size_t block_bytes, const EngineOptions& o,
                               std::vector<std::int32_t> nodes) {
  GManagerConfig gc;
  gc.shape.capacity.assign(static_cast<std::size_t>(ranks), o.instance.pool_slots);
  gc.shape.max_lend_fraction = o.max_lend_fraction;
  gc.node_of_rank = std::move(nodes);  // the launcher's real mapping, whatever it was
  gc.reserve_growth = o.reserve_growth;
  gc.policy = o.policy;  // local: the same loop, and the gManager never lends
  gc.block_tokens = o.instance.block_tokens;
  // The byte budget in whole rBlocks: below one rBlock, no move (as --dgfm off).
  gc.dgfm_max_moves = o.dgfm ? o.dgfm_budget_bytes / static_cast<std::int64_t>(block_bytes) : 0;
  return gc;
}

model::GenResult ended(const model::GenRequest& r, model::GenStatus status, std::string reason) {
  model::GenResult g;
  g.id = r.id;
  g.status = status;
  g.reason = std::move(reason);
  if (status == model::GenStatus::kDone) g.finish_reason = "length";
  g.prompt_tokens = static_cast<std::int64_t>(r.prompt.size());
  return g;
}

// Rank 0: the gManager's side, with every result going to hooks.on_result.
ManagerHooks manager_hooks(const std::vector<model::GenRequest>& requests,
                           const EngineHooks& hooks) {
  ManagerHooks mh;
  mh.on_result = [&hooks](RequestId, std::vector<std::uint8_t>&& bytes, int preemptions) {
    io::ResultRecord r = decode_record(bytes.data(), bytes.size());
    r.preemptions = preemptions;
    hooks.on_result(std::move(r));
  };
  mh.on_failed = [&requests, &hooks](const Verdict& v, int preemptions) {
    auto res = ended(requests.at(static_cast<std::size_t>(v.request.value())),
                     model::GenStatus::kFailed, end_reason_name(v.reason));
    res.preemptions = preemptions;
    hooks.on_result(to_record(std::move(res)));
  };
  mh.on_step = hooks.on_step;
  return mh;
}

// Rank 0: every request to run goes to the gManager, or straight to its result when it can
// never run.
void submit(ManagerLoop& manager, const std::vector<model::GenRequest>& requests,
            const std::vector<std::size_t>& to_run, std::int64_t max_pos,
            const EngineHooks& hooks) {
  for (std::size_t idx : to_run) {
    const model::GenRequest& r = requests.at(idx);
    if (const auto v = model::admission_verdict(r, max_pos)) {
      hooks.on_result(to_record(ended(r, v->first, v->second)));
      continue;
    }
    const auto prompt = static_cast<std::int64_t>(r.prompt.size());
    const RequestSpec spec{RequestId{static_cast<std::int64_t>(idx)}, prompt,
                           std::min<std::int64_t>(r.max_new_tokens, max_pos - prompt),
                           static_cast<std::int64_t>(idx)};
    if (const auto v = manager.submit(spec)) {
      hooks.on_result(to_record(ended(r, model::GenStatus::kRejected, end_reason_name(v->reason))));
    }
  }
}

}  // namespace

RunSummary Engine::run(const std::vector<model::GenRequest>& requests,
                       const std::vector<std::size_t>& to_run, const EngineHooks& hooks) {
  const BlockGeometry geometry =
      forward_.geometry(options_.instance.block_tokens, options_.instance.kv_dtype);
  const std::size_t block_bytes = geometry.block_bytes();
  const std::int32_t slots = options_.instance.pool_slots;
  RmaPool pool(comm_, block_bytes, slots, [this](std::byte* base, std::size_t bytes) {
    forward_.backend().prepare_kv(base, bytes);
  });
  const KvStore store{pool.local(SlotId{0}).data(), block_bytes, slots, geometry};
  MpiAttentionExchange exchange(attn_comm_);
  model::DistAttention attention(exchange, forward_.backend(), store.view(),
                                 static_cast<int>(forward_.config().num_heads));
  model::ModelExecutor executor(
      forward_, tokenizer_, requests, options_.instance.eos_ids, store, attention, pool,
      [](model::GenResult&& r) { return encode(to_record(std::move(r))); });
  MpiControlPort control(comm_);
  std::vector<std::int32_t> nodes = control.nodes();
  std::optional<ManagerLoop> manager;
  if (rank_ == 0) {
    manager.emplace(gmanager_config(size_, block_bytes, options_, std::move(nodes)),
                    manager_hooks(requests, hooks));
    submit(*manager, requests, to_run, forward_.config().max_position_embeddings, hooks);
  }
  LoopOptions lo;
  lo.remote = options_.remote;
  lo.fill_waits = options_.fill_waits;
  lo.check_invariants = options_.check_invariants;
  lo.stop = hooks.stop;
  lo.after_step = hooks.after_step;
  lo.cut_every_fill_step = hooks.cut_every_fill_step;
  InstanceLoop loop(control, pool, executor, rmanager_config(RankId{rank_}, options_), lo,
                    manager ? &*manager : nullptr);
  const InstanceLoop::Ran ran = loop.run();
  if (!manager) return RunSummary{.stopped = ran.stopped};
  return std::move(manager->summary());
}

}  // namespace infllm::dist
