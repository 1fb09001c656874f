// bench_core.cpp: `infllm bench core`: the cost of the DistKV control plane at one step boundary.
//
// Two measurements, both on one CPU thread of rank 0, which is where the gManager runs:
//
//   gManager  a cluster of simulated instances (core/cluster_harness.hpp) runs a long-document
//             workload with pools kept tight, so requests borrow, get preempted and DGFM moves
//             blocks; we time GManager::decide() (grants, preemption, DGFM plan, placement) at
//             each measured boundary and count the decisions it makes.
//   DGFM      plan_dgfm() alone on a fragmented ledger: pools 90% full, 30% of the blocks away
//             from home, 10% free; the budget is 256 MiB per boundary of SmolLM2-135M blocks.
//
// Goal (issue 4): well under 1 ms per boundary at 32 instances. The ratio column is
// 1 ms / median time (> 1: under the goal); decisions/s is decisions over the mean time. The
// median resists other processes on a shared machine; max shows the worst boundary.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "app/bench.hpp"
#include "core/block_geometry.hpp"
#include "core/cluster_harness.hpp"
#include "core/debt_ledger.hpp"
#include "core/dgfm.hpp"

namespace infllm::app {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kGoalMs = 1.0;
constexpr std::int32_t kBlockTokens = 16;
constexpr std::int64_t kBudgetBytes = 256LL << 20;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// SmolLM2-135M: 30 layers, 3 kv heads, head_dim 64, f16, 16 tokens a block.
std::int64_t budget_moves() {
  const BlockGeometry g{kBlockTokens, 30, 3, 64, KvDtype::kF16};
  return kBudgetBytes / static_cast<std::int64_t>(g.block_bytes());
}

struct Size {
  std::int32_t instances;
  std::int64_t blocks;
};

struct GmRow {
  double decide_ms = 0;  // median per boundary
  double decide_mean_ms = 0;
  double decide_max_ms = 0;
  double decisions = 0;     // mean per boundary
  std::int64_t remote = 0;  // at the end
  std::int64_t used = 0;
  std::int64_t boundaries = 0;
};

GmRow bench_gmanager(const Size& size, std::uint64_t seed) {
  ClusterConfig c;
  c.ranks = size.instances;
  c.ranks_per_node = 8;
  c.capacity = static_cast<std::int32_t>(size.blocks / size.instances);
  c.block_tokens = kBlockTokens;
  c.max_lend_fraction = 0.5;
  c.batch = BatchLimits{2048, 64, 1024};
  c.dgfm_max_moves = budget_moves();
  c.max_placements = 64;
  ClusterHarness h(c);
  std::mt19937_64 rng(seed);
  const std::int64_t pool_tokens = static_cast<std::int64_t>(c.capacity) * kBlockTokens;
  // Long documents: a quarter of a pool to one and a half pools, then 256 generated tokens.
  std::uniform_int_distribution<std::int64_t> prompt(pool_tokens / 4, pool_tokens * 3 / 2);
  std::int64_t next = 0;
  const auto top_up = [&] {
    while (h.gmanager().queued() < static_cast<std::size_t>(size.instances)) {
      h.submit(RequestSpec{RequestId{next}, prompt(rng), 256, next});
      ++next;
    }
  };
  // One boundary driven by hand, so that decide() alone is timed.
  GmRow row;
  std::vector<double> times;
  std::int64_t step = 0;
  const auto boundary = [&](bool measure) {
    top_up();
    std::vector<StepReport> reports;
    reports.reserve(static_cast<std::size_t>(size.instances));
    for (std::int32_t r = 0; r < size.instances; ++r) {
      reports.push_back(h.rmanager(RankId{r}).make_report(step));
    }
    const std::int64_t before = h.gmanager().counters().decisions();
    const auto t0 = Clock::now();
    const std::vector<RankDecision> decisions = h.gmanager().decide(reports);
    const double ms = ms_since(t0);
    if (measure) {
      times.push_back(ms);
      row.decide_mean_ms += ms;
      row.decide_max_ms = std::max(row.decide_max_ms, ms);
      row.decisions += static_cast<double>(h.gmanager().counters().decisions() - before);
      ++row.boundaries;
    }
    for (std::int32_t r = 0; r < size.instances; ++r) {
      h.rmanager(RankId{r}).apply(decisions[static_cast<std::size_t>(r)]);
    }
    for (std::int32_t r = 0; r < size.instances; ++r) h.rmanager(RankId{r}).run_step();
    ++step;
  };
  // Warm up until the pools have filled and loans exist, then measure.
  const std::int64_t warmup = 2 * pool_tokens * 3 / 2 / c.batch.max_chunk + 20;
  for (std::int64_t s = 0; s < warmup; ++s) boundary(false);
  for (int s = 0; s < 100; ++s) boundary(true);
  row.decide_mean_ms /= static_cast<double>(row.boundaries);
  std::sort(times.begin(), times.end());
  row.decide_ms = times[times.size() / 2];
  row.decisions /= static_cast<double>(row.boundaries);
  row.remote = h.remote_blocks();
  for (std::int32_t r = 0; r < size.instances; ++r) {
    row.used += h.rmanager(RankId{r}).stats().used;
  }
  return row;
}

struct DgfmRow {
  double plan_ms = 0;  // median
  std::int64_t remote_before = 0;
  std::int64_t moves = 0;
  std::int64_t remote_after = 0;
};

DgfmRow bench_dgfm(const Size& size, std::uint64_t seed) {
  const std::int32_t n = size.instances;
  const auto cap = static_cast<std::int32_t>(size.blocks / n);
  std::mt19937_64 rng(seed);
  DebtLedger ledger(n);
  std::vector<std::vector<SlotId>> free(static_cast<std::size_t>(n));
  std::vector<std::int32_t> room(static_cast<std::size_t>(n));
  std::uniform_int_distribution<std::int32_t> other(0, n - 2);
  std::int64_t request = 0;
  for (std::int32_t c = 0; c < n; ++c) {
    const std::int32_t used = cap * 9 / 10;
    const std::int32_t held = used * 3 / 10;  // blocks of other instances' requests
    // Held blocks come in contracts of up to 8 slots, each for a request of a random debtor.
    for (std::int32_t s = 0; s < held;) {
      std::int32_t d = other(rng);
      d += d >= c ? 1 : 0;
      const std::int32_t k = std::min(8, held - s);
      std::vector<SlotId> slots;
      for (std::int32_t i = 0; i < k; ++i) slots.push_back(SlotId{s + i});
      ledger.open(RankId{d}, RankId{c}, RequestId{request++}, slots, 0);
      s += k;
    }
    for (std::int32_t s = used; s < cap; ++s)
      free[static_cast<std::size_t>(c)].push_back(SlotId{s});
    room[static_cast<std::size_t>(c)] = std::max(0, cap / 2 - held);
  }
  DgfmRow row;
  row.remote_before = ledger.total_blocks();
  std::vector<double> times;
  for (int rep = 0; rep < 7; ++rep) {
    auto f = free;
    auto r = room;
    DgfmInput in;
    in.ledger = &ledger;
    in.free_slots = &f;
    in.lend_room = &r;
    in.max_moves = budget_moves();
    in.now = 1;
    const auto t0 = Clock::now();
    const DgfmPlan plan = plan_dgfm(in);
    times.push_back(ms_since(t0));
    row.moves = static_cast<std::int64_t>(plan.moves.size());
    row.remote_after = plan.remote_after;
  }
  std::sort(times.begin(), times.end());
  row.plan_ms = times[times.size() / 2];
  return row;
}

int run(int /*argc*/, char** /*argv*/, const BenchOptions& options) {
  std::vector<Size> sizes = {{32, 100'000}, {256, 100'000}, {1024, 100'000}};
  if (options.full) {
    sizes = {{32, 100'000},    {32, 1'000'000}, {256, 100'000},
             {256, 1'000'000}, {1024, 100'000}, {1024, 1'000'000}};
  }
  std::printf("# infllm bench core%s: DistKV control plane per step boundary, 1 CPU thread\n",
              options.full ? " --full" : "");
  std::printf("# block = SmolLM2-135M, %d tokens f16; DGFM budget %lld MiB = %lld moves/boundary\n",
              kBlockTokens, static_cast<long long>(kBudgetBytes >> 20),
              static_cast<long long>(budget_moves()));
  std::printf(
      "# gManager: decide() on a long-document workload with tight pools (100 boundaries)\n");
  std::printf("%9s %9s %10s %10s %10s %10s %13s %9s %9s %7s\n", "instances", "blocks", "median_ms",
              "mean_ms", "max_ms", "decisions", "decisions/s", "used", "remote", "goal_x");
  bool goal_met = true;
  for (const Size& s : sizes) {
    const GmRow g = bench_gmanager(s, 17);
    const double ratio = kGoalMs / g.decide_ms;
    if (s.instances == 32 && ratio < 1.0) goal_met = false;
    std::printf("%9d %9lld %10.4f %10.4f %10.3f %10.1f %13.3g %9lld %9lld %7.1f\n", s.instances,
                static_cast<long long>(s.blocks), g.decide_ms, g.decide_mean_ms, g.decide_max_ms,
                g.decisions, g.decisions / (g.decide_mean_ms / 1e3), static_cast<long long>(g.used),
                static_cast<long long>(g.remote), ratio);
    std::fflush(stdout);
  }
  std::printf(
      "# DGFM: plan_dgfm() alone; pools 90%% full, 30%% of blocks away from home "
      "(median of 7)\n");
  std::printf("%9s %9s %11s %13s %9s %13s %7s\n", "instances", "blocks", "plan_ms", "remote_before",
              "moves", "remote_after", "goal_x");
  for (const Size& s : sizes) {
    const DgfmRow d = bench_dgfm(s, 23);
    const double ratio = kGoalMs / d.plan_ms;
    if (s.instances == 32 && ratio < 1.0) goal_met = false;
    std::printf("%9d %9lld %11.4f %13lld %9lld %13lld %7.1f\n", s.instances,
                static_cast<long long>(s.blocks), d.plan_ms,
                static_cast<long long>(d.remote_before), static_cast<long long>(d.moves),
                static_cast<long long>(d.remote_after), ratio);
    std::fflush(stdout);
  }
  std::printf("# goal: < %.0f ms per boundary at 32 instances (goal_x = %.0f ms / time)\n", kGoalMs,
              kGoalMs);
  std::printf("%s\n", goal_met ? "OK" : "BELOW-GOAL");
  return 0;
}

const BenchRegistration kReg{"core", &run};

}  // namespace
}  // namespace infllm::app
