// rope.cpp: see rope.hpp.
#include "model/forward/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/errors.hpp"

namespace infllm::model {
namespace {

// YaRN (NTK-by-parts) as transformers' _compute_yarn_parameters: dimension d keeps its
// extrapolated frequency when it turns more than beta_fast times over the original context,
// takes the interpolated one (divided by `factor`) below beta_slow turns, and is ramped
// linearly between the two correction dimensions.
void yarn_scale(const RopeScaling& s, double base, std::int64_t dim, std::vector<double>& inv) {
  const double original = double(s.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return double(dim) * std::log(original / (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(base));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // as transformers: no division by zero
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1.0 - ramp;
    inv[i] = inv[i] / s.factor * (1.0 - extrapolation) + inv[i] * extrapolation;
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& config, const std::vector<float>& rope_freqs) {
  const auto dim = config.head_dim;
  const std::size_t half = static_cast<std::size_t>(dim / 2);
  // Hugging Face computes 1 / theta^(arange(0, dim, 2) / dim) in f32 from an int64 arange; the
  // exponent 2i/dim is exact in f32 for every head_dim in use, so double then round agrees.
  std::vector<double> inv(half);
  for (std::size_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[i] = 1.0 / std::pow(config.rope_theta, double(exponent));
  }
  const RopeScaling& s = config.rope_scaling;
  if (s.type == "llama3") {
    const double old_len = double(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth =
            (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  } else if (s.type == "yarn") {
    yarn_scale(s, config.rope_theta, dim, inv);
  } else if (s.type == "linear") {
    // Linear interpolation: positions divided by `factor`, i.e. every frequency divided by it.
    for (auto& f : inv) f /= s.factor;
  } else if (!s.type.empty() && s.type != "default") {
    throw InputError("config", "rope_scaling", "unsupported rope_scaling type '" + s.type + "'");
  }
  if (!rope_freqs.empty()) {
    if (rope_freqs.size() != half) {
      throw InputError("model", "rope_freqs", "length differs from head_dim / 2");
    }
    for (std::size_t i = 0; i < half; ++i) inv[i] /= rope_freqs[i];
  }
  std::vector<float> out(half);
  for (std::size_t i = 0; i < half; ++i) out[i] = static_cast<float>(inv[i]);
  return out;
}

}  // namespace infllm::model
