// g_manager_test.cpp: the gManager's decisions from hand-made step reports.
//
// Named state transitions: placement, grants (most lendable creditor first, same node first, no
// slot promised twice), refusal to chain, release on completion, preemption of the youngest,
// failure of the oldest when it cannot grow alone, the local policy, and misuse.
#include <gtest/gtest.h>

#include <set>

#include "core/errors.hpp"
#include "core/g_manager.hpp"

namespace infllm {
namespace {

GManagerConfig config(std::int32_t ranks, std::int32_t ranks_per_node = 1) {
  GManagerConfig c;
  c.shape.capacity.assign(static_cast<std::size_t>(ranks), 8);
  c.shape.max_lend_fraction = 1.0;
  for (std::int32_t r = 0; r < ranks; ++r) c.node_of_rank.push_back(r / ranks_per_node);
  c.block_tokens = 4;
  c.dgfm_max_moves = 0;
  return c;
}

// One empty report per rank; `free[r]` slots 0..free[r]-1 promised, all lendable.
std::vector<StepReport> reports(const std::vector<std::int32_t>& free) {
  std::vector<StepReport> out;
  for (std::size_t r = 0; r < free.size(); ++r) {
    StepReport rep;
    rep.rank = RankId{static_cast<std::int32_t>(r)};
    for (std::int32_t s = 0; s < free[r]; ++s) rep.free_slots.push_back(SlotId{s});
    rep.lend_limit = free[r];
    out.push_back(rep);
  }
  return out;
}

// Submits requests 1..n (12 tokens = 3 blocks each) and places them all on rank 0.
void place_on_rank0(GManager& gm, std::int32_t n) {
  for (std::int32_t i = 1; i <= n; ++i) gm.submit(RequestSpec{RequestId{i}, 8, 4, i});
  std::vector<std::int32_t> free(static_cast<std::size_t>(gm.ranks()), 0);
  free[0] = 8;
  const auto d = gm.decide(reports(free));
  ASSERT_EQ(d[0].placements.size(), static_cast<std::size_t>(n));
}

TEST(GManager, PlacesANewRequestOnTheLeastLoadedInstance) {
  GManager gm(config(3));
  gm.submit(RequestSpec{RequestId{1}, 8, 4, 0});
  auto reps = reports({8, 8, 8});
  reps[0].expected_work = 100;
  reps[2].expected_work = 50;
  const auto d = gm.decide(reps);
  ASSERT_EQ(d[1].placements.size(), 1u);
  EXPECT_EQ(gm.status(RequestId{1}), RequestStatus::kRunning);
}

TEST(GManager, GrantsFromTheCreditorWithTheMostLendableSlots) {
  GManager gm(config(3));
  place_on_rank0(gm, 1);
  auto reps = reports({0, 2, 4});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 2});
  const auto d = gm.decide(reps);
  EXPECT_EQ(d[2].grants_out.size(), 2u);
  EXPECT_EQ(d[0].grants_in.size(), 2u);
  EXPECT_TRUE(d[1].grants_out.empty());
  EXPECT_EQ(gm.ledger().debt(RankId{0}, RankId{2}), 2);
  gm.check_invariants();
}

TEST(GManager, PrefersACreditorOnTheDebtorsNode) {
  GManager gm(config(4, /*ranks_per_node=*/2));
  place_on_rank0(gm, 1);
  auto reps = reports({0, 1, 5, 5});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 1});
  const auto d = gm.decide(reps);
  ASSERT_EQ(d[1].grants_out.size(), 1u);
  EXPECT_EQ(gm.ledger().debt(RankId{0}, RankId{1}), 1);
}

TEST(GManager, PrefersACreditorOnTheDebtorsNodeWhateverTheRankMapping) {
  GManagerConfig c = config(4);
  c.node_of_rank = {0, 1, 0, 1};  // a cyclic launch: ranks 0 and 2 share a node
  GManager gm(c);
  place_on_rank0(gm, 1);
  auto reps = reports({0, 5, 1, 5});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 1});
  const auto d = gm.decide(reps);
  ASSERT_EQ(d[2].grants_out.size(), 1u);
  EXPECT_EQ(gm.ledger().debt(RankId{0}, RankId{2}), 1);
  c.node_of_rank = {0, 1, 0};
  EXPECT_THROW(GManager{c}, InternalError);
}

