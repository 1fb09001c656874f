// step_loop_test.cpp: the engine's step loop (core/step_loop.hpp) with several instances in one
// process, over the in-process ports (core/in_process.hpp), one thread per instance.
//
// The executor is synthetic: every token's KV is the pair (request, position), written into
// the request's home slot when the loop grows it, and every step checks every block the loop
// planned for each batch item (at home, pulled, or on its creditor for push-query) before it
// writes: a block the loop lost, moved wrongly or recycled too early shows up as a wrong pair.
// Runs without fill waits take no decision by timing, so their counts are exact.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/in_process.hpp"
#include "core/step_loop.hpp"

namespace infllm {
namespace {

constexpr std::int32_t kBlockTokens = 16;
constexpr std::size_t kTokenBytes = 2 * sizeof(std::int64_t);
constexpr std::size_t kSlotBytes = kBlockTokens * kTokenBytes;
constexpr int kLayers = 4;

// A slow instance's step waits (at most 20 ms) until another instance has run a fill step, so
// that fill steps happen whatever the threads' timing.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  std::int64_t fills = 0;
  void fill() {
    const std::lock_guard lock(mu);
    ++fills;
    cv.notify_all();
  }
  void wait_for_a_fill() {
    std::unique_lock lock(mu);
    const std::int64_t before = fills;
    cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return fills != before; });
  }
};

class CheckingExecutor final : public StepExecutor {
 public:
  CheckingExecutor(InProcessCluster& cluster, std::int32_t rank, Gate* gate, bool slow)
      : cluster_(cluster), rank_(rank), gate_(gate), slow_(slow) {}

  void start(const RequestSpec& spec) override {
    seqs_[spec.id] = Seq{spec.prompt_tokens, 0, spec.max_new_tokens};
  }
  void drop(RequestId request) override { seqs_.erase(request); }
  std::int64_t push_bytes_per_row() const override { return 2 * kSlotBytes; }
  int layers() const override { return kLayers; }

  std::vector<RequestId> step(std::span<const StepItem> items, std::span<const std::byte> pulled,
                              bool exchange, StepStats& stats) override {
    (void)exchange, (void)stats;
    if (slow_ && gate_ != nullptr) gate_->wait_for_a_fill();
    return compute(items, pulled);
  }

  std::optional<std::vector<RequestId>> fill_step(std::span<const StepItem> items,
                                                  const std::function<bool(int)>& keep_going,
                                                  StepStats& stats) override {
    (void)stats;
    ++fill_calls;
    if (gate_ != nullptr) gate_->fill();
    for (const StepItem& item : items) {
      if (!item.plan.pulled.empty() || !item.plan.pushed.empty()) {
        fail("a fill step planned a block away from home");
      }
    }
    for (int layer = 0; layer < kLayers; ++layer) {
      if (!keep_going(layer)) return std::nullopt;
    }
    return compute(items, {});
  }

  std::vector<std::uint8_t> result(RequestId request, std::int64_t remote_max,
                                   const std::vector<std::int32_t>& creditors) override {
    const Seq s = seqs_.at(request);
    seqs_.erase(request);
    std::string text = std::to_string(s.generated) + " " + std::to_string(remote_max) + " " +
                       std::to_string(creditors.size());
    return {text.begin(), text.end()};
  }

  std::int64_t checked_tokens = 0;
  std::int64_t fill_calls = 0;
  std::vector<std::string> errors;

 private:
  struct Seq {
    std::int64_t len = 0;  // prompt + generated
    std::int64_t generated = 0;
    std::int64_t max_new = 0;
  };

  void fail(const std::string& what) {
    if (errors.size() < 8) errors.push_back("instance " + std::to_string(rank_) + ": " + what);
  }

  // Checks every token of `b` before `end` in `base` holds (request, position).
  void check_block(const std::byte* base, const KvBlock& b, RequestId id, std::int64_t end,
                   const char* where) {
    for (std::int32_t t = 0; t < b.tokens; ++t) {
      const std::int64_t pos = b.first_pos + t;
      if (pos >= end) break;
      std::int64_t got[2];
      std::memcpy(got,
                  base + static_cast<std::size_t>(b.slot.value()) * kSlotBytes +
                      static_cast<std::size_t>(t) * kTokenBytes,
                  sizeof got);
      ++checked_tokens;
      if (got[0] != id.value() || got[1] != pos) {
        fail(std::string(where) + " block of request " + std::to_string(id.value()) +
             " at position " + std::to_string(pos) + " holds (" + std::to_string(got[0]) + ", " +
             std::to_string(got[1]) + ")");
        return;
      }
    }
  }

