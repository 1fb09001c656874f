// r_manager_test.cpp: one instance's side of the protocol, driven by hand-made decisions.
//
// Named state transitions: placement and growth, allocation to exhaustion (a loan request),
// the lending cap, lending and borrowing, refusal to chain, release, preemption, completion.
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "core/r_manager.hpp"

namespace infllm {
namespace {

constexpr RankId kMe{0};
constexpr RankId kPeer{1};

RManagerConfig config(std::int32_t capacity) {
  RManagerConfig c;
  c.rank = kMe;
  c.capacity = capacity;
  c.block_tokens = 4;
  c.max_lend_fraction = 0.5;
  c.batch = BatchLimits{64, 8, 16};
  return c;
}

RankDecision decision() {
  RankDecision d;
  d.rank = kMe;
  return d;
}

// Places request `id` with `prompt` tokens and `gen` to generate.
void place(RManager& rm, std::int64_t id, std::int64_t prompt, std::int64_t gen) {
  RankDecision d = decision();
  d.placements.push_back(Placement{RequestSpec{RequestId{id}, prompt, gen, id}});
  rm.apply(d);
}

TEST(RManager, PlacedRequestGrowsInLocalSlots) {
  RManager rm(config(8));
  place(rm, 1, 8, 4);
  rm.run_step();  // 8 prompt tokens: 2 blocks
  EXPECT_EQ(rm.requests().at(RequestId{1}).table.size(), 2);
  EXPECT_EQ(rm.stats().own, 2);
  rm.run_step();  // first decode token: a third block
  EXPECT_EQ(rm.stats().own, 3);
  rm.check_invariants();
}

TEST(RManager, ShortOfSlotsItAsksALoanForItsOwnFullBlocks) {
  RManager rm(config(4));
  place(rm, 1, 16, 8);
  rm.run_step();  // 4 blocks: the pool is full
  const StepReport r = rm.make_report(1);
  ASSERT_EQ(r.needs.size(), 1u);
  EXPECT_EQ(r.needs[0].request, RequestId{1});
  EXPECT_EQ(r.needs[0].blocks, 1);
  EXPECT_TRUE(r.free_slots.empty());  // nothing to promise
  EXPECT_EQ(r.unpushable_blocks, 0);
  const StepOutcome o = rm.run_step();  // no slot: the request waits
  EXPECT_EQ(o.tokens, 0);
  EXPECT_EQ(o.waiting, 1);
}

TEST(RManager, OffersFreeSlotsWithinTheLendingCap) {
  RManager rm(config(8));
  const StepReport r = rm.make_report(1);
  EXPECT_EQ(r.free_slots.size(), 8u);
  EXPECT_EQ(r.lend_limit, 4);  // 0.5 * 8
  RankDecision d = decision();
  for (std::int32_t s = 0; s < 3; ++s) {
    d.grants_out.push_back(
        Grant{ContractId{0}, RequestId{9}, kPeer, BlockRef{kMe, r.free_slots[s]}});
  }
  rm.apply(d);
  EXPECT_EQ(rm.stats().lent, 3);
  EXPECT_EQ(rm.make_report(2).lend_limit, 1);
  rm.check_invariants();
}

TEST(RManager, GrantInPushesAFullBlockAndTheNextBoundaryFreesTheHomeSlot) {
  RManager rm(config(4));
  place(rm, 1, 16, 8);
  rm.run_step();
  rm.make_report(1);
  RankDecision d = decision();
  d.grants_in.push_back(Grant{ContractId{0}, RequestId{1}, kMe, BlockRef{kPeer, SlotId{5}}});
  rm.apply(d);
  const BlockTable& t = rm.requests().at(RequestId{1}).table;
  EXPECT_EQ(t.at(0).state, BlockState::kPushing);
  EXPECT_EQ(rm.stats().borrowed, 1);
  rm.check_invariants();
  rm.run_step();  // still full: the pushed block's home copy is authoritative this step
  rm.make_report(2);
  EXPECT_EQ(t.at(0).state, BlockState::kRemote);
  EXPECT_EQ(rm.stats().free, 1);
  EXPECT_EQ(rm.run_step().tokens, 1);  // the new tail takes the freed slot
  rm.check_invariants();
}

// The engine's extra steps between boundaries grow only requests whose blocks are all plain
// local ones (not one with a block pushing out, nor, after the push lands, one with a block on
// a creditor), only into the room of the blocks they hold (no slot is taken: what the last
// report promised stays free), and keep to the limits given.
TEST(RManager, HomeStepGrowsOnlyRequestsWholeAtHomeIntoTheirOwnBlocks) {
  RManager rm(config(16));
  place(rm, 1, 16, 8);  // 4 blocks of 4 tokens
  place(rm, 2, 6, 20);  // 2 blocks, room for 2 more tokens
  rm.run_step();
  rm.make_report(1);
  RankDecision d = decision();
  d.grants_in.push_back(Grant{ContractId{0}, RequestId{1}, kMe, BlockRef{kPeer, SlotId{5}}});
  rm.apply(d);
  const auto& two = rm.requests().at(RequestId{2}).table;
  const std::int32_t free = rm.stats().free;
  const auto g = rm.grow_home_step(BatchLimits{64, 8, 16});  // request 1 is pushing a block
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].request, RequestId{2});
  EXPECT_EQ(g[0].tokens, 1);
  EXPECT_FALSE(g[0].prefill);
  EXPECT_EQ(rm.stats().free, free);
  rm.check_invariants();
  rm.run_step();  // request 2 fills its second block
  rm.make_report(2);
  ASSERT_EQ(rm.requests().at(RequestId{1}).table.remote_blocks(), 1);
  EXPECT_EQ(two.tokens(), 8);
  const std::int32_t free2 = rm.stats().free;
  EXPECT_TRUE(rm.grow_home_step(BatchLimits{64, 8, 16}).empty());  // 1 is remote, 2 is full
  EXPECT_EQ(rm.stats().free, free2);
  rm.run_step();  // a boundary step takes request 2 its third block
  EXPECT_EQ(two.size(), 3);
  place(rm, 3, 3, 4);
  rm.run_step();  // request 3: its prompt in one block with room for one more token
  const auto h = rm.grow_home_step(BatchLimits{64, 1, 16});  // one request per step
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].request, RequestId{2});  // the oldest first
  EXPECT_EQ(two.tokens(), 11);
  rm.check_invariants();
}

