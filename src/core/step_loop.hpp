// step_loop.hpp: the engine's step loop, written once (docs/design.md, "The distributed engine").
//
// Every instance runs InstanceLoop::run(); instance 0 also hosts the gManager's side, a
// ManagerLoop, which its ControlPort::boundary calls with every report. One iteration:
//
//   report(), apply()  the boundary: report -> ControlPort::boundary (instance 0:
//                     ManagerLoop::decide) -> RManager::apply; the executor starts and drops
//                     requests
//   start_data_ops()  scratch writes of committed moves, pushes of granted blocks, DGFM copies
//                     (BlockTransport), all flushed before the next report
//   run_step()        grow the batch; plan each item's attention (home, pulled, pushed to its
//                     creditors); fetch the pulls; StepExecutor::step; finish what ended
//   fill_wait()       extra all-home steps until every instance has arrived (fill waits)
//
// `--kv-policy local` is this loop with a gManager that never lends, and one instance is the
// one-rank case of it. The loop knows nothing of MPI, models or devices: the ports do
// (step_ports.hpp).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "core/g_manager.hpp"
#include "core/kv_policy.hpp"
#include "core/r_manager.hpp"
#include "core/step_ports.hpp"

namespace infllm {

// One step of the whole cluster, as the gManager sees it at the boundary after it.
struct ClusterStep {
  std::int64_t step = 0;
  StepStats sum;  // over instances (pool_used, pool_slots: cluster totals)
  double max_compute_s = 0;
  std::int64_t ledger_blocks = 0;  // remote blocks outstanding after the boundary
  std::int64_t loans_total = 0;    // slots granted since the start
  std::int64_t dgfm_moves = 0;     // moves planned since the start
  std::int64_t running = 0, queued = 0;
  double wall_s = 0;  // since the start
};

// f(name, value) for every per-step column, in the order of `--metrics`' per_step rows and of
// an HDF5 output's /steps group: the step, the StepStats summed over instances, then the
// cluster's own counts.
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

struct RunSummary {
  std::int64_t steps = 0;
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int64_t preemptions = 0;
  std::int64_t loans_total = 0;
  std::int64_t ledger_outstanding_end = 0;
  std::int64_t ledger_max = 0;
  std::int64_t dgfm_moves = 0;
  // Bytes by kind and the time split, summed over steps and instances; pool_used is the peak
  // of the cluster's use, pool_slots its slots.
  StepStats totals;
  std::vector<ClusterStep> per_step;
  // Debt-ledger snapshots: every 16th boundary and the last, one row per (debtor, creditor)
  // pair that owes: {step, debtor, creditor, blocks}.
  std::vector<std::array<std::int64_t, 4>> ledger_snapshots;
  bool stopped = false;
};

struct ManagerHooks {
  // A request ended at its home (record: the executor's bytes), or at a boundary (failed by
  // the gManager: no record yet). `preemptions`: times the gManager preempted it.
  std::function<void(RequestId, std::vector<std::uint8_t>&& record, int preemptions)> on_result;
  std::function<void(const Verdict&, int preemptions)> on_failed;
  std::function<void(const ClusterStep&)> on_step;
  // Seconds since the run started, for ClusterStep::wall_s: the steady clock unless given (a
  // simulator gives its simulated time).
  std::function<double()> clock;
};

// The gManager's side of the loop (instance 0): admission, every boundary's decisions, and the
// run's figures.
class ManagerLoop {
 public:
  ManagerLoop(const GManagerConfig& config, ManagerHooks hooks);
  // Queues a request; a verdict when it can never run (GManager::submit).
  std::optional<Verdict> submit(const RequestSpec& spec) { return gm_.submit(spec); }
  // ControlPort::Decide for the boundary before step `step`.
  std::vector<InstanceDecision> decide(std::int64_t step, std::vector<InstanceReport>&& reports);
  // ControlPort::CheckViews: the gManager, the ledger and the cross-instance rule.
  void check(std::vector<InstanceView>&& views) const;

