// model_config.cpp: config.json parsing, validation and writing (see model_config.hpp).
#include "model/formats/model_config.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string_view>

#include "core/errors.hpp"
#include "core/strict_json.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

// Typed field access that names the field and the file when the value is mistyped. A key whose
// value is null counts as absent. `defaulted` receives "key value" for every default taken.
class Fields {
 public:
  Fields(const json& j, std::string file, std::string prefix = "",
         std::vector<std::string>* defaulted = nullptr)
      : j_(j), file_(std::move(file)), prefix_(std::move(prefix)), defaulted_(defaulted) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  // Present, possibly null: an explicit null can differ from a missing key (Mistral's window).
  bool present(const char* key) const { return j_.contains(key); }
  std::string name(const char* key) const { return prefix_ + key; }

  std::int64_t integer(const char* key) const {
    if (!has(key)) throw InputError(file_, name(key), "missing (required)");
    const json& v = j_.at(key);
    if (!v.is_number_integer())
      throw InputError(file_, name(key), "is not an integer: " + v.dump());
    return v.get<std::int64_t>();
  }
  std::int64_t integer(const char* key, std::int64_t fallback) const {
    if (has(key)) return integer(key);
    took(key, std::to_string(fallback));
    return fallback;
  }
  double number(const char* key) const {
    if (!has(key)) throw InputError(file_, name(key), "missing (required)");
    const json& v = j_.at(key);
    if (!v.is_number()) throw InputError(file_, name(key), "is not a number: " + v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw InputError(file_, name(key), "is not finite: " + v.dump());
    return d;
  }
  double number(const char* key, double fallback) const {
    if (has(key)) return number(key);
    took(key, number_text(fallback));
    return fallback;
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) {
      took(key, fallback ? "true" : "false");
      return fallback;
    }
    const json& v = j_.at(key);
    if (!v.is_boolean()) throw InputError(file_, name(key), "is not true or false: " + v.dump());
    return v.get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& v = j_.at(key);
    if (!v.is_string()) throw InputError(file_, name(key), "is not a string: " + v.dump());
    return v.get<std::string>();
  }
  // An integer or a list of integers (eos_token_id may be either).
  std::vector<std::int64_t> integers(const char* key) const {
    const json& v = j_.at(key);
    if (v.is_number_integer()) return {v.get<std::int64_t>()};
    std::vector<std::int64_t> out;
    if (v.is_array()) {
      for (const auto& e : v) {
        if (!e.is_number_integer()) break;
        out.push_back(e.get<std::int64_t>());
      }
      if (out.size() == v.size()) return out;
    }
    throw InputError(file_, name(key), "is not an integer or a list of integers: " + v.dump());
  }
  void took(const char* key, const std::string& value) const {
    if (defaulted_ != nullptr) defaulted_->push_back(name(key) + " " + value);
  }

  static std::string number_text(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }

 private:
  const json& j_;
  std::string file_;
  std::string prefix_;
  std::vector<std::string>* defaulted_;
};

// What transformers' config class of one model_type reads, and its defaults (transformers
// 5.24: LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config).
struct ArchSpec {
  const char* model_type;
  const char* causal_lm;  // the architectures[0] whose weights and forward pass infllm runs
  std::int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads;
  std::optional<std::int64_t> num_kv_heads;  // nullopt: num_attention_heads
  std::int64_t max_position_embeddings;
  std::optional<std::int64_t> bos_token_id, eos_token_id;
  std::optional<std::int64_t> sliding_window;  // the window a missing key means
  std::optional<std::int64_t> head_dim;        // nullopt: hidden_size / num_attention_heads
  bool qkv_bias;
  bool qk_norm;
  std::vector<std::string_view> own_keys;  // keys beyond the shared ones below
};

