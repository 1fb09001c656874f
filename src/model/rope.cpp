// rope.cpp: see rope.hpp.
#include "model/rope.hpp"

#include <cmath>
#include <numbers>

#include "core/errors.hpp"

namespace infllm::model {

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