// A fill step that may be cut plans first and records only when it completes: the plan changes
// nothing (planning twice gives the same growth), committing it equals grow_home_step, and a
// stale plan (committed after the request grew) is refused.
TEST(RManager, HomeStepPlanChangesNothingUntilCommitted) {
  RManager rm(config(16));
  place(rm, 1, 6, 20);  // 2 blocks of 4 tokens: room for 2 more after the prompt
  rm.run_step();
  const auto& t = rm.requests().at(RequestId{1}).table;
  const std::int64_t before = t.tokens();
  const auto p1 = rm.plan_home_step(BatchLimits{64, 8, 16});
  const auto p2 = rm.plan_home_step(BatchLimits{64, 8, 16});
  ASSERT_EQ(p1.size(), 1u);
  ASSERT_EQ(p2.size(), 1u);
  EXPECT_EQ(p1[0].first_pos, p2[0].first_pos);
  EXPECT_EQ(p1[0].tokens, p2[0].tokens);
  EXPECT_EQ(t.tokens(), before);  // nothing recorded yet
  rm.commit_growth(p1);
  EXPECT_EQ(t.tokens(), before + p1[0].tokens);
  rm.check_invariants();
  EXPECT_THROW(rm.commit_growth(p2), InternalError);  // p2 starts where p1 did
}

TEST(RManager, RefusesToChainLoansForARequestItDoesNotRun) {
  RManager rm(config(4));
  RankDecision d = decision();
  d.grants_in.push_back(Grant{ContractId{0}, RequestId{42}, kMe, BlockRef{kPeer, SlotId{0}}});
  EXPECT_THROW(rm.apply(d), InternalError);
}

TEST(RManager, ReleaseFreesALentSlotAndOnlyALentOne) {
  RManager rm(config(4));
  RankDecision d = decision();
  d.grants_out.push_back(Grant{ContractId{0}, RequestId{9}, kPeer, BlockRef{kMe, SlotId{3}}});
  rm.apply(d);
  RankDecision rel = decision();
  rel.releases.push_back(SlotId{3});
  rm.apply(rel);
  EXPECT_EQ(rm.stats().lent, 0);
  EXPECT_THROW(rm.apply(rel), InternalError);
  rm.check_invariants();
}

TEST(RManager, PreemptionFreesEveryHomeSlot) {
  RManager rm(config(8));
  place(rm, 1, 16, 8);
  rm.run_step();
  RankDecision d = decision();
  d.preempt.push_back(RequestId{1});
  rm.apply(d);
  EXPECT_TRUE(rm.requests().empty());
  EXPECT_EQ(rm.stats().used, 0);
  EXPECT_EQ(rm.stats().used_hwm, 4);
  rm.check_invariants();
}

TEST(RManager, CompletionIsReportedAndFreesTheSlots) {
  RManager rm(config(8));
  place(rm, 1, 3, 1);
  rm.run_step();                        // prefill
  const StepOutcome o = rm.run_step();  // the one generated token
  EXPECT_EQ(o.finished, 1);
  EXPECT_EQ(rm.stats().used, 0);
  const StepReport r = rm.make_report(3);
  ASSERT_EQ(r.finished.size(), 1u);
  EXPECT_EQ(r.finished[0], RequestId{1});
  EXPECT_TRUE(rm.make_report(4).finished.empty());
}

TEST(RManager, ManyOneBlockRequestsCannotPushAndSaySo) {
  RManager rm(config(2));
  place(rm, 1, 4, 2);
  place(rm, 2, 4, 2);
  rm.run_step();  // two full one-block requests: nothing but tails
  const StepReport r = rm.make_report(1);
  EXPECT_TRUE(r.needs.empty());
  EXPECT_EQ(r.unpushable_blocks, 2);
}

TEST(RManager, BadConfigAndMisaddressedDecisionsThrow) {
  EXPECT_THROW(RManager(config(1)), InternalError);
  RManager rm(config(4));
  RankDecision d = decision();
  d.rank = kPeer;
  EXPECT_THROW(rm.apply(d), InternalError);
}

}  // namespace
}  // namespace infllm