// clang-format off
const std::vector<ArchSpec>& arch_specs() {
  static const std::vector<ArchSpec> specs = {
      {.model_type = "llama",
       .causal_lm = "LlamaForCausalLM",
       .vocab_size = 32000, .hidden_size = 4096, .intermediate_size = 11008,
       .num_layers = 32, .num_heads = 32, .num_kv_heads = std::nullopt,
       .max_position_embeddings = 2048, .bos_token_id = 1, .eos_token_id = 2,
       .sliding_window = std::nullopt, .head_dim = std::nullopt,
       .qkv_bias = false, .qk_norm = false,
       .own_keys = {"attention_bias", "mlp_bias", "pretraining_tp"}},
      {.model_type = "mistral",
       .causal_lm = "MistralForCausalLM",
       .vocab_size = 32000, .hidden_size = 4096, .intermediate_size = 14336,
       .num_layers = 32, .num_heads = 32, .num_kv_heads = 8,
       .max_position_embeddings = 131072, .bos_token_id = 1, .eos_token_id = 2,
       .sliding_window = 4096, .head_dim = std::nullopt,
       .qkv_bias = false, .qk_norm = false,
       .own_keys = {"sliding_window"}},
      {.model_type = "qwen2",
       .causal_lm = "Qwen2ForCausalLM",
       .vocab_size = 151936, .hidden_size = 4096, .intermediate_size = 22016,
       .num_layers = 32, .num_heads = 32, .num_kv_heads = 32,
       .max_position_embeddings = 32768, .bos_token_id = std::nullopt,
       .eos_token_id = std::nullopt, .sliding_window = std::nullopt, .head_dim = std::nullopt,
       .qkv_bias = true, .qk_norm = false,
       .own_keys = {"use_sliding_window", "sliding_window", "max_window_layers", "layer_types"}},
      {.model_type = "qwen3",
       .causal_lm = "Qwen3ForCausalLM",
       .vocab_size = 151936, .hidden_size = 4096, .intermediate_size = 22016,
       .num_layers = 32, .num_heads = 32, .num_kv_heads = 32,
       .max_position_embeddings = 32768, .bos_token_id = std::nullopt,
       .eos_token_id = std::nullopt, .sliding_window = std::nullopt, .head_dim = 128,
       .qkv_bias = false, .qk_norm = true,
       .own_keys = {"attention_bias", "use_sliding_window", "sliding_window",
                    "max_window_layers", "layer_types"}},
  };
  return specs;
}
// clang-format on

// Keys every supported architecture reads; parse_hf_config handles each of them.
constexpr std::array<std::string_view, 21> kSharedKeys = {"architectures",
                                                          "model_type",
                                                          "vocab_size",
                                                          "hidden_size",
                                                          "intermediate_size",
                                                          "num_hidden_layers",
                                                          "num_attention_heads",
                                                          "num_key_value_heads",
                                                          "head_dim",
                                                          "hidden_act",
                                                          "max_position_embeddings",
                                                          "rms_norm_eps",
                                                          "rope_theta",
                                                          "rope_scaling",
                                                          "rope_parameters",
                                                          "partial_rotary_factor",
                                                          "tie_word_embeddings",
                                                          "bos_token_id",
                                                          "eos_token_id",
                                                          "torch_dtype",
                                                          "dtype"};

// Keys that do not change what the forward pass computes, or what infllm generates.
constexpr std::array<std::string_view, 58> kInertKeys = {
    // Bookkeeping of the writer.
    "transformers_version", "_name_or_path", "_commit_hash", "_attn_implementation_autoset",
    "is_llama_config", "transformers.js_config", "tokenizer_class", "torchscript", "use_bfloat16",
    "tf_legacy_loss",
    // Training or the Python API only: dropout, initialisation, KV cache switch, outputs.
    "initializer_range", "attention_dropout", "use_cache", "output_attentions",
    "output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size",
    // Heads infllm does not run (classification labels, tasks).
    "id2label", "label2id", "problem_type", "finetuning_task", "task_specific_params", "prefix",
    // Padding and encoder-decoder ids: infllm never pads and has no decoder start.
    "pad_token_id", "sep_token_id", "decoder_start_token_id",
    // Generation defaults older transformers wrote into config.json: in infllm each request
    // carries its own sampling settings and limits.
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
    "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
    "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
    "suppress_tokens", "begin_suppress_tokens"};

