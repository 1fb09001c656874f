// sampler_test.cpp: greedy, filters, determinism of the counter-based draw, and sampled
// frequencies against the exact distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "model/sampling/sampler.hpp"

namespace infllm::model {
namespace {

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(sample_token(logits, {}, "r", 0).token, 1);
}

TEST(Sampler, LogprobsAreLogSoftmaxBestFirst) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.logprobs = 2;
  const Sample s = sample_token(logits, p, "r", 0);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.0));
  ASSERT_EQ(s.top.size(), 2u);
  EXPECT_EQ(s.top[0].first, 1);
  EXPECT_NEAR(s.top[0].second, 2.0 - lse, 1e-12);
  EXPECT_EQ(s.top[1].first, 0);
  EXPECT_NEAR(s.logprob, 2.0 - lse, 1e-12);
}

TEST(Sampler, DrawIsAPureFunctionOfSeedRequestPosition) {
  EXPECT_EQ(sample_uniform(1, "doc", 7), sample_uniform(1, "doc", 7));
  EXPECT_NE(sample_uniform(1, "doc", 7), sample_uniform(1, "doc", 8));
  EXPECT_NE(sample_uniform(1, "doc", 7), sample_uniform(2, "doc", 7));
  EXPECT_NE(sample_uniform(1, "doc", 7), sample_uniform(1, "doc2", 7));
}

TEST(Sampler, TopKOneIsGreedy) {
  const std::vector<float> logits = {0.1f, 0.3f, 0.2f};
  SamplingParams p;
  p.temperature = 5.0;
  p.top_k = 1;
  for (int pos = 0; pos < 50; ++pos) EXPECT_EQ(sample_token(logits, p, "r", pos).token, 1);
}

TEST(Sampler, TopPAndMinPDropTheTail) {
  // Probabilities at temperature 1: about 0.665, 0.245, 0.090.
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  SamplingParams top_p;
  top_p.temperature = 1.0;
  top_p.top_p = 0.8;  // keeps the first two (0.665 < 0.8 <= 0.91)
  SamplingParams min_p;
  min_p.temperature = 1.0;
  min_p.min_p = 0.2;  // keeps p >= 0.133: the first two
  for (int pos = 0; pos < 400; ++pos) {
    EXPECT_NE(sample_token(logits, top_p, "r", pos).token, 2);
    EXPECT_NE(sample_token(logits, min_p, "r", pos).token, 2);
  }
}

TEST(Sampler, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f, 0.5f};
  SamplingParams p;
  p.temperature = 0.7;
  p.seed = 42;
  constexpr int kDraws = 20000;
  std::map<int, int> counts;
  for (int pos = 0; pos < kDraws; ++pos) ++counts[sample_token(logits, p, "req", pos).token];
  double z = 0.0;
  for (float x : logits) z += std::exp(x / 0.7);
  for (int t = 0; t < 4; ++t) {
    const double want = std::exp(logits[t] / 0.7) / z;
    const double sigma = std::sqrt(want * (1 - want) / kDraws);
    EXPECT_NEAR(double(counts[t]) / kDraws, want, 5 * sigma) << "token " << t;
  }
}

}  // namespace
}  // namespace infllm::model