TEST(GManager, NoSlotIsPromisedTwice) {
  GManager gm(config(3));
  place_on_rank0(gm, 2);
  auto reps = reports({0, 0, 3});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 2});
  reps[0].needs.push_back(LoanNeed{RequestId{2}, 2});
  const auto d = gm.decide(reps);
  std::set<std::int32_t> slots;
  for (const Grant& g : d[2].grants_out) EXPECT_TRUE(slots.insert(g.slot.slot.value()).second);
  EXPECT_LE(slots.size(), 3u);
  // The oldest request got what it asked for; the rest was unmet.
  EXPECT_EQ(gm.ledger().debt(RankId{0}, RankId{2}), static_cast<std::int64_t>(slots.size()));
  gm.check_invariants();
}

TEST(GManager, RefusesALoanForARequestTheRankDoesNotRun) {
  GManager gm(config(2));
  place_on_rank0(gm, 1);
  auto reps = reports({0, 4});
  reps[1].needs.push_back(LoanNeed{RequestId{1}, 1});  // q1 runs on rank 0: a chain
  EXPECT_THROW(gm.decide(reps), InternalError);
}

TEST(GManager, CompletionReleasesEveryLoanOfTheRequest) {
  GManager gm(config(2));
  place_on_rank0(gm, 1);
  auto reps = reports({0, 4});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 2});
  gm.decide(reps);
  auto done = reports({0, 0});
  done[0].finished.push_back(RequestId{1});
  const auto d = gm.decide(done);
  EXPECT_EQ(d[1].releases.size(), 2u);
  EXPECT_EQ(gm.ledger().total_blocks(), 0);
  EXPECT_EQ(gm.status(RequestId{1}), RequestStatus::kDone);
  gm.check_invariants();
}

TEST(GManager, UnmetNeedPreemptsTheYoungestOnThatRank) {
  GManager gm(config(2));
  place_on_rank0(gm, 2);
  auto reps = reports({0, 0});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 1});
  const auto d = gm.decide(reps);
  ASSERT_EQ(d[0].preempt.size(), 1u);
  EXPECT_EQ(d[0].preempt[0], RequestId{2});
  EXPECT_EQ(gm.status(RequestId{2}), RequestStatus::kQueued);
  EXPECT_EQ(gm.status(RequestId{1}), RequestStatus::kRunning);
  EXPECT_TRUE(d[0].placements.empty());  // no admission under pressure
  gm.check_invariants();
}

TEST(GManager, OldestThatCannotGrowAloneFailsWithKvCapacity) {
  GManager gm(config(2));
  place_on_rank0(gm, 1);
  auto reps = reports({0, 0});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 1});
  EXPECT_TRUE(gm.decide(reps)[0].fail.empty());  // releases may still be on their way
  const auto d = gm.decide(reps);
  ASSERT_EQ(d[0].fail.size(), 1u);
  EXPECT_EQ(d[0].fail[0].reason, EndReason::kKvCapacity);
  EXPECT_EQ(gm.status(RequestId{1}), RequestStatus::kFailed);
  EXPECT_EQ(gm.reason(RequestId{1}), EndReason::kKvCapacity);
}