bool listed(std::span<const std::string_view> keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Keys that change the forward pass, where infllm implements one value only.
void check_fixed_value_keys(const json& j, const std::string& file) {
  if (j.contains("quantization_config") && !j.at("quantization_config").is_null()) {
    throw InputError(file, "quantization_config",
                     "quantized checkpoints of this kind are not supported (use a GGUF file)");
  }
  if (j.contains("pruned_heads") && !j.at("pruned_heads").empty()) {
    throw InputError(file, "pruned_heads", "pruned attention heads are not supported");
  }
  if (j.contains("rope_interleaved") && j.at("rope_interleaved") != json(false)) {
    throw InputError(file, "rope_interleaved",
                     "interleaved RoPE pairs are not supported (infllm rotates halves, as "
                     "transformers' rotate_half): " +
                         j.at("rope_interleaved").dump());
  }
}

const ArchSpec& arch_of(const json& j, const std::string& file) {
  if (!j.contains("model_type")) throw InputError(file, "model_type", "missing (required)");
  const Fields f(j, file);
  const std::string type = f.string("model_type").value_or("");
  for (const auto& spec : arch_specs()) {
    if (type == spec.model_type) return spec;
  }
  throw InputError(
      file, "model_type",
      "'" + type + "' is not a Llama-family decoder infllm runs (llama, mistral, qwen2, qwen3)");
}

void check_keys(const json& j, const ArchSpec& spec, const std::string& file) {
  for (const auto& [key, value] : j.items()) {
    if (listed(kSharedKeys, key) || listed(spec.own_keys, key) || listed(kInertKeys, key) ||
        key == "quantization_config" || key == "pruned_heads" || key == "rope_interleaved") {
      continue;
    }
    throw InputError(file, key,
                     std::string("is not a key of a ") + spec.model_type +
                         " config that infllm knows; it may change the model's output, so the "
                         "model is refused rather than run without it");
  }
  check_fixed_value_keys(j, file);
}

// The RoPE dictionary's keys transformers accepts for each type it implements.
std::vector<std::string_view> rope_keys(const std::string& type) {
  std::vector<std::string_view> keys = {"rope_type", "type", "rope_theta", "partial_rotary_factor"};
  if (type == "linear") keys.insert(keys.end(), {"factor"});
  if (type == "llama3") {
    keys.insert(keys.end(), {"factor", "low_freq_factor", "high_freq_factor",
                             "original_max_position_embeddings"});
  }
  if (type == "yarn") {
    keys.insert(keys.end(), {"factor", "original_max_position_embeddings", "attention_factor",
                             "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"});
  }
  return keys;
}

// YaRN's default attention factor (transformers' get_mscale): 0.1 * mscale * ln(scale) + 1.
double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// A number, or `fallback` when absent, null or zero (Python's `value or fallback`).
double number_or(const Fields& f, const char* key, double fallback) {
  return f.has(key) && f.number(key) != 0.0 ? f.number(key) : fallback;
}

// RoPE as transformers 5 reads it: `rope_scaling` (legacy) if given, else `rope_parameters`;
// rope_theta inside it, else top-level, else 10000; rope_type, else `type`, else "default".
void parse_rope(const json& j, ModelConfig& c, const std::string& file) {
  const Fields top(j, file, "", &c.defaulted);
  const bool legacy = top.has("rope_scaling") && !j.at("rope_scaling").empty();
  const bool current = top.has("rope_parameters");
  if (legacy && current && j.at("rope_scaling") != j.at("rope_parameters")) {
    throw InputError(file, "rope_parameters",
                     "differs from rope_scaling; the config gives RoPE twice and infllm will not "
                     "pick one");
  }
  const char* key = legacy ? "rope_scaling" : "rope_parameters";
  static const json kNone = json::object();
  const json& d = legacy || current ? j.at(key) : kNone;
  if (!d.is_object()) throw InputError(file, key, "is not an object: " + d.dump());
  if (top.has("layer_types")) {
    for (const auto& [k, v] : d.items()) {
      if (k == "full_attention" || k == "sliding_attention") {
        throw InputError(file, std::string(key) + "." + k,
                         "RoPE settings per layer type are not supported");
      }
    }
  }
  const Fields f(d, file, std::string(key) + ".", &c.defaulted);
  const auto type_new = f.string("rope_type"), type_old = f.string("type");
  if (type_new && type_old && *type_new != *type_old) {
    throw InputError(file, f.name("type"),
                     "'" + *type_old + "' differs from rope_type '" + *type_new + "'");
  }
  std::string type = type_new.value_or(type_old.value_or("default"));
  if (type != "default" && type != "linear" && type != "llama3" && type != "yarn") {
    throw InputError(file, f.name(type_new ? "rope_type" : "type"),
                     "'" + type +
                         "' is not supported (infllm implements default, linear, "
                         "llama3 and yarn)");
  }
  const auto allowed = rope_keys(type);
  for (const auto& [k, v] : d.items()) {
    if (!listed(allowed, k)) {
      throw InputError(file, f.name(k.c_str()),
                       "is not a parameter of rope type '" + type + "' that infllm knows");
    }
  }
  if (f.has("rope_theta") && top.has("rope_theta") &&
      f.number("rope_theta") != top.number("rope_theta")) {
    throw InputError(file, f.name("rope_theta"), "differs from the top-level rope_theta");
  }
  c.rope_theta = f.has("rope_theta") ? f.number("rope_theta") : top.number("rope_theta", 10000.0);
  const double partial =
      f.has("partial_rotary_factor")
          ? f.number("partial_rotary_factor")
          : (top.has("partial_rotary_factor") ? top.number("partial_rotary_factor") : 1.0);
  if (partial != 1.0) {
    throw InputError(
        file, "partial_rotary_factor",
        "partial rotary embeddings are not supported (is " + Fields::number_text(partial) + ")");
  }
  c.rope_source = legacy    ? (top.has("rope_theta") ? "rope_scaling + rope_theta" : "rope_scaling")
                  : current ? "rope_parameters"
                  : top.has("rope_theta") ? "rope_theta"
                                          : "";
  RopeScaling& r = c.rope_scaling;
  r = RopeScaling{};
  if (type == "default") return;
  r.type = type;
  if (type == "linear") {
    r.factor = f.number("factor");
    return;
  }
  r.original_max_position_embeddings =
      f.integer("original_max_position_embeddings", c.max_position_embeddings);
  if (type == "llama3") {
    r.factor = f.number("factor");
    r.low_freq_factor = f.number("low_freq_factor");
    r.high_freq_factor = f.number("high_freq_factor");
    return;
  }
  // yarn
  if (!f.present("factor")) throw InputError(file, f.name("factor"), "missing (required)");
  r.factor = f.has("factor")
                 ? f.number("factor")
                 : double(c.max_position_embeddings) / double(r.original_max_position_embeddings);
  if (f.has("attention_factor")) {
    r.attention_factor = f.number("attention_factor");
  } else if (number_or(f, "mscale", 0.0) != 0.0 && number_or(f, "mscale_all_dim", 0.0) != 0.0) {
    r.attention_factor = yarn_mscale(r.factor, f.number("mscale")) /
                         yarn_mscale(r.factor, f.number("mscale_all_dim"));
  } else {
    r.attention_factor = yarn_mscale(r.factor, 1.0);
  }
  r.beta_fast = number_or(f, "beta_fast", 32.0);
  r.beta_slow = number_or(f, "beta_slow", 1.0);
  r.truncate = f.boolean("truncate", true);
}

// Sliding-window attention as transformers derives it; nullopt = full attention everywhere.
std::optional<std::int64_t> sliding_window_of(const json& j, const ArchSpec& spec, ModelConfig& c,
                                              const std::string& file) {
  const Fields f(j, file, "", &c.defaulted);
  if (std::string_view(spec.model_type) == "mistral") {
    if (!f.present("sliding_window")) {
      f.took("sliding_window", std::to_string(*spec.sliding_window));
      return spec.sliding_window;
    }
    return f.has("sliding_window") ? std::optional(f.integer("sliding_window")) : std::nullopt;
  }
  if (!listed(spec.own_keys, "use_sliding_window")) return std::nullopt;
  if (f.has("layer_types")) {
    const json& types = j.at("layer_types");
    if (!types.is_array() || std::ssize(types) != c.num_layers) {
      throw InputError(file, "layer_types", "is not a list of num_hidden_layers layer types");
    }
    for (const auto& t : types) {
      if (t != json("full_attention")) {
        throw InputError(file, "layer_types",
                         "only full_attention layers are supported, not " + t.dump());
      }
    }
    return std::nullopt;
  }
  if (!f.boolean("use_sliding_window", false)) return std::nullopt;
  const std::int64_t window = f.integer("sliding_window", 4096);
  if (f.integer("max_window_layers", 28) >= c.num_layers) return std::nullopt;
  return window;
}

}  // namespace

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t per_layer = hidden_size * (q_dim() + 2 * kv_dim()) +  // q, k, v
                                 q_dim() * hidden_size +                   // o
                                 3 * hidden_size * intermediate_size +     // gate, up, down
                                 2 * hidden_size +                         // two norms
                                 (attention_bias ? q_dim() + 2 * kv_dim() : 0) +
                                 (qk_norm ? 2 * head_dim : 0);
  const std::int64_t embed = vocab_size * hidden_size;
  return embed + (tie_word_embeddings ? 0 : embed) + num_layers * per_layer + hidden_size;
}