  std::vector<RequestId> compute(std::span<const StepItem> items,
                                 std::span<const std::byte> pulled) {
    BlockTransport& mine = cluster_.blocks(rank_);
    for (const StepItem& item : items) {
      const Growth& g = item.growth;
      for (const KvBlock& b : item.plan.local) {
        check_block(cluster_.pool(rank_), b, g.request, g.first_pos, "home");
      }
      for (const KvBlock& b : item.plan.pulled) {
        check_block(pulled.data(), b, g.request, g.first_pos, "pulled");
      }
      for (const RemotePart& part : item.plan.pushed) {
        for (const KvBlock& b : part.blocks) {
          check_block(cluster_.pool(part.creditor.value()), b, g.request, g.first_pos, "remote");
        }
      }
    }
    std::vector<RequestId> ended;
    for (const StepItem& item : items) {
      const Growth& g = item.growth;
      for (std::int64_t pos = g.first_pos; pos < g.first_pos + g.tokens; ++pos) {
        const SlotId slot = item.slots.at(static_cast<std::size_t>(pos / kBlockTokens));
        const std::int64_t pair[2] = {g.request.value(), pos};
        std::memcpy(
            mine.local(slot).data() + static_cast<std::size_t>(pos % kBlockTokens) * kTokenBytes,
            pair, sizeof pair);
      }
      Seq& s = seqs_.at(g.request);
      if (g.first_pos + g.tokens != s.len) continue;  // a prefill chunk before the last
      ++s.len;
      if (++s.generated == s.max_new) ended.push_back(g.request);
    }
    return ended;
  }

  InProcessCluster& cluster_;
  const std::int32_t rank_;
  Gate* gate_;
  const bool slow_;
  std::map<RequestId, Seq> seqs_;
};

struct Workload {
  std::vector<RequestSpec> requests;
};

// Long documents that outgrow one 24-slot pool (384 tokens) and short ones around them.
Workload mixed_workload() {
  Workload w;
  const std::int64_t prompts[] = {520, 40, 300, 64, 610, 33, 200, 90, 450, 25, 128, 70};
  for (std::int64_t i = 0; i < 12; ++i) {
    w.requests.push_back(RequestSpec{RequestId{i}, prompts[i], i % 3 == 0 ? 6 : 12, i});
  }
  return w;
}

// Two medium documents and a long one on two instances: the long one borrows while the medium
// ones run, and its blocks can come home once they finish.
Workload dgfm_workload() {
  Workload w;
  w.requests.push_back(RequestSpec{RequestId{0}, 300, 4, 0});
  w.requests.push_back(RequestSpec{RequestId{1}, 300, 4, 1});
  w.requests.push_back(RequestSpec{RequestId{2}, 480, 60, 2});
  return w;
}

struct RunOptions {
  std::int32_t instances = 4;
  KvPolicy policy = KvPolicy::kPooled;
  RemoteAttention remote = RemoteAttention::kAuto;
  bool fill_waits = false;
  bool cut_fills = false;
  std::int64_t dgfm_moves = 16;
  std::int32_t capacity = 24;
  std::int32_t fail_rank = -1;  // this instance's executor throws at its 5th step
  bool reserve_growth = true;   // GManagerConfig::reserve_growth
};

struct Outcome {
  RunSummary summary;
  std::map<std::int64_t, std::string> results;  // done requests: "generated remote_max creditors"
  std::map<std::int64_t, std::string> ended;    // failed or rejected: the reason
  std::vector<std::string> errors;
  std::int64_t checked_tokens = 0;
  std::int64_t fill_calls = 0;
};

// An executor that throws at its fifth step (a rank that dies mid-run).
class FailingExecutor final : public StepExecutor {
 public:
  explicit FailingExecutor(StepExecutor& inner) : inner_(inner) {}
  void start(const RequestSpec& spec) override { inner_.start(spec); }
  void drop(RequestId request) override { inner_.drop(request); }
  std::int64_t push_bytes_per_row() const override { return inner_.push_bytes_per_row(); }
  int layers() const override { return inner_.layers(); }
  std::vector<RequestId> step(std::span<const StepItem> items, std::span<const std::byte> pulled,
                              bool exchange, StepStats& stats) override {
    if (++steps_ == 5) throw InternalError("injected executor failure");
    return inner_.step(items, pulled, exchange, stats);
  }
  std::optional<std::vector<RequestId>> fill_step(std::span<const StepItem> items,
                                                  const std::function<bool(int)>& keep_going,
                                                  StepStats& stats) override {
    return inner_.fill_step(items, keep_going, stats);
  }
  std::vector<std::uint8_t> result(RequestId request, std::int64_t remote_max,
                                   const std::vector<std::int32_t>& creditors) override {
    return inner_.result(request, remote_max, creditors);
  }

