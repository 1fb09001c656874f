// rope.hpp: the rotary embedding's inverse frequencies, with llama3 scaling.
#pragma once

#include <vector>

#include "model/formats/model_config.hpp"

namespace infllm::model {

// inv_freq[i] = 1 / rope_theta^(2i / head_dim) for i < head_dim / 2, rescaled by
// config.rope_scaling when its type is "llama3": wavelengths longer than
// original_max_position_embeddings / low_freq_factor are divided by `factor`, shorter than
// original / high_freq_factor kept, and the band between interpolated smoothly (as Hugging
// Face's _compute_llama3_parameters); type "linear" divides every frequency by `factor`; type
// "yarn" ramps between the plain and the divided frequency by dimension (transformers'
// _compute_yarn_parameters; its attention factor is config.rope_scaling.attention_factor, which
// the caller applies to cos and sin). Computed
// in double, returned as the f32 the forward pass multiplies positions with. `rope_freqs` (GGUF's
// rope_freqs.weight), when non-empty, divides each frequency instead.
std::vector<float> rope_inv_freq(const ModelConfig& config,
                                 const std::vector<float>& rope_freqs = {});

}  // namespace infllm::model
