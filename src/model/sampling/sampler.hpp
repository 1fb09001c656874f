// sampler.hpp: choosing the next token from logits: greedy, temperature, top-k, top-p, min-p,
// with a counter-based random stream so results never depend on batch, rank or library.
//
// NOTE: the random draw for (seed, request, position) is a pure function of those three
// (SplitMix64 mixing, not std:: distributions, whose output differs between standard
// libraries), so a request samples the same tokens whichever rank runs it, whatever it is
// batched with, and however its prefill was chunked.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace infllm::model {

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy (argmax, lowest id on ties)
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  double min_p = 0.0;        // 0 = off: keep tokens with p >= min_p * p_max
  std::uint64_t seed = 0;
  int logprobs = 0;  // top-N log-probabilities to report
};

// Uniform double in [0, 1) for (seed, request, position).
double sample_uniform(std::uint64_t seed, const std::string& request_id, std::int64_t position);

struct Sample {
  std::int32_t token = 0;
  double logprob = 0.0;  // natural log-probability of `token` under the model (temperature 1)
  std::vector<std::pair<std::int32_t, double>> top;  // top-N (token, logprob), best first
};

// Picks the next token. `logits` holds the vocabulary's raw logits; `position` is the position
// the sampled token will occupy.
Sample sample_token(std::span<const float> logits, const SamplingParams& params,
                    const std::string& request_id, std::int64_t position);

}  // namespace infllm::model
