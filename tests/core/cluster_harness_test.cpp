// cluster_harness_test.cpp: the whole contract protocol over simulated instances, under stress.
//
// Randomized workloads (fixed seeds, SCOPED_TRACE) over 8 and 32 instances with tight pools:
// arrivals of random lengths, growth, completion, preemption and DGFM rounds, with every
// component's invariants and the cross-rank ledger rule checked after every step (on a sample of
// steps in Debug and sanitizer builds). Also the capacity rules of docs/design.md: rejection at
// admission, the oldest request never preempted, and no livelock.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/cluster_check.hpp"
#include "core/cluster_harness.hpp"
#include "core/errors.hpp"

namespace infllm {
namespace {

#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
constexpr std::int64_t kCheckEvery = 1;
#else
constexpr std::int64_t kCheckEvery = 16;  // sanitizers and Debug: a sample of steps
#endif

ClusterConfig tight_cluster(std::int32_t ranks) {
  ClusterConfig c;
  c.ranks = ranks;
  c.ranks_per_node = 4;
  c.capacity = 24;  // 384 tokens a pool: long requests must borrow
  c.block_tokens = 16;
  c.max_lend_fraction = 0.5;
  c.batch.max_batch_tokens = 96;
  c.batch.max_num_seqs = 8;
  c.batch.max_chunk = 64;
  c.dgfm_max_moves = 16;
  c.max_placements = 8;
  // Optimistic admission, so these workloads preempt and the preemption paths are exercised.
  c.reserve_growth = false;
  return c;
}

// Counts what a run did. An operation: an arrival, a growth (a request appending tokens in a
// step), a completion, or a gManager decision (grant, placement, preemption, failure, move).
struct RunTally {
  std::int64_t submitted = 0;
  std::int64_t growths = 0;
  std::int64_t completions = 0;
  std::int64_t tokens = 0;
  std::int64_t steps = 0;
  std::int64_t operations(const ClusterHarness& h) const {
    return submitted + growths + completions + h.gmanager().counters().decisions();
  }
  void add(const StepTotals& s) {
    growths += s.items;
    completions += s.finished;
    tokens += s.tokens;
    ++steps;
  }
};

// check_invariants() as an assertion that shows which invariant broke.
::testing::AssertionResult invariants_hold(const ClusterHarness& h) {
  try {
    h.check_invariants();
    return ::testing::AssertionSuccess();
  } catch (const InternalError& e) {
    return ::testing::AssertionFailure() << e.what();
  }
}

RequestSpec random_request(std::mt19937_64& rng, std::int64_t id, std::int64_t max_prompt,
                           std::int64_t max_new) {
  std::uniform_int_distribution<std::int64_t> prompt(1, max_prompt);
  std::uniform_int_distribution<std::int64_t> gen(1, max_new);
  return RequestSpec{RequestId{id}, prompt(rng), gen(rng), id};
}

// Steps until idle (or `max_steps`), checking invariants; returns whether it went idle.
bool drain(ClusterHarness& h, std::int64_t max_steps, RunTally& t) {
  for (std::int64_t s = 0; s < max_steps && !h.idle(); ++s) {
    t.add(h.step());
    if (t.steps % kCheckEvery == 0 && !invariants_hold(h)) {
      ADD_FAILURE() << invariants_hold(h).message() << " (step " << t.steps << ")";
      return false;
    }
  }
  EXPECT_TRUE(invariants_hold(h));
  return h.idle();
}

struct StressCase {
  std::int32_t ranks;
  std::uint64_t seed;
};
void PrintTo(const StressCase& c, std::ostream* os) { *os << c.ranks << " ranks, seed " << c.seed; }

class ClusterStress : public ::testing::TestWithParam<StressCase> {};

TEST_P(ClusterStress, RandomWorkloadKeepsEveryInvariant) {
  const StressCase p = GetParam();
  SCOPED_TRACE("seed " + std::to_string(p.seed) + ", " + std::to_string(p.ranks) + " ranks");
  std::mt19937_64 rng(p.seed);
  ClusterHarness h(tight_cluster(p.ranks));
  RunTally t;
  std::int64_t next_id = 0;
  std::int64_t preempted_seen = 0;
  std::bernoulli_distribution arrive(0.5);
  while (t.operations(h) < 100'000) {
    // Arrivals keep the queue a little ahead of the cluster: it stays oversubscribed.
    if (arrive(rng) && h.gmanager().queued() < static_cast<std::size_t>(2 * p.ranks)) {
      const auto verdict = h.submit(random_request(rng, next_id++, 500, 120));
      ++t.submitted;
      if (verdict) {
        EXPECT_EQ(verdict->reason, EndReason::kKvCapacity);
      }
    }
    t.add(h.step());
    if (t.steps % kCheckEvery == 0) {
      ASSERT_TRUE(invariants_hold(h)) << "step " << t.steps;
    }
    preempted_seen = h.gmanager().counters().preemptions;
  }
  ASSERT_TRUE(drain(h, 200'000, t));
  const GManagerCounters& c = h.gmanager().counters();
  EXPECT_GT(c.grants, 0);
  EXPECT_GT(c.moves, 0);
  EXPECT_GT(preempted_seen, 0) << "the pools were not tight enough to preempt";
  EXPECT_EQ(h.remote_blocks(), 0);
  for (std::int32_t r = 0; r < h.ranks(); ++r) {
    EXPECT_EQ(h.rmanager(RankId{r}).stats().used, 0) << "rank " << r << " leaked slots";
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ClusterStress,
                         ::testing::Values(StressCase{8, 1}, StressCase{8, 2}, StressCase{32, 3},
                                           StressCase{32, 4}),
                         [](const ::testing::TestParamInfo<StressCase>& i) {
                           return "ranks" + std::to_string(i.param.ranks) + "_seed" +
                                  std::to_string(i.param.seed);
                         });

TEST(ClusterCapacity, RequestLargerThanTheEmptyClusterIsRejectedWithKvCapacity) {
  ClusterConfig c = tight_cluster(2);
  ClusterHarness h(c);
  // Pooled: 24 own + 12 lendable = 36 blocks = 576 tokens at most.
  const auto verdict = h.submit(RequestSpec{RequestId{1}, 500, 100, 0});
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->reason, EndReason::kKvCapacity);
  EXPECT_EQ(h.gmanager().status(RequestId{1}), RequestStatus::kRejected);
  EXPECT_EQ(h.gmanager().reason(RequestId{1}), EndReason::kKvCapacity);
}

TEST(ClusterCapacity, LocalPolicyRejectsWhatOnePoolCannotHold) {
  ClusterConfig c = tight_cluster(2);
  c.policy = KvPolicy::kLocal;
  ClusterHarness h(c);
  EXPECT_TRUE(h.submit(RequestSpec{RequestId{1}, 300, 100, 0}).has_value());  // 25 > 24 blocks
  EXPECT_FALSE(h.submit(RequestSpec{RequestId{2}, 300, 84, 1}).has_value());  // 24 blocks
}

TEST(ClusterCapacity, LongRequestBorrowsAndFinishes) {
  ClusterHarness h(tight_cluster(2));
  ASSERT_FALSE(h.submit(RequestSpec{RequestId{1}, 500, 60, 0}).has_value());  // 35 blocks
  RunTally t;
  ASSERT_TRUE(drain(h, 10'000, t));
  EXPECT_EQ(h.gmanager().status(RequestId{1}), RequestStatus::kDone);
  EXPECT_GE(h.gmanager().counters().grants, 11);
}

// The cross-rank check (core/cluster_check.hpp, run by the MPI engine with
// --check-invariants) on a cluster with loans outstanding: it passes, and each kind of
// disagreement between the instances' views and the ledger is caught.
TEST(ClusterCheck, CatchesEveryKindOfDisagreement) {
  ClusterHarness h(tight_cluster(2));
  ASSERT_FALSE(h.submit(RequestSpec{RequestId{1}, 500, 60, 0}).has_value());  // 35 blocks
  for (int i = 0; i < 200 && h.gmanager().ledger().total_blocks() == 0; ++i) h.step();
  ASSERT_GT(h.gmanager().ledger().total_blocks(), 0) << "no loan to check";
  std::vector<InstanceView> views;
  for (std::int32_t r = 0; r < h.ranks(); ++r) {
    views.push_back(instance_view(h.rmanager(RankId{r}), RankId{r}));
  }
  EXPECT_NO_THROW(check_cluster(h.gmanager(), views));
  const auto message = [&](std::vector<InstanceView> v) -> std::string {
    try {
      check_cluster(h.gmanager(), v);
    } catch (const InternalError& e) {
      return e.what();
    }
    return "";
  };
  // The creditor and the debtor: whichever view holds lent slots, and whichever names them.
  const std::size_t creditor = views[0].held.empty() ? 1 : 0;
  ASSERT_FALSE(views[creditor].held.empty());
  const std::size_t debtor = 1 - creditor;
  auto v = views;
  v[creditor].held.pop_back();
  EXPECT_NE(message(v).find("what the creditor holds"), std::string::npos);
  v = views;
  v[creditor].held.back().second.request = RequestId{99};
  EXPECT_NE(message(v).find("another request than its contract"), std::string::npos);
  v = views;
  v[debtor].named.push_back(v[debtor].named.front());
  EXPECT_NE(message(v).find("named by two table entries"), std::string::npos);
  v = views;
  std::erase_if(v[debtor].named,
                [&](const BlockRef& r) { return r.rank.value() == std::int32_t(creditor); });
  EXPECT_NE(message(v).find("the debtor's block tables"), std::string::npos);
  v = views;
  v[debtor].requests.push_back(RequestId{77});
  EXPECT_NE(message(v).find("runs a request not running"), std::string::npos);
}

TEST(ClusterCapacity, OldestRunningRequestIsNeverPreempted) {
  std::mt19937_64 rng(11);
  SCOPED_TRACE("seed 11");
  ClusterHarness h(tight_cluster(4));
  for (std::int64_t i = 0; i < 40; ++i) h.submit(random_request(rng, i, 500, 120));
  std::int64_t preemptions = 0;
  for (int s = 0; s < 20'000 && !h.idle(); ++s) {
    // The oldest running request before the boundary must still run (or be done) after it.
    std::optional<RequestId> oldest;
    for (std::int64_t i = 0; i < 40 && !oldest; ++i) {
      if (h.gmanager().status(RequestId{i}) == RequestStatus::kRunning) oldest = RequestId{i};
    }
    const std::int64_t before = h.gmanager().counters().preemptions;
    h.step();
    if (oldest) {
      ASSERT_NE(h.gmanager().status(*oldest), RequestStatus::kQueued) << "oldest preempted";
    }
    preemptions += h.gmanager().counters().preemptions - before;
  }
  EXPECT_TRUE(h.idle());
  EXPECT_GT(preemptions, 0);
}

struct LivelockCase {
  KvPolicy policy;
  std::uint64_t seed;
};
void PrintTo(const LivelockCase& c, std::ostream* os) {
  *os << (c.policy == KvPolicy::kPooled ? "pooled" : "local") << ", seed " << c.seed;
}

class ClusterLivelock : public ::testing::TestWithParam<LivelockCase> {};

TEST_P(ClusterLivelock, OversubscribedWorkloadEndsWithEveryRequestAccountedFor) {
  const LivelockCase p = GetParam();
  SCOPED_TRACE("seed " + std::to_string(p.seed));
  std::mt19937_64 rng(p.seed);
  ClusterConfig c = tight_cluster(8);
  c.policy = p.policy;
  ClusterHarness h(c);
  constexpr std::int64_t kRequests = 300;
  for (std::int64_t i = 0; i < kRequests; ++i) h.submit(random_request(rng, i, 700, 200));
  RunTally t;
  ASSERT_TRUE(drain(h, 100'000, t)) << "still busy: livelock";
  std::int64_t done = 0;
  for (std::int64_t i = 0; i < kRequests; ++i) {
    const RequestStatus s = h.gmanager().status(RequestId{i});
    ASSERT_TRUE(s == RequestStatus::kDone || s == RequestStatus::kRejected ||
                s == RequestStatus::kFailed)
        << "q" << i << " is " << request_status_name(s);
    done += s == RequestStatus::kDone ? 1 : 0;
  }
  EXPECT_GT(done, 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, ClusterLivelock,
                         ::testing::Values(LivelockCase{KvPolicy::kPooled, 21},
                                           LivelockCase{KvPolicy::kPooled, 22},
                                           LivelockCase{KvPolicy::kLocal, 23}),
                         [](const ::testing::TestParamInfo<LivelockCase>& i) {
                           return std::string(i.param.policy == KvPolicy::kPooled ? "pooled"
                                                                                  : "local") +
                                  "_seed" + std::to_string(i.param.seed);
                         });

TEST(ClusterProtocol, StopFlagReachesEveryRankAtTheSameBoundary) {
  ClusterHarness h(tight_cluster(4));
  h.submit(RequestSpec{RequestId{1}, 100, 10, 0});
  h.step();
  h.rmanager(RankId{2}).request_stop();
  h.step();
  for (std::int32_t r = 0; r < 4; ++r) EXPECT_TRUE(h.rmanager(RankId{r}).stopped());
}

}  // namespace
}  // namespace infllm
