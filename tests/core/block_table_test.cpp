// block_table_test.cpp: append-only growth, the tail at home, push and move transitions.
#include <gtest/gtest.h>

#include "core/block_table.hpp"
#include "core/errors.hpp"

namespace infllm {
namespace {

constexpr RankId kHome{0};
constexpr RankId kPeer{1};

// A table of `blocks` full blocks plus a tail holding one token, in home slots 0, 1, ...
BlockTable table_with(std::int32_t blocks) {
  BlockTable t(RequestId{7}, kHome, 4);
  for (std::int32_t i = 0; i <= blocks; ++i) {
    t.append(SlotId{i});
    t.add_tokens(i < blocks ? 4 : 1);
  }
  return t;
}

TEST(BlockTable, AppendGrowsAtTheTail) {
  const BlockTable t = table_with(2);
  EXPECT_EQ(t.size(), 3);
  EXPECT_EQ(t.tokens(), 9);
  EXPECT_EQ(t.at(2).ref, (BlockRef{kHome, SlotId{2}}));
  EXPECT_EQ(t.blocks_for(9), 3);
  t.check_invariants();
}

TEST(BlockTable, AppendBeforeTheTailIsFullThrows) {
  BlockTable t = table_with(0);
  EXPECT_THROW(t.append(SlotId{5}), InternalError);
  EXPECT_THROW(t.add_tokens(4), InternalError);  // beyond the appended blocks
}

TEST(BlockTable, TheTailNeverLeavesHome) {
  BlockTable t = table_with(1);
  EXPECT_THROW(t.start_push(1, BlockRef{kPeer, SlotId{0}}), InternalError);
}

TEST(BlockTable, PushThenLandMakesAFullBlockRemote) {
  BlockTable t = table_with(2);
  t.start_push(0, BlockRef{kPeer, SlotId{9}});
  EXPECT_EQ(t.at(0).state, BlockState::kPushing);
  EXPECT_EQ(t.at(0).ref.rank, kHome);  // the home copy stays authoritative
  t.check_invariants();
  EXPECT_EQ(t.finish_push(0), SlotId{0});  // the home slot to free
  EXPECT_EQ(t.at(0).state, BlockState::kRemote);
  EXPECT_EQ(t.at(0).ref, (BlockRef{kPeer, SlotId{9}}));
  EXPECT_EQ(t.remote_blocks(), 1);
  t.check_invariants();
}

TEST(BlockTable, RecallCommitBringsTheBlockHome) {
  BlockTable t = table_with(1);
  t.start_push(0, BlockRef{kPeer, SlotId{3}});
  t.finish_push(0);
  t.start_move(0, BlockRef{kHome, SlotId{8}}, false);
  EXPECT_EQ(t.at(0).state, BlockState::kMoving);
  EXPECT_EQ(t.commit_move(0), (BlockRef{kPeer, SlotId{3}}));
  EXPECT_EQ(t.at(0).state, BlockState::kLocal);
  t.check_invariants();
}

TEST(BlockTable, MoveToAThirdRankStaysRemote) {
  BlockTable t = table_with(1);
  t.start_push(0, BlockRef{kPeer, SlotId{3}});
  t.finish_push(0);
  t.start_move(0, BlockRef{RankId{2}, SlotId{1}}, false);
  t.commit_move(0);
  EXPECT_EQ(t.at(0).state, BlockState::kRemote);
  EXPECT_EQ(t.at(0).ref.rank, RankId{2});
}

TEST(BlockTable, OnlyRemoteBlocksMoveAndOnlyLocalOnesPush) {
  BlockTable t = table_with(2);
  EXPECT_THROW(t.start_move(0, BlockRef{kHome, SlotId{9}}, false), InternalError);
  t.start_push(0, BlockRef{kPeer, SlotId{0}});
  EXPECT_THROW(t.start_push(0, BlockRef{kPeer, SlotId{1}}), InternalError);
  EXPECT_THROW(t.finish_push(1), InternalError);
  EXPECT_THROW(t.commit_move(0), InternalError);
}

TEST(BlockTable, FirstPushableSkipsTheTailAndBlocksOnTheirWay) {
  BlockTable t = table_with(2);
  EXPECT_EQ(t.first_pushable(), 0);
  t.start_push(0, BlockRef{kPeer, SlotId{0}});
  EXPECT_EQ(t.first_pushable(), 1);
  t.start_push(1, BlockRef{kPeer, SlotId{1}});
  EXPECT_EQ(t.first_pushable(), -1);
}

TEST(BlockTable, InvariantsCatchOneSlotNamedTwice) {
  BlockTable t = table_with(2);
  t.start_push(0, BlockRef{kPeer, SlotId{4}});
  t.start_push(1, BlockRef{kPeer, SlotId{4}});
  EXPECT_THROW(t.check_invariants(), InternalError);
}

}  // namespace
}  // namespace infllm
