// attention_state_test.cpp: the partial attention state (o, m, l), its merge and normalization.
//
// Each partition's state is computed in fp64 from its scores and values and rounded to f32; the
// f32 merge of all partitions must equal the fp64 softmax over the union (an independent, direct
// computation: exp of natural scores, no base 2, no rescaling).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/attention_state.hpp"

namespace infllm {
namespace {

constexpr int kDim = 4;
using State = AttentionState<kDim>;

struct Key {
  double score;  // natural-base score s
  double v[kDim];
};

// fp64 state of `keys` (log2 units), rounded to f32.
State state_of(const std::vector<Key>& keys) {
  State st = State::empty();
  if (keys.empty()) return st;
  // Scores in log2 units as the f32 values a kernel holds, so x - m <= 0 exactly.
  auto x_of = [](const Key& k) {
    return static_cast<double>(static_cast<float>(k.score * kLog2e));
  };
  double m = -INFINITY;
  for (const Key& k : keys) m = std::max(m, x_of(k));
  double l = 0.0;
  double o[kDim] = {};
  for (const Key& k : keys) {
    const double p = std::exp2(x_of(k) - m);
    l += p;
    for (int d = 0; d < kDim; ++d) o[d] += p * k.v[d];
  }
  st.m = static_cast<float>(m);
  st.l = static_cast<float>(l);
  for (int d = 0; d < kDim; ++d) st.o[d] = static_cast<float>(o[d]);
  return st;
}

// softmax(s) @ V in fp64 with natural exp, and log(sum exp(s)).
void softmax_reference(const std::vector<Key>& keys, double* out, double* lse) {
  double mx = -INFINITY;
  for (const Key& k : keys) mx = std::max(mx, k.score);
  double sum = 0.0;
  for (int d = 0; d < kDim; ++d) out[d] = 0.0;
  for (const Key& k : keys) {
    const double e = std::exp(k.score - mx);
    sum += e;
    for (int d = 0; d < kDim; ++d) out[d] += e * k.v[d];
  }
  for (int d = 0; d < kDim; ++d) out[d] /= sum;
  *lse = mx + std::log(sum);
}

bool state_has_nan(const State& s) {
  if (std::isnan(s.m) || std::isnan(s.l)) return true;
  return std::any_of(s.o, s.o + kDim, [](float x) { return std::isnan(x); });
}

TEST(AttentionStateScales, BothEmptyGiveZeroScalesNotNan) {
  const MergeScales s = merge_scales(-INFINITY, -INFINITY);
  EXPECT_EQ(s.m, -INFINITY);
  EXPECT_EQ(s.scale_a, 0.0f);
  EXPECT_EQ(s.scale_b, 0.0f);
}

TEST(AttentionStateScales, EmptySideGetsZeroScale) {
  const MergeScales s = merge_scales(-INFINITY, 3.5f);
  EXPECT_EQ(s.m, 3.5f);
  EXPECT_EQ(s.scale_a, 0.0f);
  EXPECT_EQ(s.scale_b, 1.0f);
}

TEST(AttentionStateScales, PartitionScaleOfAnEmptySetIsZeroNotNan) {
  EXPECT_EQ(partition_scale(-INFINITY, -INFINITY), 0.0f);
  EXPECT_EQ(partition_scale(-INFINITY, 2.0f), 0.0f);
  EXPECT_EQ(partition_scale(1.0f, 3.0f), 0.25f);
}

TEST(AttentionState, EmptyIsTheIdentityOfMerge) {
  const State s = state_of({{0.25, {1, 2, 3, 4}}, {-1.5, {5, 6, 7, 8}}});
  State left = State::empty();
  left.merge(s);
  State right = s;
  right.merge(State::empty());
  for (const State& got : {left, right}) {
    EXPECT_EQ(got.m, s.m);
    EXPECT_EQ(got.l, s.l);
    for (int d = 0; d < kDim; ++d) EXPECT_EQ(got.o[d], s.o[d]);
  }
}

TEST(AttentionState, EmptyMergedWithEmptyStaysEmptyWithoutNan) {
  State s = State::empty();
  s.merge(State::empty());
  EXPECT_FALSE(state_has_nan(s));
  EXPECT_EQ(s.m, -INFINITY);
  EXPECT_EQ(s.l, 0.0f);
  s.normalize();
  for (int d = 0; d < kDim; ++d) EXPECT_EQ(s.o[d], 0.0f);
  EXPECT_EQ(s.lse(), -INFINITY);
}

// Random keys split into random partitions (some empty); merging them in random order must give
// the fp64 softmax over all keys.
class AttentionStateMerge : public ::testing::TestWithParam<double> {};

TEST_P(AttentionStateMerge, MergedEqualsFullSoftmax) {
  const double score_range = GetParam();
  for (int seed = 0; seed < 50; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> score(-score_range, score_range);
    std::uniform_real_distribution<double> value(-1.0, 1.0);
    const int n_keys = 1 + static_cast<int>(rng() % 40);
    const int n_parts = 1 + static_cast<int>(rng() % 8);
    std::vector<std::vector<Key>> parts(n_parts);
    std::vector<Key> all;
    for (int i = 0; i < n_keys; ++i) {
      Key k{score(rng), {}};
      for (double& v : k.v) v = value(rng);
      all.push_back(k);
      parts[rng() % n_parts].push_back(k);
    }
    State merged = State::empty();
    for (const auto& p : parts) merged.merge(state_of(p));
    ASSERT_FALSE(state_has_nan(merged));
    double want[kDim], want_lse;
    softmax_reference(all, want, &want_lse);
    EXPECT_NEAR(merged.lse(), want_lse, 1e-5 * std::max(1.0, std::abs(want_lse)));
    merged.normalize();
    for (int d = 0; d < kDim; ++d) EXPECT_NEAR(merged.o[d], want[d], 1e-5) << "d " << d;
  }
}

// Moderate scores, and scores far beyond exp's f32 range (only the max-relative form survives).
INSTANTIATE_TEST_SUITE_P(AttentionState, AttentionStateMerge, ::testing::Values(3.0, 200.0, 1e4),
                         [](const auto& info) {
                           return "range" + std::to_string(static_cast<int>(info.param));
                         });

TEST(AttentionState, EqualScoresAverageTheValues) {
  std::vector<Key> keys;
  for (int i = 0; i < 8; ++i) keys.push_back(Key{1e4, {double(i), 1, -1, 0}});
  State merged = State::empty();
  for (int i = 0; i < 8; i += 2) merged.merge(state_of({keys[i], keys[i + 1]}));
  merged.normalize();
  EXPECT_FLOAT_EQ(merged.o[0], 3.5f);
  EXPECT_FLOAT_EQ(merged.o[1], 1.0f);
  EXPECT_FLOAT_EQ(merged.o[2], -1.0f);
}

TEST(AttentionState, HugeLogitGapKeepsOnlyTheMax) {
  State a = state_of({{-1e30, {1, 1, 1, 1}}});
  const State b = state_of({{1e30, {2, 3, 4, 5}}});
  a.merge(b);
  ASSERT_FALSE(state_has_nan(a));
  a.normalize();
  EXPECT_EQ(a.o[0], 2.0f);
  EXPECT_EQ(a.o[3], 5.0f);
}

TEST(AttentionState, RuntimeDimMergeMatchesValueType) {
  const State a = state_of({{0.5, {1, 2, 3, 4}}, {2.0, {0, 1, 0, 1}}});
  const State b = state_of({{1.0, {4, 3, 2, 1}}});
  State value = a;
  value.merge(b);
  State runtime = a;
  merge_state(runtime.o, &runtime.m, &runtime.l, b.o, b.m, b.l, kDim);
  EXPECT_EQ(runtime.m, value.m);
  EXPECT_EQ(runtime.l, value.l);
  for (int d = 0; d < kDim; ++d) EXPECT_EQ(runtime.o[d], value.o[d]);
}

}  // namespace
}  // namespace infllm
