// make_model.cpp: presets, deterministic weights and the three files of a generated model
// (see make_model.hpp).
//
// NOTE: weight scales. With x of unit RMS (RMSNorm output, gains near 1), a linear layer whose
// weights have standard deviation 1/sqrt(in_features) gives outputs of unit RMS. So q, k, v,
// gate and up use 1/sqrt(H): attention scores q.k/sqrt(head_dim) then have unit spread (softmax
// neither flat nor one-hot). The two layers that write into the residual stream (o_proj,
// down_proj) are further divided by sqrt(2 * layers), so the stream's RMS stays O(1) however
// deep the model (the GPT-2 residual scaling). The embedding and lm_head use 4/sqrt(H): after
// the final norm, logits have a standard deviation of about 4, far from flat. Norm gains are
// 1 + 0.1 u, not exactly 1, so a forward pass that forgot a gain would be caught by golden tests.
#include "model/maker/make_model.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "model/maker/bpe_trainer.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kTrainedVocab = 512;  // BPE entries trained from the built-in corpus

ModelConfig base_config() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.rms_norm_eps = 1e-5;
  c.bos_token_id = 1;     // <|im_start|>, as SmolLM2-Instruct
  c.eos_token_ids = {2};  // <|im_end|>
  return c;
}

std::vector<ModelPreset> build_presets() {
  std::vector<ModelPreset> out;
  {
    ModelConfig c = base_config();
    c.vocab_size = 512;
    c.hidden_size = 128;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 32;
    c.intermediate_size = 256;
    c.max_position_embeddings = 32768;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    out.push_back({"micro", "tests: hidden 128, 2 layers, 4/2 heads, vocab 512, tied", c});
  }
  {
    ModelConfig c = base_config();
    c.vocab_size = 1024;
    c.hidden_size = 384;
    c.num_layers = 4;
    c.num_heads = 6;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.intermediate_size = 1024;
    c.max_position_embeddings = 131072;
    c.rope_theta = 500000.0;
    c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
    c.tie_word_embeddings = false;
    out.push_back({"small", "hidden 384, 4 layers, 6/2 heads (GQA 3), llama3 rope, untied", c});
  }
  {
    ModelConfig c = base_config();
    c.vocab_size = 8192;
    c.hidden_size = 2048;
    c.num_layers = 16;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 64;
    c.intermediate_size = 8192;
    c.max_position_embeddings = 131072;
    c.rope_theta = 500000.0;
    c.rope_scaling = {"llama3", 32.0, 1.0, 4.0, 8192};
    c.tie_word_embeddings = false;
    out.push_back({"1b", "GPUs: Llama-3.2-1B body, 16 layers, 32/8 heads, vocab 8192, ~1.0e9", c});
  }
  return out;
}

std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finalizer: a bijection with full avalanche
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The per-tensor key of the counter-based generator: (seed, name) hashed once per tensor.
std::uint64_t tensor_stream(std::uint64_t seed, std::string_view name) {
  return mix64(seed ^ mix64(fnv1a(name)));
}

// Element `index` of a stream as a float in [-1, 1): the top 24 bits of a hash of the counter,
// exactly representable, scaled to [0, 2) and shifted.
float uniform_at(std::uint64_t stream, std::int64_t index) {
  const std::uint64_t bits =
      mix64(stream + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(index));
  return static_cast<float>(bits >> 40) * 0x1.0p-23f - 1.0f;
}

// Writes `text` to `path` through a temporary file and a rename.
void write_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path.string(), "", "cannot create");
    out << text;
    out.close();
    if (!out) throw InputError(path.string(), "", "write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw InputError(path.string(), "", "cannot rename into place: " + ec.message());
}

const char* torch_dtype(StDtype d) {
  switch (d) {
    case StDtype::kF32:
      return "float32";
    case StDtype::kF16:
      return "float16";
    case StDtype::kBF16:
      return "bfloat16";
  }
  return "float32";
}

// A tensor of uniform values with standard deviation `std` around `mean`.
SafetensorsEntry random_tensor(std::string name, std::vector<std::int64_t> shape, StDtype dtype,
                               std::uint64_t seed, float mean, float std) {
  const float amplitude = std * std::sqrt(3.0f);  // uniform [-a, a) has std a / sqrt(3)
  SafetensorsEntry e{name, dtype, std::move(shape), {}};
  const std::uint64_t stream = tensor_stream(seed, name);
  e.fill = [stream, mean, amplitude](std::int64_t first, std::span<float> out) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = mean + amplitude * uniform_at(stream, first + static_cast<std::int64_t>(i));
    }
  };
  return e;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> kPresets = build_presets();
  return kPresets;
}

