// pool_memory_test.cpp: the KV pool's bytes: zeroed, writable, 2 MiB aligned and advised onto
// transparent huge pages when large enough (on a kernel with THP), plain otherwise.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "backend/cpu/pool_memory.hpp"

namespace infllm::cpu {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

bool all_zero(const PoolMemory& m) {
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m.data()[i] != std::byte{0}) return false;
  }
  return true;
}

TEST(PoolMemory, HugeIsAlignedZeroedAndAdvised) {
  PoolMemory m(5 * kMiB + 123);
  ASSERT_NE(m.data(), nullptr);
  EXPECT_EQ(m.size(), 5 * kMiB + 123);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.data()) % (2 * kMiB), 0u);
  EXPECT_TRUE(all_zero(m));
  m.data()[m.size() - 1] = std::byte{7};  // the last byte is ours
  if (std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled")) {
    EXPECT_TRUE(m.huge_advised());
  }
}

TEST(PoolMemory, SmallOrDefaultPagesArePlainAndZeroed) {
  for (const auto& [bytes, pages] : {std::pair{std::size_t{4096}, PoolMemory::Pages::kHuge},
                                     std::pair{3 * kMiB, PoolMemory::Pages::kDefault},
                                     std::pair{std::size_t{0}, PoolMemory::Pages::kHuge}}) {
    PoolMemory m(bytes, pages);
    EXPECT_EQ(m.size(), bytes);
    EXPECT_FALSE(m.huge_advised());
    EXPECT_TRUE(all_zero(m));
  }
}

TEST(PoolMemory, AdviceNeedsAWhole2MiBPage) {
  std::vector<std::byte> small(64 * 1024);
  EXPECT_FALSE(advise_huge_pages(small.data(), small.size()));
  PoolMemory big(4 * kMiB, PoolMemory::Pages::kDefault);
  // Somewhere in 4 MiB lies a whole aligned 2 MiB page.
  if (std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled")) {
    EXPECT_TRUE(advise_huge_pages(big.data(), big.size()));
  }
}

}  // namespace
}  // namespace infllm::cpu