void ModelConfig::validate(const std::string& file) const {
  auto positive = [&](const char* field, std::int64_t v) {
    if (v <= 0) throw InputError(file, field, "must be positive, is " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("head_dim", head_dim);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_heads % num_kv_heads != 0) {
    throw InputError(file, "num_key_value_heads",
                     std::to_string(num_kv_heads) + " does not divide num_attention_heads " +
                         std::to_string(num_heads));
  }
  if (head_dim % 2 != 0) {
    throw InputError(file, "head_dim",
                     "must be even for rotary embeddings, is " + std::to_string(head_dim));
  }
  if (!(rms_norm_eps > 0.0)) throw InputError(file, "rms_norm_eps", "must be positive");
  if (!(rope_theta > 0.0)) throw InputError(file, "rope_theta", "must be positive");
  if (!rope_scaling.type.empty()) {
    const std::string key =
        (rope_source.starts_with("rope_scaling") ? "rope_scaling" : "rope_parameters");
    const RopeScaling& r = rope_scaling;
    if (!(r.factor >= 1.0)) throw InputError(file, key + ".factor", "must be at least 1");
    if ((r.type == "llama3" || r.type == "yarn") && r.original_max_position_embeddings <= 0) {
      throw InputError(file, key + ".original_max_position_embeddings", "must be positive");
    }
    if (r.type == "llama3" && !(r.high_freq_factor > r.low_freq_factor)) {
      throw InputError(file, key + ".high_freq_factor", "must exceed low_freq_factor");
    }
    if (r.type == "yarn" && (!(r.attention_factor > 0.0) || !(r.beta_fast > r.beta_slow))) {
      throw InputError(file, key,
                       "yarn needs a positive attention_factor and beta_fast > beta_slow");
    }
  }
  if (sliding_window && *sliding_window <= 0) {
    throw InputError(file, "sliding_window", "must be positive");
  }
  for (const auto id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      throw InputError(file, "eos_token_id", std::to_string(id) + " is outside the vocabulary");
    }
  }
  if (bos_token_id && (*bos_token_id < 0 || *bos_token_id >= vocab_size)) {
    throw InputError(file, "bos_token_id",
                     std::to_string(*bos_token_id) + " is outside the vocabulary");
  }
}

