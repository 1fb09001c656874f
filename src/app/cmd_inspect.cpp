// cmd_inspect.cpp: `infllm inspect PATH`: describes a model directory or GGUF file, an input
// or an output of `infllm generate`.
//
// Models: reads only headers and metadata (safetensors headers, the GGUF directory,
// tokenizer.json), so describing a multi-GB model takes milliseconds: architecture, shapes,
// parameter count, a histogram of tensor types, and the tokenizer.
// Inputs (.jsonl, .h5): documents, prompt kinds, prompt sizes, per-request settings.
// Outputs (.jsonl, .h5, or an HDF5 output's .journal): records by status, finish reasons,
// tokens, the fingerprint beside the output, and whether every request of the run is there.
// A JSONL file is an output when its first record has a `status`; an HDF5 file when it has
// /results.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/cli.hpp"
#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/fingerprint.hpp"
#include "io/hdf5_file.hpp"
#include "io/hdf5_isolated.hpp"
#include "io/hdf5_results.hpp"
#include "io/results.hpp"
#include "model/formats/dequant.hpp"
#include "model/formats/gguf.hpp"
#include "model/formats/hf_cache.hpp"
#include "model/formats/model_config.hpp"
#include "model/formats/safetensors.hpp"
#include "model/formats/weights.hpp"
#include "model/tokenizer/chat_template.hpp"
#include "model/tokenizer/tokenizer.hpp"

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

// "llama3 (theta 500000, factor 8, low 1, high 4, original 8192), from rope_parameters".
std::string rope_text(const model::ModelConfig& c) {
  const model::RopeScaling& r = c.rope_scaling;
  std::ostringstream os;
  os << (r.type.empty() ? "default" : r.type) << " (theta " << c.rope_theta;
  if (!r.type.empty()) os << ", factor " << r.factor;
  if (r.type == "llama3") {
    os << ", low " << r.low_freq_factor << ", high " << r.high_freq_factor << ", original "
       << r.original_max_position_embeddings;
  } else if (r.type == "yarn") {
    os << ", original " << r.original_max_position_embeddings << ", attention factor "
       << r.attention_factor << ", beta fast " << r.beta_fast << " slow " << r.beta_slow
       << (r.truncate ? "" : ", not truncated");
  }
  os << "), from " << (c.rope_source.empty() ? "defaults" : c.rope_source);
  return os.str();
}

void print_config(const model::ModelConfig& c) {
  std::cout << "architecture:   " << c.architecture << " (" << c.model_type << ")\n"
            << "shape:          vocab " << c.vocab_size << ", hidden " << c.hidden_size
            << ", layers " << c.num_layers << ", heads " << c.num_heads << " query / "
            << c.num_kv_heads << " KV (GQA " << c.num_heads / c.num_kv_heads << "), head_dim "
            << c.head_dim << ", intermediate " << c.intermediate_size << "\n"
            << "positions:      max " << c.max_position_embeddings << "\n"
            << "rope:           " << rope_text(c) << "\n";
  std::cout << "attention:      " << (c.attention_bias ? "q/k/v biases" : "no biases")
            << (c.qk_norm ? ", q/k RMSNorm per head" : "");
  if (c.sliding_window) std::cout << ", sliding window " << *c.sliding_window << " (refused)";
  std::cout << "\n";
  // The CPU build keeps K and V in f32, every layer on the rank that serves the token.
  const std::int64_t kv_bytes = 2 * c.num_layers * c.kv_dim() * 4;
  std::cout << "kv cache:       " << kv_bytes << " bytes per token per rank (f32: 2 x "
            << c.num_layers << " layers x " << c.kv_dim() << "); " << std::fixed
            << std::setprecision(1) << double(kv_bytes) * 1e6 / 1073741824.0
            << " GiB per million tokens\n"
            << std::defaultfloat;
  std::cout << "norm:           RMSNorm eps " << c.rms_norm_eps << "\n"
            << "embeddings:     " << (c.tie_word_embeddings ? "tied" : "untied") << "\n";
  std::cout << "special ids:    bos "
            << (c.bos_token_id ? std::to_string(*c.bos_token_id) : std::string("none")) << ", eos";
  if (c.eos_token_ids.empty()) std::cout << " none";
  for (const auto id : c.eos_token_ids) std::cout << " " << id;
  std::cout << "\n";
  std::cout << "defaulted:      ";
  if (c.defaulted.empty()) std::cout << "nothing (every value read from the file)";
  for (std::size_t i = 0; i < c.defaulted.size(); ++i) {
    std::cout << (i > 0 ? ", " : "") << c.defaulted[i];
  }
  std::cout << "\n";
}

