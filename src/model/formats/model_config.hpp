// model_config.hpp: the shape and hyper-parameters of a Llama-family decoder.
//
// One struct describes a model whatever file it came from: Hugging Face `config.json`
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) or GGUF `llama.*` metadata
// (weights.hpp fills it from GGUF). The forward pass reads only this struct. Parsing checks
// every field a forward pass needs, so a bad config is one InputError naming config.json and
// the field, not a crash later.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace infllm::model {

// RoPE frequency scaling, as transformers' rope_parameters (or the legacy rope_scaling) give it.
// `type` "" = default (plain rope_theta); "linear" = positions divided by `factor`; "llama3" =
// Llama 3.1's wavelength-dependent scaling (factor, low/high frequency factors, original context
// length); "yarn" = YaRN (NTK-by-parts: frequencies between beta_fast and beta_slow rotations over
// the original context are ramped from extrapolated to interpolated by `factor`, and cos / sin
// multiplied by `attention_factor`).
struct RopeScaling {
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;                          // llama3
  double high_freq_factor = 4.0;                         // llama3
  std::int64_t original_max_position_embeddings = 8192;  // llama3, yarn
  double attention_factor = 1.0;  // multiplies cos and sin (1 except for yarn)
  double beta_fast = 32.0;        // yarn
  double beta_slow = 1.0;         // yarn
  bool truncate = true;           // yarn: correction range rounded outwards to whole dimensions
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";  // HF "architectures"[0]
  std::string model_type = "llama";               // llama | mistral | qwen2 | qwen3
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;     // query heads
  std::int64_t num_kv_heads = 0;  // key/value heads (GQA: num_heads % num_kv_heads == 0)
  std::int64_t head_dim = 0;      // per head; hidden_size / num_heads unless given
  std::int64_t intermediate_size = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2)
  bool qk_norm = false;         // q and k heads RMS-normed (own gains) before RoPE (Qwen3)
  // Mistral-style sliding-window attention; nullopt = full attention.
  std::optional<std::int64_t> sliding_window;
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;  // any of them ends generation
  std::string torch_dtype = "float32";      // dtype the weights were saved in (informational)
  // Where the RoPE settings were read: "rope_parameters" (transformers 5), "rope_scaling" and/or
  // "rope_theta" (the legacy top-level keys), GGUF's "<arch>.rope.*", or "" (all defaulted).
  std::string rope_source;
  // The keys the file did not give, with the value each took (transformers' default for the
  // architecture, or GGUF's): "rms_norm_eps 1e-06". `infllm inspect` lists them.
  std::vector<std::string> defaulted;

  std::int64_t q_dim() const { return num_heads * head_dim; }      // rows of q_proj
  std::int64_t kv_dim() const { return num_kv_heads * head_dim; }  // rows of k_proj, v_proj
  // Parameters of the weights this config implies (embedding and lm_head counted once if tied).
  std::int64_t parameter_count() const;

  // Throws InputError(file, field, problem) on any inconsistency (non-positive sizes, heads not
  // dividing, rope scaling parameters out of range).
  void validate(const std::string& file) const;
};

// Sliding-window attention is not implemented: a window shorter than the context is refused
// (InputError naming `file` and sliding_window) rather than attended beyond.
void refuse_sliding_window(const ModelConfig& config, const std::string& file);

// Parses a Hugging Face config.json object. `file` names it in errors. Every top-level key is
// either read, known not to change the forward pass (bookkeeping, training-only, generation
// defaults: the request carries those), or refused by name; a key that is missing takes the
// default transformers' config class for that model_type uses, and is listed in `defaulted`.
ModelConfig parse_hf_config(const nlohmann::json& j, const std::string& file);

// Reads and parses `path` (a config.json file).
ModelConfig load_hf_config(const std::string& path);

// The config.json object transformers writes for this config (LlamaForCausalLM etc.).
nlohmann::json to_hf_json(const ModelConfig& config);

}  // namespace infllm::model