void refuse_sliding_window(const ModelConfig& c, const std::string& file) {
  if (c.sliding_window && *c.sliding_window < c.max_position_embeddings) {
    throw InputError(file, "sliding_window",
                     "sliding-window attention (window " + std::to_string(*c.sliding_window) +
                         " of " + std::to_string(c.max_position_embeddings) +
                         " positions) is not implemented; infllm would attend beyond the window");
  }
}

ModelConfig parse_hf_config(const json& j, const std::string& file) {
  if (!j.is_object()) throw InputError(file, "", "is not a JSON object");
  const ArchSpec& spec = arch_of(j, file);
  check_keys(j, spec, file);
  ModelConfig c;
  const Fields f(j, file, "", &c.defaulted);
  c.model_type = spec.model_type;
  c.architecture = spec.causal_lm;
  if (f.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.size() != 1 || !a[0].is_string() || a[0] != json(spec.causal_lm)) {
      throw InputError(file, "architectures",
                       a.dump() + " is not [\"" + spec.causal_lm +
                           "\"] (infllm runs the causal "
                           "language model of model_type " +
                           spec.model_type + ")");
    }
  }
  const std::string act = f.string("hidden_act").value_or("silu");
  if (act != "silu") {
    throw InputError(file, "hidden_act", "'" + act + "' is not supported (SwiGLU with silu only)");
  }
  c.vocab_size = f.integer("vocab_size", spec.vocab_size);
  c.hidden_size = f.integer("hidden_size", spec.hidden_size);
  c.num_layers = f.integer("num_hidden_layers", spec.num_layers);
  c.num_heads = f.integer("num_attention_heads", spec.num_heads);
  // An explicit null means num_attention_heads in all three config classes.
  c.num_kv_heads = f.present("num_key_value_heads") || !spec.num_kv_heads
                       ? f.integer("num_key_value_heads", c.num_heads)
                       : f.integer("num_key_value_heads", *spec.num_kv_heads);
  c.head_dim = f.integer("head_dim", spec.head_dim     ? *spec.head_dim
                                     : c.num_heads > 0 ? c.hidden_size / c.num_heads
                                                       : 0);
  c.intermediate_size = f.integer("intermediate_size", spec.intermediate_size);
  c.max_position_embeddings = f.integer("max_position_embeddings", spec.max_position_embeddings);
  c.rms_norm_eps = f.number("rms_norm_eps", 1e-6);
  parse_rope(j, c, file);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = spec.qkv_bias;
  c.qk_norm = spec.qk_norm;
  // transformers' Llama and Qwen3 put attention_bias on o_proj too, and Llama mlp_bias on the
  // MLP: neither is implemented.
  if (listed(spec.own_keys, "attention_bias") && f.boolean("attention_bias", false)) {
    throw InputError(file, "attention_bias",
                     std::string("attention biases of ") + spec.model_type + " are not supported");
  }
  if (listed(spec.own_keys, "mlp_bias") && f.boolean("mlp_bias", false)) {
    throw InputError(file, "mlp_bias", "MLP biases are not supported");
  }
  c.sliding_window = sliding_window_of(j, spec, c, file);
  if (f.present("bos_token_id")) {
    if (f.has("bos_token_id")) c.bos_token_id = f.integer("bos_token_id");
  } else if (spec.bos_token_id) {
    c.bos_token_id = f.integer("bos_token_id", *spec.bos_token_id);
  }
  if (f.present("eos_token_id")) {
    if (f.has("eos_token_id")) c.eos_token_ids = f.integers("eos_token_id");
  } else if (spec.eos_token_id) {
    c.eos_token_ids = {f.integer("eos_token_id", *spec.eos_token_id)};
  }
  c.torch_dtype = f.string("dtype").value_or(f.string("torch_dtype").value_or("float32"));
  c.validate(file);
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_hf_config(parse_strict_json(text, path, ""), path);
}

