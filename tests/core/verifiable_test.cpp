// verifiable_test.cpp: the verifiable pattern detects changed bytes and differs between blocks.
#include <gtest/gtest.h>

#include <vector>

#include "core/verifiable.hpp"

namespace infllm {
namespace {

TEST(Verifiable, FilledBlockVerifies) {
  std::vector<std::uint8_t> buf(1000);
  fill_verifiable(buf.data(), buf.size(), 3, 42);
  EXPECT_EQ(count_unverifiable(buf.data(), buf.size(), 3, 42), 0u);
}

TEST(Verifiable, EveryFlippedByteIsCounted) {
  std::vector<std::uint8_t> buf(257);
  fill_verifiable(buf.data(), buf.size(), 1, 7);
  buf[0] ^= 1;
  buf[128] ^= 0x80;
  buf[256] += 1;
  EXPECT_EQ(count_unverifiable(buf.data(), buf.size(), 1, 7), 3u);
}

TEST(Verifiable, OtherStreamOrBlockDoesNotVerify) {
  std::vector<std::uint8_t> buf(4096);
  fill_verifiable(buf.data(), buf.size(), 2, 9);
  // A block landing in the wrong slot, or from the wrong writer, fails almost every byte.
  EXPECT_GT(count_unverifiable(buf.data(), buf.size(), 2, 10), 4000u);
  EXPECT_GT(count_unverifiable(buf.data(), buf.size(), 3, 9), 4000u);
}

}  // namespace
}  // namespace infllm
