// slot_allocator_test.cpp: allocation to exhaustion, promised slots, misuse, statistics.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "core/errors.hpp"
#include "core/slot_allocator.hpp"

namespace infllm {
namespace {

TEST(SlotAllocator, AllocatesEverySlotOnceThenReportsFull) {
  SlotAllocator pool(4);
  std::set<std::int32_t> got;
  for (int i = 0; i < 4; ++i) {
    const auto s = pool.allocate();
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(got.insert(s->value()).second);
  }
  EXPECT_FALSE(pool.allocate().has_value());  // full is a value, not an error
  EXPECT_EQ(pool.stats().free, 0);
  EXPECT_EQ(pool.stats().used, 4);
  pool.check_invariants();
}

TEST(SlotAllocator, FreedSlotIsTheNextOneAllocated) {
  SlotAllocator pool(3);
  pool.allocate();
  const SlotId b = *pool.allocate();
  pool.free(b);
  EXPECT_EQ(*pool.allocate(), b);
  pool.check_invariants();
}

TEST(SlotAllocator, TakeRemovesAPromisedSlotFromTheMiddle) {
  SlotAllocator pool(5);
  pool.take(SlotId{2}, SlotUse::kLent);
  EXPECT_EQ(pool.use(SlotId{2}), SlotUse::kLent);
  std::set<std::int32_t> rest;
  while (const auto s = pool.allocate()) rest.insert(s->value());
  EXPECT_EQ(rest, (std::set<std::int32_t>{0, 1, 3, 4}));
  pool.check_invariants();
}

TEST(SlotAllocator, MisuseThrows) {
  SlotAllocator pool(2);
  const SlotId a = *pool.allocate();
  EXPECT_THROW(pool.take(a, SlotUse::kOwn), InternalError);  // not free
  pool.free(a);
  EXPECT_THROW(pool.free(a), InternalError);          // double free
  EXPECT_THROW(pool.free(SlotId{7}), InternalError);  // out of range
  EXPECT_THROW(pool.allocate(SlotUse::kFree), InternalError);
  EXPECT_THROW(pool.relabel(a, SlotUse::kLent), InternalError);  // free slot
  EXPECT_THROW(SlotAllocator(-1), InternalError);
  pool.check_invariants();
}

TEST(SlotAllocator, StatisticsTrackUsesAndHighWaterMarks) {
  SlotAllocator pool(6);
  const SlotId a = *pool.allocate(SlotUse::kOwn);
  const SlotId b = *pool.allocate(SlotUse::kLent);
  pool.allocate(SlotUse::kLent);
  pool.add_borrowed(3);
  pool.remove_borrowed(2);
  pool.free(b);
  pool.free(a);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.capacity, 6);
  EXPECT_EQ(s.free, 5);
  EXPECT_EQ(s.used, 1);
  EXPECT_EQ(s.own, 0);
  EXPECT_EQ(s.lent, 1);
  EXPECT_EQ(s.borrowed, 1);
  EXPECT_EQ(s.used_hwm, 3);
  EXPECT_EQ(s.lent_hwm, 2);
  EXPECT_EQ(s.borrowed_hwm, 3);
  EXPECT_EQ(s.free + s.used, s.capacity);
  EXPECT_THROW(pool.remove_borrowed(2), InternalError);
}

TEST(SlotAllocator, RelabelTurnsALentSlotIntoAnOwnOne) {
  SlotAllocator pool(2);
  const SlotId a = *pool.allocate(SlotUse::kLent);
  pool.relabel(a, SlotUse::kOwn);
  EXPECT_EQ(pool.stats().lent, 0);
  EXPECT_EQ(pool.stats().own, 1);
  pool.check_invariants();
}

TEST(SlotAllocator, PromisedSlotsAreTheOnesAllocateReachesLast) {
  SlotAllocator pool(4);
  const std::vector<SlotId> promised = pool.free_slots(2);
  ASSERT_EQ(promised.size(), 2u);
  const SlotId first = *pool.allocate();
  for (SlotId p : promised) EXPECT_NE(p, first);
  EXPECT_EQ(pool.free_slots(10).size(), 3u);
}

TEST(SlotAllocator, RandomOperationsKeepTheInvariants) {
  constexpr std::uint64_t kSeed = 5;
  SCOPED_TRACE(kSeed);
  std::mt19937_64 rng(kSeed);
  SlotAllocator pool(64);
  std::vector<SlotId> used;
  for (int i = 0; i < 20'000; ++i) {
    const int op = static_cast<int>(rng() % 3);
    if (op == 0 || used.empty()) {
      if (const auto s = pool.allocate(rng() % 2 ? SlotUse::kOwn : SlotUse::kLent)) {
        used.push_back(*s);
      }
    } else if (op == 1) {
      const std::size_t k = rng() % used.size();
      pool.free(used[k]);
      used[k] = used.back();
      used.pop_back();
    } else {
      const auto promised = pool.free_slots(8);
      if (!promised.empty()) {
        const SlotId s = promised[rng() % promised.size()];
        pool.take(s, SlotUse::kLent);
        used.push_back(s);
      }
    }
    ASSERT_EQ(pool.stats().used, static_cast<std::int32_t>(used.size()));
    if (i % 64 == 0) pool.check_invariants();
  }
  pool.check_invariants();
}

}  // namespace
}  // namespace infllm
