// ids_test.cpp: strong ids compare, hash and print by value, and do not mix.
#include <gtest/gtest.h>

#include <sstream>
#include <type_traits>
#include <unordered_set>

#include "core/ids.hpp"

namespace infllm {
namespace {

TEST(StrongId, ComparesByValue) {
  EXPECT_EQ(RankId{3}, RankId{3});
  EXPECT_LT(SlotId{1}, SlotId{2});
  EXPECT_LT((BlockRef{RankId{0}, SlotId{9}}), (BlockRef{RankId{1}, SlotId{0}}));
}

TEST(StrongId, KindsDoNotConvert) {
  static_assert(!std::is_convertible_v<RankId, SlotId>);
  static_assert(!std::is_convertible_v<int, RankId>);
  static_assert(!std::is_convertible_v<RequestId, ContractId>);
}

TEST(StrongId, HashesDistinguishBlocks) {
  std::unordered_set<BlockRef> refs;
  for (int r = 0; r < 8; ++r) {
    for (int s = 0; s < 64; ++s) refs.insert(BlockRef{RankId{r}, SlotId{s}});
  }
  EXPECT_EQ(refs.size(), 8u * 64u);
}

TEST(StrongId, PrintsWithPrefix) {
  std::ostringstream os;
  os << BlockRef{RankId{2}, SlotId{17}} << ' ' << RequestId{5};
  EXPECT_EQ(os.str(), "(r2,s17) q5");
}

}  // namespace
}  // namespace infllm
