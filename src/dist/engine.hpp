// engine.hpp: the distributed engine: `mpiexec -n N infllm generate` over a pooled rBlock KV
// cache (docs/design.md, "The distributed engine").
//
// Every rank holds the same request list (every rank reads the input). Rank 0 hosts the
// gManager: it admits the requests to run, places them, grants loans, plans DGFM moves, and
// receives every result. Each rank runs an rManager over its pool (an MPI RMA window) and the
// forward pass over its batch. One loop iteration per step:
//
//   boundary   make_report -> MPI_Gatherv -> gManager.decide -> MPI_Scatterv -> apply
//              (results of finished requests ride in the reports)
//   data ops   pushes of granted blocks (MPI_Put), DGFM copies (MPI_Get [+ MPI_Put]), and the
//              scratch writes of committed moves; all flushed before the next report
//   step       grow the batch's block tables; plan the step's remote attention (Alltoall of
//              counts + query headers); forward pass with DistAttention; sample; finish
//
// With KvPolicy::kLocal the ranks never wait on each other: requests are dealt to ranks up
// front (least expected work first), each rank runs the single-instance Generator over its own
// pool, and results travel to rank 0 with non-blocking sends it drains between its steps.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/kv_policy.hpp"
#include "dist/wire.hpp"
#include "io/results.hpp"
#include "model/forward.hpp"
#include "model/generator.hpp"

namespace infllm::dist {

struct EngineOptions {
  // Each instance's pool, batch limits and EOS ids (the local fleet's Generator takes them as
  // they are).
  model::GeneratorOptions instance;
  double max_lend_fraction = 0.5;
  KvPolicy policy = KvPolicy::kPooled;
  RemoteAttention remote = RemoteAttention::kAuto;
  bool dgfm = true;
  std::int64_t dgfm_budget_bytes = 64ll << 20;  // per boundary
  // pooled: a rank done with its step before the others runs extra steps of its all-local
  // requests until every rank is done (see run_pooled).
  bool fill_waits = true;
  bool reserve_growth = true;  // GManagerConfig::reserve_growth (--admission)
  // pooled: at every boundary, each rank checks its rManager and sends rank 0 its
  // InstanceView; rank 0 checks the gManager, the ledger and the cross-rank rule
  // (core/cluster_check.hpp). A broken invariant is an InternalError: the job aborts.
  bool check_invariants = false;
};

// One step of the whole cluster, as rank 0 sees it at the boundary after it.
struct ClusterStep {
  std::int64_t step = 0;
  StepStats sum;  // over ranks (pool_used, pool_slots: cluster totals)
  double max_compute_s = 0;
  std::int64_t ledger_blocks = 0;  // remote blocks outstanding after the boundary
  std::int64_t loans_total = 0;    // slots granted since the start
  std::int64_t dgfm_moves = 0;     // moves planned since the start
  std::int64_t running = 0, queued = 0;
  double wall_s = 0;  // since the start
};

// f(name, value) for every per-step column, in the order of `--metrics`' per_step rows and of
// an HDF5 output's /steps group: the step, the StepStats summed over ranks, then the cluster's
// own counts.
template <typename F>
void for_each_column(const ClusterStep& cs, F&& f) {
  f("step", cs.step);
  for_each_field(cs.sum, f);
  f("compute_s_max", cs.max_compute_s);
  f("ledger_blocks", cs.ledger_blocks);
  f("loans_total", cs.loans_total);
  f("dgfm_moves", cs.dgfm_moves);
  f("running", cs.running);
  f("queued", cs.queued);
  f("wall_s", cs.wall_s);
}

struct EngineSummary {
  std::int64_t steps = 0;
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int64_t preemptions = 0;
  std::int64_t loans_total = 0;
  std::int64_t ledger_outstanding_end = 0;
  std::int64_t ledger_max = 0;
  std::int64_t dgfm_moves = 0;
  StepStats totals;  // bytes by kind and the time split, summed over steps and ranks
  std::vector<ClusterStep> per_step;
  // Debt-ledger snapshots (rank 0, pooled): every 16th boundary and the last, one row per
  // (debtor, creditor) pair that owes: {step, debtor, creditor, blocks}.
  std::vector<std::array<std::int64_t, 4>> ledger_snapshots;
  bool stopped = false;
};

struct EngineHooks {
  std::function<bool()> stop;                         // every rank, every boundary
  std::function<void(io::ResultRecord&&)> on_result;  // rank 0
  std::function<void(const ClusterStep&)> on_step;    // rank 0
  std::function<void()> after_step;                   // every rank
  // Test: cut every fill step at its last layer as if the last rank had just arrived, so the
  // discarding of a cut step runs whenever a fill step starts.
  bool cut_every_fill_step = false;
};

// A finished request's result as the output records it.
io::ResultRecord to_record(model::GenResult&& result);

class Engine {
 public:
  // Collective over `comm` (it is duplicated). Allocates this rank's pool window.
  Engine(MPI_Comm comm, model::Forward& forward, const model::Tokenizer* tokenizer,
         const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Collective. `requests`: the same list on every rank; `to_run`: indices into it (read on
  // rank 0 only). Results reach hooks.on_result on rank 0. The summary is rank 0's.
  EngineSummary run(const std::vector<model::GenRequest>& requests,
                    const std::vector<std::size_t>& to_run, const EngineHooks& hooks);

 private:
  EngineSummary run_pooled(const std::vector<model::GenRequest>& requests,
                           const std::vector<std::size_t>& to_run, const EngineHooks& hooks);
  EngineSummary run_local(const std::vector<model::GenRequest>& requests,
                          const std::vector<std::size_t>& to_run, const EngineHooks& hooks);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm attn_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  model::Forward& forward_;
  const model::Tokenizer* tokenizer_;
  EngineOptions options_;
};

}  // namespace infllm::dist
