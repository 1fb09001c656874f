// sampler.cpp: see sampler.hpp.
#include "model/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/verifiable.hpp"

namespace infllm::model {

namespace {

std::uint64_t hash_string(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then mixed
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return mix64(h);
}

// log_softmax of the raw logits, in double: (log-probabilities, index of the max).
std::vector<double> log_softmax(std::span<const float> logits) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float x : logits) sum += std::exp(double(x) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
  return out;
}

}  // namespace

double sample_uniform(std::uint64_t seed, const std::string& request_id, std::int64_t position) {
  const std::uint64_t x =
      mix64(mix64(seed ^ hash_string(request_id)) + static_cast<std::uint64_t>(position));
  return static_cast<double>(x >> 11) * 0x1.0p-53;  // 53 random bits
}

Sample sample_token(std::span<const float> logits, const SamplingParams& params,
                    const std::string& request_id, std::int64_t position) {
  const std::vector<double> logp = log_softmax(logits);
  Sample out;
  if (params.temperature <= 0.0) {
    // Greedy: the first maximum (lowest id on ties), comparing the raw logits.
    out.token =
        static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  } else {
    // Candidates sorted by probability (higher first, lower id first on ties).
    std::vector<std::int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b]; });
    std::size_t keep = order.size();
    if (params.top_k > 0) keep = std::min<std::size_t>(keep, std::size_t(params.top_k));
    // Tempered probabilities of the kept candidates.
    std::vector<double> p(keep);
    const double top = double(logits[order[0]]) / params.temperature;
    double sum = 0.0;
    for (std::size_t i = 0; i < keep; ++i) {
      p[i] = std::exp(double(logits[order[i]]) / params.temperature - top);
      sum += p[i];
    }
    for (auto& v : p) v /= sum;
    if (params.min_p > 0.0) {
      const double floor = params.min_p * p[0];
      std::size_t n = 1;
      while (n < keep && p[n] >= floor) ++n;
      keep = n;
    }
    if (params.top_p < 1.0) {
      double cum = 0.0;
      std::size_t n = 0;
      while (n < keep && cum < params.top_p) cum += p[n++];
      keep = std::max<std::size_t>(n, 1);
    }
    double mass = 0.0;
    for (std::size_t i = 0; i < keep; ++i) mass += p[i];
    const double u = sample_uniform(params.seed, request_id, position) * mass;
    double cum = 0.0;
    out.token = order[keep - 1];
    for (std::size_t i = 0; i < keep; ++i) {
      cum += p[i];
      if (u < cum) {
        out.token = order[i];
        break;
      }
    }
  }
  out.logprob = logp[static_cast<std::size_t>(out.token)];
  if (params.logprobs > 0) {
    const std::size_t n = std::min<std::size_t>(std::size_t(params.logprobs), logp.size());
    std::vector<std::int32_t> ids(logp.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
                      [&](std::int32_t a, std::int32_t b) {
                        return logp[a] > logp[b] || (logp[a] == logp[b] && a < b);
                      });
    for (std::size_t i = 0; i < n; ++i) out.top.emplace_back(ids[i], logp[ids[i]]);
  }
  return out;
}

}  // namespace infllm::model