// "chat template:  llama3 (1234 characters)", or why generate cannot render `messages`.
void print_chat_template(const std::string& text, const std::string& source) {
  std::cout << "chat template:  ";
  if (text.empty()) {
    std::cout << "none (inputs with `messages` are refused)\n";
    return;
  }
  try {
    const auto t = model::ChatTemplate::recognize(text, source);
    std::cout << model::chat_template_family_name(t.family()) << " (" << text.size()
              << " characters)\n";
  } catch (const InputError&) {
    std::cout << "not recognized (" << text.size()
              << " characters; inputs with `messages` are refused)\n";
  }
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
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "", std::string("is not valid JSON: ") + e.what());
  }
  const auto& m = j.value("model", nlohmann::json::object());
  const auto& pre = j.value("pre_tokenizer", nlohmann::json::object());
  const bool sentencepiece = model::Tokenizer::json_is_sentencepiece(j);
  const bool byte_level =
      !sentencepiece && pre.is_object() && pre.dump().find("\"ByteLevel\"") != std::string::npos;
  std::cout << "tokenizer:      tokenizer.json, " << m.value("type", std::string("?"))
            << (byte_level      ? " (byte-level)"
                : sentencepiece ? " (SentencePiece-style)"
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
  print_chat_template(model::hf_chat_template_text(dir), dir + "/tokenizer_config.json");
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
            << (tok.model == "gpt2"    ? " (byte-level BPE)"
                : tok.model == "llama" ? " (SentencePiece-style BPE, merges by score)"
                                       : "")
            << ", pre " << (tok.pre.empty() ? "default" : tok.pre) << ", " << tok.tokens.size()
            << " tokens, " << tok.merges.size() << " merges, add_bos "
            << (tok.add_bos_token.value_or(false) ? "true" : "false") << "\n";
  print_chat_template(tok.chat_template, path);
  return 0;
}

// "n 3, min 1, median 4, max 9, total 17"
std::string size_stats(std::vector<std::int64_t> v) {
  if (v.empty()) return "none";
  std::sort(v.begin(), v.end());
  std::int64_t total = 0;
  for (auto x : v) total += x;
  std::ostringstream os;
  os << "n " << v.size() << ", min " << v.front() << ", median " << v[v.size() / 2] << ", max "
     << v.back() << ", total " << total;
  return os.str();
}

std::string counts_text(const std::map<std::string, std::int64_t>& counts) {
  if (counts.empty()) return "none";
  std::string out;
  for (const auto& [k, n] : counts) out += (out.empty() ? "" : ", ") + k + " " + std::to_string(n);
  return out;
}

