// rope_test.cpp: RoPE inverse frequencies, plain and with llama3 and linear scaling.
//
// The llama3 golden values come from an independent Python transcription of Hugging Face's
// _compute_llama3_parameters (float64), for rope_theta 500000, head_dim 64, factor 32,
// low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192:
//   inv = [1/theta**((2*i)/64) for i in range(32)]; lw, hw = 8192/1, 8192/4
//   per f: wl = 2*pi/f; g = f/32 if wl > lw else f; s = (8192/wl - 1)/(4 - 1)
//          out = (1-s)*g/32 + s*g if not wl < hw and not wl > lw else g
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.hpp"
#include "model/forward/rope.hpp"

namespace infllm::model {
namespace {

ModelConfig rope_config(const std::string& scaling) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = scaling;
  c.rope_scaling.factor = 32.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  return c;
}

void expect_rel(float got, double want) { EXPECT_NEAR(got, want, 1e-6 * std::abs(want)) << want; }

TEST(Rope, PlainFrequencies) {
  const auto f = rope_inv_freq(rope_config(""));
  ASSERT_EQ(f.size(), 32u);
  expect_rel(f[0], 1.0);
  expect_rel(f[5], 0.12868737343265052);
  expect_rel(f[15], 0.0021311195369119653);
  expect_rel(f[31], 3.0138581521391708e-06);
}

TEST(Rope, Llama3KeepsHighDividesLowSmoothsTheBand) {
  const auto f = rope_inv_freq(rope_config("llama3"));
  expect_rel(f[0], 1.0);                     // high frequency: kept
  expect_rel(f[14], 0.0032114459947525913);  // still above the band
  expect_rel(f[15], 0.001290547928209264);   // in the band: interpolated
  expect_rel(f[20], 8.570255489881478e-06);  // low frequency: divided by 32
  expect_rel(f[31], 9.418306725434909e-08);
}

TEST(Rope, LinearDividesEveryFrequency) {
  const auto plain = rope_inv_freq(rope_config(""));
  const auto lin = rope_inv_freq(rope_config("linear"));
  for (std::size_t i = 0; i < plain.size(); ++i) expect_rel(lin[i], plain[i] / 32.0);
}

TEST(Rope, GgufRopeFreqsDivide) {
  std::vector<float> divisors(32, 1.0f);
  divisors[3] = 4.0f;
  const auto plain = rope_inv_freq(rope_config(""));
  const auto f = rope_inv_freq(rope_config(""), divisors);
  expect_rel(f[3], plain[3] / 4.0);
  EXPECT_THROW(rope_inv_freq(rope_config(""), std::vector<float>(3, 1.0f)), InputError);
}

}  // namespace
}  // namespace infllm::model