 private:
  StepExecutor& inner_;
  int steps_ = 0;
};

// What the gManager's side reports into `out`.
ManagerHooks collecting(Outcome& out) {
  ManagerHooks hooks;
  hooks.on_result = [&out](RequestId id, std::vector<std::uint8_t>&& record, int) {
    out.results[id.value()] = std::string(record.begin(), record.end());
  };
  hooks.on_failed = [&out](const Verdict& v, int) {
    out.ended[v.request.value()] = end_reason_name(v.reason);
  };
  return hooks;
}

GManagerConfig manager_config(const RunOptions& o, std::vector<std::int32_t> nodes) {
  GManagerConfig gc;
  gc.shape.capacity.assign(static_cast<std::size_t>(o.instances), o.capacity);
  gc.shape.max_lend_fraction = 0.5;
  gc.node_of_rank = std::move(nodes);
  gc.policy = o.policy;
  gc.block_tokens = kBlockTokens;
  gc.dgfm_max_moves = o.dgfm_moves;
  gc.reserve_growth = o.reserve_growth;
  return gc;
}

RManagerConfig instance_config(std::int32_t r, const RunOptions& o) {
  RManagerConfig rc;
  rc.rank = RankId{r};
  rc.capacity = o.capacity;
  rc.block_tokens = kBlockTokens;
  rc.max_lend_fraction = 0.5;
  rc.batch = BatchLimits{96, 8, 64};
  return rc;
}