  const GManager& gmanager() const { return gm_; }
  RunSummary& summary() { return summary_; }

 private:
  void record_step(const ClusterStep& sums, const std::vector<RankDecision>& ds, bool end);

  GManager gm_;
  ManagerHooks hooks_;
  std::map<RequestId, int> preemptions_;
  RunSummary summary_;
  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

struct LoopOptions {
  RemoteAttention remote = RemoteAttention::kAuto;
  // A rank done with its step before the others runs extra steps of its all-home requests
  // until every rank is done (fill_wait()).
  bool fill_waits = true;
  // Every boundary: each instance checks its rManager, instance 0 the gManager, the ledger and
  // the cross-instance rule (core/cluster_check.hpp). A broken invariant is an InternalError.
  bool check_invariants = false;
  std::function<bool()> stop;        // asked before every boundary: a signal arrived
  std::function<void()> after_step;  // after every step
  // Test: cut every fill step at its last layer as if the last rank had just arrived, so the
  // discarding of a cut step runs whenever a fill step starts.
  bool cut_every_fill_step = false;
};

// One instance's side of the loop.
class InstanceLoop {
 public:
  // `manager`: instance 0's ManagerLoop (null elsewhere).
  InstanceLoop(ControlPort& control, BlockTransport& blocks, StepExecutor& executor,
               const RManagerConfig& config, const LoopOptions& options, ManagerLoop* manager);
  // Runs to the end (or to a stop). Returns the steps run and whether a stop ended the run.
  struct Ran {
    std::int64_t steps = 0;
    bool stopped = false;
  };
  Ran run();

  // run()'s phases, for a driver that runs every instance itself (the simulator). One
  // iteration of run() is: report(step) -> ControlPort::boundary (ManagerLoop::decide on
  // instance 0) -> apply(decision) -> run_step() -> fill steps -> end_step().
  InstanceReport report(std::int64_t step);
  // Applies this instance's decision; false when the run ends at this boundary.
  bool apply(const InstanceDecision& decision);
  void run_step();
  // One fill step (all-home requests, the full token budget); `keep_going(layer)` is asked
  // before each layer and cuts the step when false. False when there was none to run or it was
  // cut.
  bool fill_step(const std::function<bool(int layer)>& keep_going);
  void end_step();

  const RManager& rmanager() const { return rmanager_; }
  bool stopped() const { return stopped_; }

 private:
  // The invariants: this rManager's, and through the ControlPort the cross-instance rule.
  void check_invariants();
  void start_data_ops(const RankDecision& d);
  void write_committed_scratch(const RankDecision& d);
  void start_moves(const RankDecision& d);
  // One batch item: its slots and attention plan; the pulls it needs go to `pulls`.
  StepItem plan_item(const Growth& g, std::vector<BlockRef>& pulls);
  void finish(const std::vector<RequestId>& ended);
  void fill_wait();

  // Per request at home: the most blocks it had away from home and where.
  struct RemoteUse {
    std::int64_t max = 0;
    std::set<std::int32_t> creditors;
  };

  ControlPort& control_;
  BlockTransport& blocks_;
  StepExecutor& executor_;
  const LoopOptions& options_;
  ManagerLoop* manager_;
  RManager rmanager_;
  const RankId me_;
  std::map<RequestId, RemoteUse> remote_;
  std::vector<FinishedRequest> finished_;  // ride in the next report
  // DGFM moves through scratch: move -> (request, the copy), written at their commit.
  std::map<std::int64_t, std::pair<RequestId, std::vector<std::byte>>> staged_;
  bool exchange_ = true;  // this step's InstanceDecision::exchange
  StepStats stats_;       // this instance's, for the step under way
  bool stopped_ = false;
  std::chrono::steady_clock::time_point boundary_start_;
};

}  // namespace infllm
