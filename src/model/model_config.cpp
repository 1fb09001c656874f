// model_config.cpp: config.json parsing, validation and writing (see model_config.hpp).
#include "model/model_config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

// Typed field access that names the field and the file when the value is missing or mistyped.
class Fields {
 public:
  Fields(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  std::int64_t integer(const char* key) const {
    if (!has(key)) throw InputError(file_, key, "missing (required)");
    const json& v = j_.at(key);
    if (!v.is_number_integer()) throw InputError(file_, key, "is not an integer: " + v.dump());
    return v.get<std::int64_t>();
  }
  std::int64_t integer(const char* key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) throw InputError(file_, key, "is not a number: " + v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) throw InputError(file_, key, "is not true or false: " + v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) throw InputError(file_, key, "is not a string: " + v.dump());
    return v.get<std::string>();
  }
  // An integer or a list of integers (eos_token_id may be either).
  std::vector<std::int64_t> integers(const char* key) const {
    if (!has(key)) return {};
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
    throw InputError(file_, key, "is not an integer or a list of integers: " + v.dump());
  }

 private:
  const json& j_;
  std::string file_;
};

RopeScaling parse_rope_scaling(const json& j, const std::string& file) {
  RopeScaling r;
  if (!j.contains("rope_scaling") || j.at("rope_scaling").is_null()) return r;
  const json& rs = j.at("rope_scaling");
  if (!rs.is_object()) throw InputError(file, "rope_scaling", "is not an object: " + rs.dump());
  const Fields f(rs, file);
  r.type = f.string("rope_type", f.string("type", ""));
  if (r.type == "default") r.type.clear();
  if (!r.type.empty() && r.type != "llama3" && r.type != "linear") {
    throw InputError(file, "rope_scaling.rope_type",
                     "'" + r.type + "' is not supported (infllm knows llama3 and linear)");
  }
  r.factor = f.number("factor", 1.0);
  r.low_freq_factor = f.number("low_freq_factor", 1.0);
  r.high_freq_factor = f.number("high_freq_factor", 4.0);
  r.original_max_position_embeddings = f.integer("original_max_position_embeddings", 8192);
  return r;
}

}  // namespace

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t per_layer = hidden_size * (q_dim() + 2 * kv_dim()) +  // q, k, v
                                 q_dim() * hidden_size +                   // o
                                 3 * hidden_size * intermediate_size +     // gate, up, down
                                 2 * hidden_size +                         // two norms
                                 (attention_bias ? q_dim() + 2 * kv_dim() : 0);
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
    if (!(rope_scaling.factor >= 1.0)) {
      throw InputError(file, "rope_scaling.factor", "must be at least 1");
    }
    if (rope_scaling.type == "llama3" &&
        (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor) ||
         rope_scaling.original_max_position_embeddings <= 0)) {
      throw InputError(file, "rope_scaling",
                       "llama3 needs high_freq_factor > low_freq_factor and a positive "
                       "original_max_position_embeddings");
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

ModelConfig parse_hf_config(const json& j, const std::string& file) {
  if (!j.is_object()) throw InputError(file, "", "is not a JSON object");
  const Fields f(j, file);
  ModelConfig c;
  if (j.contains("architectures") && j.at("architectures").is_array() &&
      !j.at("architectures").empty() && j.at("architectures")[0].is_string()) {
    c.architecture = j.at("architectures")[0].get<std::string>();
  }
  c.model_type = f.string("model_type", "llama");
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    throw InputError(
        file, "model_type",
        "'" + c.model_type + "' is not a Llama-family decoder (llama, mistral, qwen2)");
  }
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu") {
    throw InputError(file, "hidden_act", "'" + act + "' is not supported (SwiGLU with silu only)");
  }
  c.vocab_size = f.integer("vocab_size");
  c.hidden_size = f.integer("hidden_size");
  c.num_layers = f.integer("num_hidden_layers");
  c.num_heads = f.integer("num_attention_heads");
  c.num_kv_heads = f.integer("num_key_value_heads", c.num_heads);
  c.head_dim = f.integer("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.intermediate_size = f.integer("intermediate_size");
  c.max_position_embeddings = f.integer("max_position_embeddings", 2048);
  c.rms_norm_eps = f.number("rms_norm_eps", 1e-6);
  c.rope_theta = f.number("rope_theta", 10000.0);
  c.rope_scaling = parse_rope_scaling(j, file);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases and writes no flag; Llama writes attention_bias.
  c.attention_bias = f.boolean("attention_bias", c.model_type == "qwen2");
  if (f.has("sliding_window") && f.boolean("use_sliding_window", c.model_type == "mistral")) {
    c.sliding_window = f.integer("sliding_window");
  }
  if (f.has("bos_token_id")) c.bos_token_id = f.integer("bos_token_id");
  c.eos_token_ids = f.integers("eos_token_id");
  c.torch_dtype = f.string("torch_dtype", "float32");
  c.validate(file);
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw InputError(path, "", std::string("is not valid JSON: ") + e.what());
  }
  return parse_hf_config(j, path);
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
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"initializer_range", 0.02},
      {"pretraining_tp", 1},
      {"use_cache", true},
      {"torch_dtype", c.torch_dtype},
  };
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {{"rope_type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.type == "llama3") {
      j["rope_scaling"]["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      j["rope_scaling"]["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      j["rope_scaling"]["original_max_position_embeddings"] =
          c.rope_scaling.original_max_position_embeddings;
    }
  }
  if (c.sliding_window) {
    j["sliding_window"] = *c.sliding_window;
    j["use_sliding_window"] = true;
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  }
  return j;
}

}  // namespace infllm::model
