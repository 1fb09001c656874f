// cmd_inspect.cpp: `infllm inspect PATH`: describes a model directory or GGUF file.
//
// Reads only headers and metadata (safetensors headers, the GGUF directory, tokenizer.json), so
// describing a multi-GB model takes milliseconds: architecture, shapes, parameter count, a
// histogram of tensor types, and the tokenizer.
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli.hpp"
#include "core/errors.hpp"
#include "model/dequant.hpp"
#include "model/gguf.hpp"
#include "model/model_config.hpp"
#include "model/safetensors.hpp"
#include "model/weights.hpp"

namespace infllm::app {
namespace {

namespace fs = std::filesystem;

// "1,234,567 (1.23 M)"
std::string count_text(std::int64_t n) {
  std::string digits = std::to_string(n), grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  std::ostringstream os;
  os << grouped << " (" << std::setprecision(3);
  if (n >= 1000000000) {
    os << n / 1e9 << " B)";
  } else if (n >= 1000000) {
    os << n / 1e6 << " M)";
  } else {
    os << n / 1e3 << " K)";
  }
  return os.str();
}

void print_config(const model::ModelConfig& c) {
  std::cout << "architecture:   " << c.architecture << " (" << c.model_type << ")\n"
            << "shape:          vocab " << c.vocab_size << ", hidden " << c.hidden_size
            << ", layers " << c.num_layers << ", heads " << c.num_heads << " query / "
            << c.num_kv_heads << " KV (GQA " << c.num_heads / c.num_kv_heads << "), head_dim "
            << c.head_dim << ", intermediate " << c.intermediate_size << "\n"
            << "positions:      max " << c.max_position_embeddings << ", rope_theta "
            << c.rope_theta;
  if (c.rope_scaling.type == "llama3") {
    std::cout << ", rope_scaling llama3 (factor " << c.rope_scaling.factor << ", low "
              << c.rope_scaling.low_freq_factor << ", high " << c.rope_scaling.high_freq_factor
              << ", original " << c.rope_scaling.original_max_position_embeddings << ")";
  } else if (!c.rope_scaling.type.empty()) {
    std::cout << ", rope_scaling " << c.rope_scaling.type << " (factor " << c.rope_scaling.factor
              << ")";
  }
  if (c.sliding_window) std::cout << ", sliding window " << *c.sliding_window;
  std::cout << "\nnorm:           RMSNorm eps " << c.rms_norm_eps << "\n"
            << "embeddings:     " << (c.tie_word_embeddings ? "tied" : "untied") << "\n";
  std::cout << "special ids:    bos "
            << (c.bos_token_id ? std::to_string(*c.bos_token_id) : std::string("none")) << ", eos";
  if (c.eos_token_ids.empty()) std::cout << " none";
  for (const auto id : c.eos_token_ids) std::cout << " " << id;
  std::cout << "\n";
}

void print_tensors(std::int64_t params, std::size_t count,
                   const std::map<std::string, std::int64_t>& by_type) {
  std::cout << "parameters:     " << count_text(params) << "\n"
            << "tensors:        " << count << " (";
  bool first = true;
  for (const auto& [type, n] : by_type) {
    std::cout << (first ? "" : ", ") << type << " " << n;
    first = false;
  }
  std::cout << ")\n";
}

void print_hf_tokenizer(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path, "", std::string("is not valid JSON: ") + e.what());
  }
  const auto& m = j.value("model", nlohmann::json::object());
  const auto& pre = j.value("pre_tokenizer", nlohmann::json::object());
  std::cout << "tokenizer:      tokenizer.json, " << m.value("type", std::string("?"))
            << (pre.is_object() && pre.value("type", std::string()) == "ByteLevel" ? " (byte-level)"
                                                                                   : "")
            << ", " << m.value("vocab", nlohmann::json::object()).size() << " vocabulary entries, "
            << m.value("merges", nlohmann::json::array()).size() << " merges, "
            << j.value("added_tokens", nlohmann::json::array()).size() << " added tokens\n";
}

int inspect_hf(const std::string& dir) {
  const model::ModelConfig c = model::load_hf_config((fs::path(dir) / "config.json").string());
  std::cout << "model:          " << dir << " (Hugging Face directory, weights " << c.torch_dtype
            << ")\n";
  print_config(c);
  std::int64_t params = 0;
  std::size_t count = 0;
  std::map<std::string, std::int64_t> by_type;
  const auto files = model::hf_safetensors_files(dir);
  for (const auto& f : files) {
    const model::SafetensorsFile st(f);
    for (const auto& t : st.tensors()) {
      params += t.numel();
      ++by_type[t.dtype];
      ++count;
    }
  }
  print_tensors(params, count, by_type);
  std::cout << "files:          " << files.size() << " safetensors file"
            << (files.size() == 1 ? "" : "s") << "\n";
  const fs::path tok = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tok)) {
    print_hf_tokenizer(tok.string());
  } else {
    std::cout << "tokenizer:      none (no tokenizer.json)\n";
  }
  return 0;
}

int inspect_gguf(const std::string& path) {
  const model::GgufFile g(path);
  std::cout << "model:          " << path << " (GGUF v" << g.version() << ", "
            << g.get_string_opt("general.name").value_or("unnamed") << ")\n";
  print_config(model::gguf_model_config(g));
  std::int64_t params = 0;
  std::map<std::string, std::int64_t> by_type;
  for (const auto& t : g.tensors()) {
    params += t.numel();
    ++by_type[model::ggml_type_name(t.type_id)];
  }
  print_tensors(params, g.tensors().size(), by_type);
  const model::GgufTokenizerData tok = model::read_gguf_tokenizer(g);
  std::cout << "tokenizer:      GGUF " << (tok.model.empty() ? "?" : tok.model)
            << (tok.model == "gpt2" ? " (byte-level BPE)" : "") << ", pre "
            << (tok.pre.empty() ? "default" : tok.pre) << ", " << tok.tokens.size() << " tokens, "
            << tok.merges.size() << " merges, add_bos "
            << (tok.add_bos_token.value_or(false) ? "true" : "false") << "\n";
  std::cout << "chat template:  ";
  if (tok.chat_template.empty()) {
    std::cout << "none\n";
  } else {
    std::cout << tok.chat_template.size() << " characters"
              << (tok.chat_template.find("<|im_start|>") != std::string::npos ? " (ChatML)" : "")
              << "\n";
  }
  return 0;
}

}  // namespace

int run_inspect(const InspectConfig& config) {
  const std::string& path = config.path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return inspect_hf(path);
  if (!fs::exists(path, ec)) throw InputError(path, "", "no such file or directory");
  if (fs::path(path).extension() == ".gguf") return inspect_gguf(path);
  throw InputError(path, "",
                   "inspect describes model directories and .gguf files (inputs and outputs: "
                   "not yet)");
}

}  // namespace infllm::app