const ModelPreset& find_preset(const std::string& name) {
  std::string names;
  for (const auto& p : model_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  throw UsageError("preset", "'" + name + "' is not one of " + names);
}

float make_model_uniform(std::uint64_t seed, std::string_view name, std::int64_t index) {
  return uniform_at(tensor_stream(seed, name), index);
}

nlohmann::json make_model_tokenizer(std::int64_t vocab_size) {
  BpeTrainerOptions opt;
  opt.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  opt.vocab_size = static_cast<std::int32_t>(std::min(vocab_size, kTrainedVocab));
  nlohmann::json tok = train_byte_level_bpe(default_bpe_corpus(), opt);
  for (std::int64_t id = opt.vocab_size; id < vocab_size; ++id) {
    const std::string content = "<|reserved_" + std::to_string(id - opt.vocab_size) + "|>";
    tok["model"]["vocab"][content] = id;
    tok["added_tokens"].push_back({{"id", id},
                                   {"content", content},
                                   {"single_word", false},
                                   {"lstrip", false},
                                   {"rstrip", false},
                                   {"normalized", false},
                                   {"special", true}});
  }
  return tok;
}

ModelConfig make_model(const MakeModelOptions& o) {
  const ModelPreset& preset = find_preset(o.preset);
  ModelConfig c = preset.config;
  c.torch_dtype = torch_dtype(o.dtype);
  if (o.out_dir.empty()) throw UsageError("out", "an output directory is required");
  const fs::path dir(o.out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw InputError(o.out_dir, "", "cannot create the output directory: " + ec.message());
  }

  const auto H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const float inv_sqrt_h = 1.0f / std::sqrt(static_cast<float>(H));
  const float residual = 1.0f / std::sqrt(2.0f * static_cast<float>(c.num_layers));
  const float logit_scale = 4.0f * inv_sqrt_h;
  std::vector<SafetensorsEntry> entries;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float mean, float std) {
    entries.push_back(random_tensor(name, std::move(shape), o.dtype, o.seed, mean, std));
  };
  const float norm_std = 0.1f / std::sqrt(3.0f);  // gains 1 + 0.1 u, u uniform in [-1, 1)
  add("model.embed_tokens.weight", {V, H}, 0.0f, logit_scale);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {H}, 1.0f, norm_std);
    add(p + "self_attn.q_proj.weight", {c.q_dim(), H}, 0.0f, inv_sqrt_h);
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), H}, 0.0f, inv_sqrt_h);
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), H}, 0.0f, inv_sqrt_h);
    add(p + "self_attn.o_proj.weight", {H, c.q_dim()}, 0.0f,
        residual / std::sqrt(static_cast<float>(c.q_dim())));
    add(p + "post_attention_layernorm.weight", {H}, 1.0f, norm_std);
    add(p + "mlp.gate_proj.weight", {F, H}, 0.0f, inv_sqrt_h);
    add(p + "mlp.up_proj.weight", {F, H}, 0.0f, inv_sqrt_h);
    add(p + "mlp.down_proj.weight", {H, F}, 0.0f, residual / std::sqrt(static_cast<float>(F)));
  }
  add("model.norm.weight", {H}, 1.0f, norm_std);
  if (!c.tie_word_embeddings) add("lm_head.weight", {V, H}, 0.0f, logit_scale);

  c.validate(o.out_dir + " (preset " + preset.name + ")");
  write_file(dir / "tokenizer.json", make_model_tokenizer(V).dump(2) + "\n");
  // A ChatML chat template (the family SmolLM2 uses), so `messages` inputs work on generated
  // models too: <|im_start|> and <|im_end|> are the tokenizer's special ids 1 and 2.
  const nlohmann::json tokenizer_config = {
      {"bos_token", "<|im_start|>"},
      {"eos_token", "<|im_end|>"},
      {"chat_template",
       "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
       "{{ '<|im_start|>assistant\\n' }}{% endif %}"}};
  write_file(dir / "tokenizer_config.json", tokenizer_config.dump(2) + "\n");
  write_safetensors((dir / "model.safetensors").string(), entries);
  // config.json last: a directory with a config.json is complete.
  write_file(dir / "config.json", to_hf_json(c).dump(2) + "\n");
  return c;
}

}  // namespace infllm::model
