// progress_test.cpp: the progress line's content (not its timing): counts, earlier requests,
// pool use, ETA.
#include "io/progress.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace infllm::io {
namespace {

TEST(Progress, DurationText) {
  EXPECT_EQ(duration_text(42.2), "42s");
  EXPECT_EQ(duration_text(185), "3m05s");
  EXPECT_EQ(duration_text(3720), "1h02m");
  EXPECT_EQ(duration_text(-1), "?");
}

TEST(Progress, LineCountsRequestsIncludingEarlierOnes) {
  std::ostringstream os;
  ProgressReporter p(os, /*live=*/false, 10, 4);
  p.on_result();
  p.on_step({.prefill_tokens = 100, .decode_tokens = 20, .pool_used = 8, .pool_slots = 32});
  const std::string line = p.line();
  EXPECT_NE(line.find("5/10 requests (4 earlier)"), std::string::npos) << line;
  EXPECT_NE(line.find("KV pool 8/32 rBlocks (25%)"), std::string::npos) << line;
  EXPECT_NE(line.find("loans 0"), std::string::npos) << line;
}

TEST(Progress, EtaUnknownBeforeTheFirstResult) {
  std::ostringstream os;
  ProgressReporter p(os, /*live=*/false, 3, 0);
  EXPECT_NE(p.line().find("ETA ?"), std::string::npos) << p.line();
}

}  // namespace
}  // namespace infllm::io