json to_hf_json(const ModelConfig& c) {
  json j = {
      {"architectures", {c.architecture}},
      {"model_type", c.model_type},
      {"hidden_act", "silu"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_dropout", 0.0},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"dtype", c.torch_dtype},
  };
  // RoPE as transformers 5 writes it: one rope_parameters object holding rope_theta.
  const RopeScaling& r = c.rope_scaling;
  json rope = {{"rope_type", r.type.empty() ? "default" : r.type}, {"rope_theta", c.rope_theta}};
  if (!r.type.empty()) rope["factor"] = r.factor;
  if (r.type == "llama3" || r.type == "yarn") {
    rope["original_max_position_embeddings"] = r.original_max_position_embeddings;
  }
  if (r.type == "llama3") {
    rope["low_freq_factor"] = r.low_freq_factor;
    rope["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.type == "yarn") {
    rope["attention_factor"] = r.attention_factor;
    rope["beta_fast"] = r.beta_fast;
    rope["beta_slow"] = r.beta_slow;
    rope["truncate"] = r.truncate;
  }
  j["rope_parameters"] = rope;
  if (c.model_type == "llama") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  } else if (c.model_type == "mistral") {
    // A missing key means MistralConfig's 4096-token window; null means none.
    j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    if (c.model_type == "qwen3") j["attention_bias"] = false;
    j["use_sliding_window"] = c.sliding_window.has_value();
    if (c.sliding_window) {
      j["sliding_window"] = *c.sliding_window;
      j["max_window_layers"] = 0;
    }
  }
  // Written even when absent, so that reading back does not take an architecture's default.
  j["bos_token_id"] = c.bos_token_id ? json(*c.bos_token_id) : json(nullptr);
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  } else {
    j["eos_token_id"] = nullptr;
  }
  return j;
}

}  // namespace infllm::model