int inspect_input(const std::string& path, const char* format) {
  const auto docs = io::read_documents(path);
  std::map<std::string, std::int64_t> kinds;
  std::vector<std::int64_t> chars, tokens, messages, max_new;
  std::int64_t overrides = 0;
  for (const auto& d : docs) {
    if (d.prompt) {
      ++kinds["prompt"];
      chars.push_back(static_cast<std::int64_t>(d.prompt->size()));
    } else if (d.tokens) {
      ++kinds["tokens"];
      tokens.push_back(static_cast<std::int64_t>(d.tokens->size()));
    } else {
      ++kinds["messages"];
      std::int64_t n = 0;
      for (const auto& m : *d.messages) n += static_cast<std::int64_t>(m.content.size());
      messages.push_back(n);
    }
    if (d.max_new_tokens) max_new.push_back(*d.max_new_tokens);
    const auto& o = d.overrides;
    if (o.temperature || o.top_p || o.top_k || o.min_p || o.seed || o.min_new_tokens ||
        o.ignore_eos || o.stop) {
      ++overrides;
    }
  }
  std::cout << "input:          " << path << " (" << format << ")\n"
            << "documents:      " << docs.size() << " (" << counts_text(kinds) << ")\n";
  if (!chars.empty()) std::cout << "prompt chars:   " << size_stats(chars) << "\n";
  if (!tokens.empty()) std::cout << "prompt tokens:  " << size_stats(tokens) << "\n";
  if (!messages.empty()) std::cout << "message chars:  " << size_stats(messages) << "\n";
  std::cout << "max_new_tokens: " << (max_new.empty() ? "run default for all" : size_stats(max_new))
            << "\n"
            << "overrides:      " << overrides << " documents with per-request sampling settings\n";
  return 0;
}

// Describes the `records` of `output`, read from `source` (the output itself, or the journal of
// an HDF5 output); the fingerprint sidecar lives beside `output`.
int describe_output(const std::string& output, const std::string& source, const char* format,
                    const std::vector<io::ResultRecord>& records, std::size_t torn_bytes) {
  std::map<std::string, std::int64_t> status, finish, reasons;
  std::vector<std::int64_t> generated, prompt;
  for (const auto& r : records) {
    ++status[r.status];
    if (!r.finish_reason.empty()) ++finish[r.finish_reason];
    if (!r.reason.empty()) ++reasons[r.reason];
    generated.push_back(static_cast<std::int64_t>(r.tokens.size()));
    if (r.prompt_tokens > 0) prompt.push_back(r.prompt_tokens);
  }
  std::cout << "output:         " << output << " (" << format << ")\n";
  if (source != output) std::cout << "record:         " << source << " (the journal)\n";
  std::cout << "records:        " << records.size() << " (" << counts_text(status) << ")\n"
            << "finish reasons: " << counts_text(finish) << "\n";
  if (!reasons.empty()) std::cout << "not done:       " << counts_text(reasons) << "\n";
  std::cout << "generated:      " << size_stats(generated) << "\n";
  if (!prompt.empty()) std::cout << "prompt tokens:  " << size_stats(prompt) << "\n";
  if (torn_bytes > 0) {
    std::cout << "torn last line: " << torn_bytes << " bytes (dropped by --resume)\n";
  }
  const auto meta = io::read_meta(output);
  if (!meta) {
    std::cout << "fingerprint:    none (no " << io::meta_path(output) << ")\n"
              << "complete:       unknown (the number of requests is in the fingerprint)\n";
    return 0;
  }
  const nlohmann::json& m = *meta;
  // A field of the sidecar, "?" when absent or not a string (inspect describes, never refuses).
  auto field = [&](const char* part, const char* key) -> std::string {
    if (!m.is_object() || !m.contains(part) || !m[part].is_object()) return "?";
    const auto& v = m[part];
    return v.contains(key) && v[key].is_string() ? v[key].get<std::string>() : "?";
  };
  const std::int64_t requests =
      m.is_object() && m.contains("requests") && m["requests"].is_number_integer()
          ? m["requests"].get<std::int64_t>()
          : -1;
  std::cout << "fingerprint:    " << io::meta_path(output) << "\n"
            << "  model:        " << field("model", "path") << " (identity "
            << field("model", "identity") << ")\n"
            << "  input:        " << field("input", "path") << " (hash " << field("input", "hash")
            << ")\n"
            << "  options:      "
            << (m.is_object() && m.contains("options") ? m["options"].dump() : "?") << "\n"
            << "complete:       ";
  if (requests < 0) {
    std::cout << "unknown (no request count in the fingerprint)\n";
  } else if (static_cast<std::int64_t>(records.size()) >= requests) {
    std::cout << "yes (" << records.size() << "/" << requests << " requests)\n";
  } else {
    std::cout << "no (" << records.size() << "/" << requests
              << " requests; `infllm generate --resume` finishes it)\n";
  }
  return 0;
}