Outcome run(const Workload& w, const RunOptions& o) {
  InProcessCluster cluster(o.instances, kSlotBytes, o.capacity, /*per_node=*/2);
  Gate gate;
  std::vector<std::unique_ptr<CheckingExecutor>> executors;
  for (std::int32_t r = 0; r < o.instances; ++r) {
    executors.push_back(std::make_unique<CheckingExecutor>(cluster, r,
                                                           o.fill_waits ? &gate : nullptr,
                                                           /*slow=*/r == 1));
  }
  Outcome out;
  ManagerLoop manager(manager_config(o, cluster.control(0).nodes()), collecting(out));
  for (const RequestSpec& spec : w.requests) {
    if (const auto v = manager.submit(spec))
      out.ended[spec.id.value()] = end_reason_name(v->reason);
  }
  LoopOptions lo;
  lo.remote = o.remote;
  lo.fill_waits = o.fill_waits;
  lo.cut_every_fill_step = o.cut_fills;
  lo.check_invariants = true;
  cluster.run([&](std::int32_t r) {
    const RManagerConfig rc = instance_config(r, o);
    StepExecutor& inner = *executors[static_cast<std::size_t>(r)];
    FailingExecutor failing(inner);
    StepExecutor& executor = r == o.fail_rank ? static_cast<StepExecutor&>(failing) : inner;
    InstanceLoop loop(cluster.control(r), cluster.blocks(r), executor, rc, lo,
                      r == 0 ? &manager : nullptr);
    loop.run();
  });
  out.summary = manager.summary();
  for (const auto& e : executors) {
    out.errors.insert(out.errors.end(), e->errors.begin(), e->errors.end());
    out.checked_tokens += e->checked_tokens;
    out.fill_calls += e->fill_calls;
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

class StepLoopRemote : public ::testing::TestWithParam<RemoteAttention> {};

// Every request of the mixed workload finishes, long ones on borrowed blocks, and every block
// every step read held what was written there, wherever the loop had put it.
TEST_P(StepLoopRemote, PooledInstancesKeepEveryBlockIntact) {
  RunOptions o;
  o.remote = GetParam();
  const Outcome out = run(mixed_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_TRUE(out.ended.empty());
  ASSERT_EQ(out.results.size(), 12u);
  EXPECT_GT(out.summary.loans_total, 0);
  EXPECT_EQ(out.summary.ledger_outstanding_end, 0);
  EXPECT_GT(out.checked_tokens, 0);
  const StepStats& t = out.summary.totals;
  EXPECT_GT(t.push_bytes, 0);
  EXPECT_GT(t.remote_blocks, 0);
  if (GetParam() == RemoteAttention::kPullKv) {
    EXPECT_GT(t.pull_bytes, 0);
  }
  if (GetParam() == RemoteAttention::kPushQuery) {
    EXPECT_EQ(t.pull_bytes, 0);
  }
  // The documents longer than a pool were served with blocks away from home.
  for (std::int64_t id : {0, 4, 8}) {
    const std::string& r = out.results.at(id);
    EXPECT_NE(r.substr(r.find(' ') + 1, 2), "0 ") << id << ": " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, StepLoopRemote,
                         ::testing::Values(RemoteAttention::kPushQuery, RemoteAttention::kPullKv,
                                           RemoteAttention::kAuto));

// Without fill waits nothing depends on the threads' timing: two runs take the same decisions.
TEST(StepLoop, RunsWithoutFillWaitsAreReproducible) {
  const Outcome a = run(mixed_workload(), RunOptions{});
  const Outcome b = run(mixed_workload(), RunOptions{});
  EXPECT_EQ(a.summary.steps, b.summary.steps);
  EXPECT_EQ(a.summary.loans_total, b.summary.loans_total);
  EXPECT_EQ(a.summary.dgfm_moves, b.summary.dgfm_moves);
  EXPECT_EQ(a.summary.totals.push_bytes, b.summary.totals.push_bytes);
  EXPECT_EQ(a.summary.totals.dgfm_bytes, b.summary.totals.dgfm_bytes);
  EXPECT_EQ(a.results, b.results);
  ASSERT_EQ(a.summary.per_step.size(), b.summary.per_step.size());
  for (std::size_t s = 0; s < a.summary.per_step.size(); ++s) {
    EXPECT_EQ(a.summary.per_step[s].ledger_blocks, b.summary.per_step[s].ledger_blocks) << s;
    EXPECT_EQ(a.summary.per_step[s].sum.decode_tokens, b.summary.per_step[s].sum.decode_tokens);
  }
}

// The loop's phases driven by one thread for every instance (as the simulator drives them):
// the same decisions, bytes and results as the instances on threads.
TEST(StepLoop, PhasesDrivenByOneThreadTakeTheThreadedRunsDecisions) {
  const Workload w = mixed_workload();
  const RunOptions o;
  const Outcome threaded = run(w, o);

  InProcessCluster cluster(o.instances, kSlotBytes, o.capacity, 2);
  std::vector<std::unique_ptr<CheckingExecutor>> executors;
  Outcome out;
  ManagerLoop manager(manager_config(o, cluster.control(0).nodes()), collecting(out));
  for (const RequestSpec& spec : w.requests) ASSERT_FALSE(manager.submit(spec));
  LoopOptions lo;
  lo.fill_waits = false;
  std::vector<std::unique_ptr<InstanceLoop>> loops;
  for (std::int32_t r = 0; r < o.instances; ++r) {
    executors.push_back(std::make_unique<CheckingExecutor>(cluster, r, nullptr, false));
    const RManagerConfig rc = instance_config(r, o);
    loops.push_back(std::make_unique<InstanceLoop>(cluster.control(r), cluster.blocks(r),
                                                   *executors.back(), rc, lo,
                                                   r == 0 ? &manager : nullptr));
  }
  for (std::int64_t step = 1;; ++step) {
    std::vector<InstanceReport> reports;
    for (auto& loop : loops) reports.push_back(loop->report(step));
    const std::vector<InstanceDecision> ds = manager.decide(step, std::move(reports));
    bool go = true;
    for (std::size_t r = 0; r < loops.size(); ++r) go = loops[r]->apply(ds[r]) && go;
    if (!go) break;
    for (auto& loop : loops) loop->run_step();
    for (auto& loop : loops) loop->end_step();
    ASSERT_LT(step, 10000);
  }
  for (const auto& e : executors) {
    out.errors.insert(out.errors.end(), e->errors.begin(), e->errors.end());
  }
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  const RunSummary& a = threaded.summary;
  const RunSummary& b = manager.summary();
  EXPECT_EQ(out.results, threaded.results);
  EXPECT_EQ(b.per_step.size(), a.per_step.size());
  EXPECT_EQ(b.loans_total, a.loans_total);
  EXPECT_EQ(b.dgfm_moves, a.dgfm_moves);
  EXPECT_EQ(b.preemptions, a.preemptions);
  EXPECT_EQ(b.totals.push_bytes, a.totals.push_bytes);
  EXPECT_EQ(b.totals.pull_bytes, a.totals.pull_bytes);
  EXPECT_EQ(b.totals.dgfm_bytes, a.totals.dgfm_bytes);
}

// DGFM pays debts back: blocks come home (through scratch where a move vacates its target)
// and every block still reads right after its move.
TEST(StepLoop, DgfmMovesKeepEveryBlockIntact) {
  RunOptions o;
  o.instances = 2;
  o.capacity = 40;
  o.reserve_growth = false;
  const Outcome out = run(dgfm_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_EQ(out.results.size(), 3u);
  EXPECT_GT(out.summary.loans_total, 0);
  EXPECT_GT(out.summary.dgfm_moves, 0);
  EXPECT_GT(out.summary.totals.dgfm_bytes, 0);

  o.dgfm_moves = 0;
  const Outcome off = run(dgfm_workload(), o);
  EXPECT_TRUE(off.errors.empty()) << joined(off.errors);
  EXPECT_EQ(off.results.size(), 3u);
  EXPECT_EQ(off.summary.dgfm_moves, 0);
  EXPECT_EQ(off.summary.totals.dgfm_bytes, 0);
  // Paid back: fewer block-steps away from home than without moves.
  const auto debt = [](const RunSummary& s) {
    std::int64_t sum = 0;
    for (const ClusterStep& cs : s.per_step) sum += cs.ledger_blocks;
    return sum;
  };
  EXPECT_LT(debt(out.summary), debt(off.summary));
}

// The local policy is the same loop with lending off: nothing is borrowed, and a document
// longer than one pool is rejected while the rest finish.
TEST(StepLoop, LocalPolicyNeverBorrows) {
  RunOptions o;
  o.policy = KvPolicy::kLocal;
  const Outcome out = run(mixed_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_EQ(out.summary.loans_total, 0);
  EXPECT_EQ(out.summary.ledger_max, 0);
  EXPECT_EQ(out.summary.totals.push_bytes + out.summary.totals.pull_bytes, 0);
  for (std::int64_t id : {0, 4, 8}) EXPECT_EQ(out.ended.at(id), "kv_capacity") << id;
  EXPECT_EQ(out.results.size() + out.ended.size(), 12u);
  for (const auto& [id, r] : out.results) EXPECT_EQ(r.substr(r.find(' ')), " 0 0") << id;
}

// One instance is the one-rank case of the same loop.
TEST(StepLoop, OneInstanceRunsAlone) {
  RunOptions o;
  o.instances = 1;
  o.capacity = 64;
  o.fill_waits = true;  // nobody to wait for: no fill step
  const Outcome out = run(mixed_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_EQ(out.results.size(), 12u);
  EXPECT_EQ(out.summary.loans_total, 0);
  EXPECT_EQ(out.fill_calls, 0);
}

// With fill waits, the instances that finish a step first run extra all-home steps while a
// slow one finishes its own; every block they read and wrote stays right.
TEST(StepLoop, FillStepsRunWhileAnInstanceIsSlow) {
  RunOptions o;
  o.fill_waits = true;
  const Outcome out = run(mixed_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_EQ(out.results.size(), 12u);
  EXPECT_GT(out.fill_calls, 0);
  EXPECT_GT(out.summary.totals.fill_steps + out.summary.totals.fill_cuts, 0);
}

// A fill step cut before its last layer is dropped whole: nothing it computed is committed.
TEST(StepLoop, CutFillStepsAreDropped) {
  RunOptions o;
  o.fill_waits = true;
  o.cut_fills = true;
  const Outcome out = run(mixed_workload(), o);
  EXPECT_TRUE(out.errors.empty()) << joined(out.errors);
  EXPECT_EQ(out.results.size(), 12u);
  EXPECT_EQ(out.summary.totals.fill_steps, 0);
  EXPECT_GT(out.summary.totals.fill_cuts, 0);
}

// An instance that fails mid-run ends the whole run with its error; no other instance waits
// for it forever.
TEST(StepLoop, AFailingInstanceEndsTheRunWithItsError) {
  RunOptions o;
  o.fail_rank = 2;
  try {
    run(mixed_workload(), o);
    FAIL() << "the run ended normally";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("injected executor failure"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace infllm