// A running request still growing into the free slots keeps a new one out until they cover
// both; without the reservation the new one is placed at once (and would be preempted later).
TEST(GManager, PlacementReservesWhatRunningRequestsStillNeed) {
  for (const bool reserve : {true, false}) {
    SCOPED_TRACE(reserve ? "reserve_growth" : "optimistic");
    GManagerConfig c = config(2);
    c.reserve_growth = reserve;
    GManager gm(c);
    gm.submit(RequestSpec{RequestId{1}, 8, 32, 0});
    gm.decide(reports({8, 8}));
    ASSERT_EQ(gm.status(RequestId{1}), RequestStatus::kRunning);
    gm.submit(RequestSpec{RequestId{2}, 24, 4, 1});  // 7 blocks of 4 tokens
    auto reps = reports({4, 4});                     // 8 free slots in all
    reps[0].expected_work = 40;                      // 10 more blocks for request 1
    gm.decide(reps);
    EXPECT_EQ(gm.status(RequestId{2}), reserve ? RequestStatus::kQueued : RequestStatus::kRunning);
    if (!reserve) continue;
    reps = reports({8, 8});  // request 1 finished: 16 free, nothing owed
    reps[0].finished.push_back(RequestId{1});
    gm.decide(reps);
    EXPECT_EQ(gm.status(RequestId{2}), RequestStatus::kRunning);
  }
}

TEST(GManager, LocalPolicyNeverGrants) {
  GManagerConfig c = config(2);
  c.policy = KvPolicy::kLocal;
  GManager gm(c);
  place_on_rank0(gm, 2);
  auto reps = reports({0, 8});
  reps[0].needs.push_back(LoanNeed{RequestId{1}, 1});
  const auto d = gm.decide(reps);
  EXPECT_TRUE(d[1].grants_out.empty());
  EXPECT_EQ(d[0].preempt.size(), 1u);
}

// Local policy, reserve admission: each instance reserves only its own requests' growth. A
// request that fits an idle instance is placed there whatever another instance still owes its
// own requests, and not on that other instance.
TEST(GManager, LocalPolicyReservesGrowthPerInstance) {
  GManagerConfig c = config(2);
  c.policy = KvPolicy::kLocal;
  GManager gm(c);
  gm.submit(RequestSpec{RequestId{1}, 8, 20, 0});  // 7 blocks
  const auto first = gm.decide(reports({8, 8}));
  ASSERT_EQ(gm.status(RequestId{1}), RequestStatus::kRunning);
  const std::size_t home1 = first[0].placements.empty() ? 1 : 0;
  const std::size_t other = 1 - home1;
  gm.submit(RequestSpec{RequestId{2}, 20, 4, 1});  // 6 blocks
  auto reps = reports({8, 8});
  reps[home1].free_slots.resize(6);
  reps[home1].lend_limit = 6;
  reps[home1].expected_work = 20;  // 5 more blocks for request 1: 1 block of room left there
  const auto d = gm.decide(reps);
  ASSERT_EQ(gm.status(RequestId{2}), RequestStatus::kRunning);
  EXPECT_EQ(d[other].placements.size(), 1u);
  EXPECT_TRUE(d[home1].placements.empty());
}

TEST(GManager, RejectsAtSubmitWhatTheEmptyClusterCannotHold) {
  GManager gm(config(2));  // 8 own + 8 lendable blocks of 4 tokens
  EXPECT_FALSE(gm.submit(RequestSpec{RequestId{1}, 60, 4, 0}).has_value());
  const auto v = gm.submit(RequestSpec{RequestId{2}, 60, 5, 1});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->reason, EndReason::kKvCapacity);
}

TEST(GManager, MisuseThrows) {
  GManager gm(config(2));
  EXPECT_THROW(gm.decide(reports({1})), InternalError);
  auto reps = reports({1, 1});
  std::swap(reps[0], reps[1]);
  EXPECT_THROW(gm.decide(reps), InternalError);
  gm.submit(RequestSpec{RequestId{1}, 4, 4, 0});
  EXPECT_THROW(gm.submit(RequestSpec{RequestId{1}, 4, 4, 1}), InternalError);
  EXPECT_THROW(gm.submit(RequestSpec{RequestId{2}, 0, 4, 2}), InternalError);
  auto fin = reports({1, 1});
  fin[1].finished.push_back(RequestId{9});
  EXPECT_THROW(gm.decide(fin), InternalError);
}

}  // namespace
}  // namespace infllm
