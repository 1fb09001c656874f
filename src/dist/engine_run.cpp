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
#include "model/engine/engine.hpp"
#include "model/engine/model_executor.hpp"
#include "model/forward/dist_attention.hpp"

namespace infllm::dist {

namespace {

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
    auto res = model::ended(requests.at(static_cast<std::size_t>(v.request.value())),
                            model::GenStatus::kFailed, end_reason_name(v.reason));
    res.preemptions = preemptions;
    hooks.on_result(to_record(std::move(res)));
  };
  mh.on_step = hooks.on_step;
  return mh;
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
  // The backend lets go of the window's memory (a device backend unregisters it) before the
  // window is freed: declared after the pool, destroyed before it.
  struct KvRelease {
    Backend& backend;
    std::byte* base;
    ~KvRelease() { backend.release_kv(base); }
  } release{forward_.backend(), pool.local(SlotId{0}).data()};
  const KvStore store{pool.local(SlotId{0}).data(), block_bytes, slots, geometry};
  MpiAttentionExchange exchange(attn_comm_);
  model::DistAttention attention(exchange, forward_.backend(), store.view(),
                                 static_cast<int>(forward_.config().num_heads));
  model::ModelExecutor executor(
      forward_, tokenizer_, requests, options_.instance.eos_ids, store, attention, pool,
      [](RequestId, model::GenResult&& r) { return encode(to_record(std::move(r))); });
  MpiControlPort control(comm_);
  std::vector<std::int32_t> nodes = control.nodes();
  std::optional<ManagerLoop> manager;
  if (rank_ == 0) {
    manager.emplace(gmanager_config(size_, block_bytes, options_, std::move(nodes)),
                    manager_hooks(requests, hooks));
    model::submit_requests(
        *manager, requests, to_run, forward_.config().max_position_embeddings,
        [&hooks](model::GenResult&& r) { hooks.on_result(to_record(std::move(r))); });
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