int inspect_hdf5_output(const std::string& path) {
  const std::string journal = path + ".journal";
  std::error_code ec;
  if (fs::exists(journal, ec)) {
    // The journal is the record; the HDF5 file is built from it and may lag behind.
    const io::ResultLog log = io::read_result_log(journal, /*truncate_torn=*/false);
    bool built = false;
    if (fs::exists(path, ec)) {
      try {
        built = io::read_hdf5_results(path).size() == log.records.size();
      } catch (const InputError&) {
        built = false;
      }
    }
    describe_output(path, journal, "HDF5", log.records, log.torn_bytes);
    std::cout << "HDF5 file:      "
              << (built ? "complete, holds every journal record"
                        : "missing, incomplete or behind its journal (rebuilt at the end of "
                          "the next run or --resume)")
              << "\n";
    return 0;
  }
  return describe_output(path, path, "HDF5", io::read_hdf5_results(path), 0);
}

bool jsonl_is_output(const std::string& path) {
  if (io::read_meta(path)) return true;  // the fingerprint sidecar of an output
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "cannot open");
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      return j.is_object() && j.contains("status");
    } catch (const nlohmann::json::exception&) {
      return false;  // read_documents names the line and the problem
    }
  }
  return false;
}

// Inputs and outputs of `infllm generate`.
int inspect_data(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".journal") {
    const std::string output = path.substr(0, path.size() - ext.size());
    return inspect_hdf5_output(output);
  }
  const io::FileFormat format = io::format_from_path(path);
  std::error_code ec;
  if (format == io::FileFormat::kHdf5) {
    // A killed run leaves only the journal: the HDF5 file is built at the end.
    if (!fs::exists(path, ec) && fs::exists(path + ".journal", ec)) {
      return inspect_hdf5_output(path);
    }
    if (!fs::exists(path, ec)) throw InputError(path, "", "no such file or directory");
    if (io::hdf5_has_link(path, "/results")) return inspect_hdf5_output(path);
    if (io::hdf5_has_link(path, "/documents")) return inspect_input(path, "HDF5");
    throw InputError(path, "", "neither an input (/documents) nor an output (/results)");
  }
  if (!fs::exists(path, ec)) throw InputError(path, "", "no such file or directory");
  if (!jsonl_is_output(path)) return inspect_input(path, "JSONL");
  const io::ResultLog log = io::read_result_log(path, /*truncate_torn=*/false);
  return describe_output(path, path, "JSONL", log.records, log.torn_bytes);
}

}  // namespace

int run_inspect(const InspectConfig& config) {
  std::error_code ec;
  const std::string given_ext = fs::path(config.path).extension().string();
  const bool data = given_ext == ".jsonl" || given_ext == ".h5" || given_ext == ".hdf5" ||
                    given_ext == ".journal";
  // A repository id (ORG/NAME[@REV]) is the snapshot in the Hugging Face cache.
  const std::string path = data ? config.path : model::resolve_model_path(config.path);
  if (fs::is_directory(path, ec)) return inspect_hf(path);
  const std::string ext = fs::path(path).extension().string();
  const bool journal_only = (ext == ".h5" || ext == ".hdf5") && fs::exists(path + ".journal", ec);
  if (!fs::exists(path, ec) && !journal_only) {
    throw InputError(path, "", "no such file or directory");
  }
  if (ext == ".gguf") return inspect_gguf(path);
  if (ext == ".jsonl" || ext == ".h5" || ext == ".hdf5" || ext == ".journal") {
    return inspect_data(path);
  }
  throw InputError(path, "",
                   "inspect describes model directories, .gguf files, and .jsonl/.h5/.hdf5 "
                   "inputs and outputs");
}

}  // namespace infllm::app
