// kv_policy_test.cpp: placement, batching, preemption and admission rules, value in, value out.
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "core/kv_policy.hpp"

namespace infllm {
namespace {

TEST(ChooseInstance, LeastExpectedWorkWins) {
  const std::vector<InstanceLoad> loads = {
      {RankId{0}, 500, 10}, {RankId{1}, 100, 10}, {RankId{2}, 300, 10}};
  EXPECT_EQ(choose_instance(loads, 1, 4), RankId{1});
}

TEST(ChooseInstance, InstancesWithoutRoomForTheFirstBlocksAreSkipped) {
  const std::vector<InstanceLoad> loads = {{RankId{0}, 0, 1}, {RankId{1}, 900, 8}};
  EXPECT_EQ(choose_instance(loads, 2, 4), RankId{1});
  EXPECT_FALSE(choose_instance(loads, 9, 9).has_value());
}

TEST(ChooseInstance, ARequestThatFitsSomewhereWholeGoesOnlyWhereItFitsWhole) {
  // Rank 0 has less work but room for only half the request: it would borrow the rest at once.
  const std::vector<InstanceLoad> loads = {{RankId{0}, 0, 3}, {RankId{1}, 900, 8}};
  EXPECT_EQ(choose_instance(loads, 2, 6), RankId{1});
  EXPECT_EQ(choose_instance(loads, 2, 3), RankId{0});
}

TEST(ChooseInstance, LongRequestGoesWhereTheMemoryIs) {
  const std::vector<InstanceLoad> loads = {{RankId{0}, 0, 4}, {RankId{1}, 900, 12}};
  EXPECT_EQ(choose_instance(loads, 2, 40), RankId{1});
}

TEST(PlanBatch, DecodesGoFirstThenPrefillChunks) {
  const BatchLimits limits{10, 8, 16};
  const auto batch = plan_batch({{RequestId{1}, 0, 50, 10}, {RequestId{2}, 1, 0, 5}}, limits);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].request, RequestId{2});
  EXPECT_EQ(batch[0].tokens, 1);
  EXPECT_EQ(batch[1].request, RequestId{1});
  EXPECT_EQ(batch[1].tokens, 9);  // what the token budget leaves
}

TEST(PlanBatch, PrefillChunksAreCappedAndOldestFirst) {
  const BatchLimits limits{100, 8, 16};
  const auto batch = plan_batch({{RequestId{1}, 5, 50, 1}, {RequestId{2}, 2, 50, 1}}, limits);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].request, RequestId{2});
  EXPECT_EQ(batch[0].tokens, 16);
}

TEST(PlanBatch, MaxNumSeqsLimitsTheBatch) {
  const BatchLimits limits{100, 2, 16};
  const auto batch = plan_batch(
      {{RequestId{1}, 0, 0, 3}, {RequestId{2}, 1, 0, 3}, {RequestId{3}, 2, 0, 3}}, limits);
  EXPECT_EQ(batch.size(), 2u);
}

TEST(PlanBatch, FinishedRequestsAndBadLimits) {
  EXPECT_TRUE(plan_batch({{RequestId{1}, 0, 0, 0}}, BatchLimits{}).empty());
  EXPECT_THROW(plan_batch({}, BatchLimits{0, 1, 1}), InternalError);
}

TEST(ChoosePreemption, YoungestFirstUntilEnoughBlocks) {
  const auto v =
      choose_preemption({{RequestId{1}, 10, 5}, {RequestId{2}, 30, 2}, {RequestId{3}, 20, 4}}, 5);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], RequestId{2});
  EXPECT_EQ(v[1], RequestId{3});
}

TEST(ChoosePreemption, NeverTheOldest) {
  const auto v = choose_preemption({{RequestId{1}, 10, 50}, {RequestId{2}, 30, 1}}, 100);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], RequestId{2});
  EXPECT_TRUE(choose_preemption({{RequestId{1}, 10, 50}}, 100).empty());
}

TEST(Admission, PooledCountsOnePoolPlusEveryOtherLendingCap) {
  const ClusterShape shape{{10, 10, 10}, 0.5};
  EXPECT_EQ(lend_cap(shape, 0), 5);
  EXPECT_EQ(max_request_blocks(shape, KvPolicy::kLocal), 10);
  EXPECT_EQ(max_request_blocks(shape, KvPolicy::kPooled), 20);
  EXPECT_TRUE(fits_empty_cluster(shape, KvPolicy::kPooled, 20));
  EXPECT_FALSE(fits_empty_cluster(shape, KvPolicy::kPooled, 21));
  EXPECT_FALSE(fits_empty_cluster(shape, KvPolicy::kLocal, 11));
}

}  // namespace
}  // namespace infllm
