// tokenizer_load.cpp: reading a Hugging Face tokenizer.json or GGUF tokenizer metadata into a
// Tokenizer::Spec (see tokenizer.hpp).
//
// Only what byte-level and SentencePiece-style BPE models use is accepted; anything else (a
// WordPiece or Unigram model, another normalizer, an unknown pre-tokenizer regex) is an
// InputError naming the field, because tokenizing silently differently from the model's training
// would be worse than refusing.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "core/errors.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace infllm::model {

namespace {

using nlohmann::json;

// The largest token id a tokenizer may use: far above any real vocabulary (about 256K), and it
// bounds the vocabulary table an id sizes. nlohmann's get<int>() converts a float, or an integer
// too large, without a check (a float out of range is undefined behaviour), so ids go through
// here.
constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 24) - 1;

TokenId token_id(const json& v, const std::string& source, const std::string& where) {
  if (!v.is_number_integer()) {
    throw InputError(source, where, "token id " + v.dump() + " is not an integer");
  }
  if (v.is_number_unsigned() ? v.get<std::uint64_t>() > std::uint64_t(kMaxTokenId)
                             : (v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > kMaxTokenId)) {
    throw InputError(source, where,
                     "token id " + v.dump() + " outside [0, " + std::to_string(kMaxTokenId) + "]");
  }
  return static_cast<TokenId>(v.get<std::int64_t>());
}

std::string type_of(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

bool flag(const json& j, const char* key, bool fallback) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return j[key].get<bool>();
}

// The split of the tokenizer.json "pre_tokenizer", recognised by its structure.
struct PreTokenizerChoice {
  PreTokenizerKind kind = PreTokenizerKind::kGpt2;
  bool add_prefix_space = false;
};

PreTokenizerChoice parse_pre_tokenizer(const json& pre, const std::string& source) {
  auto unsupported = [&]() {
    return InputError(source, "pre_tokenizer",
                      "unsupported pre-tokenizer " + pre.dump().substr(0, 300) +
                          " (supported: ByteLevel, Digits + ByteLevel, Split with the GPT-2, "
                          "Llama-3 or Qwen2 regex + ByteLevel)");
  };
  std::vector<json> steps;
  if (type_of(pre) == "Sequence") {
    for (const auto& step : pre.at("pretokenizers")) steps.push_back(step);
  } else {
    steps.push_back(pre);
  }
  PreTokenizerChoice choice;
  if (steps.empty() || type_of(steps.back()) != "ByteLevel") throw unsupported();
  const json& byte_level = steps.back();
  choice.add_prefix_space = flag(byte_level, "add_prefix_space", false);
  const bool uses_regex = flag(byte_level, "use_regex", true);
  if (steps.size() == 1 && uses_regex) {
    choice.kind = PreTokenizerKind::kGpt2;
    return choice;
  }
  if (steps.size() != 2) throw unsupported();
  const json& first = steps.front();
  if (type_of(first) == "Digits" && flag(first, "individual_digits", false) && uses_regex) {
    choice.kind = PreTokenizerKind::kSmolLm;
    return choice;
  }
  if (type_of(first) == "Split" && !uses_regex && first.contains("pattern") &&
      first["pattern"].contains("Regex") &&
      first.value("behavior", std::string("Isolated")) == "Isolated" &&
      !flag(first, "invert", false)) {
    const std::string pattern = first["pattern"]["Regex"].get<std::string>();
    if (pattern == kGpt2Pattern) {
      choice.kind = PreTokenizerKind::kGpt2;
      return choice;
    }
    if (pattern == kLlama3Pattern) {
      choice.kind = PreTokenizerKind::kLlama3;
      return choice;
    }
    if (pattern == kQwen2Pattern) {
      choice.kind = PreTokenizerKind::kQwen2;
      return choice;
    }
  }
  throw unsupported();
}

// Prefix and suffix special tokens of a TemplateProcessing post-processor's single template.
void parse_post_processor(const json& post, Tokenizer::Spec& spec, const std::string& source) {
  const std::string type = type_of(post);
  if (post.is_null() || type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const auto& step : post.at("processors")) parse_post_processor(step, spec, source);
    return;
  }
  if (type != "TemplateProcessing") {
    throw InputError(source, "post_processor", "unsupported post-processor type '" + type + "'");
  }
  bool after_sequence = false;
  for (const auto& piece : post.at("single")) {
    if (piece.contains("Sequence")) {
      after_sequence = true;
      continue;
    }
    const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
    const json& special = post.at("special_tokens").at(name);
    for (const auto& id : special.at("ids")) {
      (after_sequence ? spec.suffix_ids : spec.prefix_ids)
          .push_back(token_id(id, source, "post_processor"));
    }
  }
  if (spec.prefix_ids.size() == 1) spec.bos_id = spec.prefix_ids[0];
}

// The legacy merge form "left right". Byte-level texts never contain a plain space.
std::pair<std::string, std::string> split_merge(const std::string& s, std::size_t i,
                                                const std::string& source) {
  const auto space = s.find(' ');
  if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
    throw InputError(source, "merges[" + std::to_string(i) + "]",
                     "expected \"left right\", got \"" + s + "\"");
  }
  return {s.substr(0, space), s.substr(space + 1)};
}

void parse_merges(const json& merges, Tokenizer::Spec& spec, const std::string& source) {
  spec.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      spec.merges.push_back(split_merge(m.get<std::string>(), i, source));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw InputError(source, "model.merges[" + std::to_string(i) + "]",
                       "expected a string or a pair of strings");
    }
  }
}

// SentencePiece-style settings of a tokenizer.json: the normalizer (legacy Prepend("▁") +
// Replace(" ", "▁"), or Replace alone), or a Metaspace pre-tokenizer; and the decoder's Strip.
void parse_sentencepiece(const json& root, Tokenizer::Spec& spec, const std::string& source) {
  spec.sentencepiece = true;
  const json normalizer = root.value("normalizer", json());
  const json pre = root.value("pre_tokenizer", json());
  const std::string kMeta = "\u2581";
  auto is_replace_space = [&](const json& n) {
    return type_of(n) == "Replace" && n.contains("pattern") &&
           n["pattern"].value("String", std::string()) == " " && n.value("content", "") == kMeta;
  };
  if (!normalizer.is_null()) {
    std::vector<json> steps;
    if (type_of(normalizer) == "Sequence") {
      for (const auto& n : normalizer.at("normalizers")) steps.push_back(n);
    } else {
      steps.push_back(normalizer);
    }
    const bool prepend = steps.size() == 2 && type_of(steps[0]) == "Prepend" &&
                         steps[0].value("prepend", "") == kMeta;
    if (!(prepend || steps.size() == 1) || !is_replace_space(steps.back())) {
      throw InputError(source, "normalizer",
                       "unsupported normalizer " + normalizer.dump().substr(0, 300) +
                           " (supported: Prepend(\"\u2581\") and Replace(\" \", \"\u2581\"))");
    }
    spec.prefix = prepend ? Tokenizer::Spec::Prefix::kEverySegment : Tokenizer::Spec::Prefix::kNone;
    if (!pre.is_null()) {
      throw InputError(source, "pre_tokenizer",
                       "a pre-tokenizer after the SentencePiece normalizer is not supported");
    }
  } else {
    if (type_of(pre) != "Metaspace" || pre.value("replacement", "") != kMeta) {
      throw InputError(source, "pre_tokenizer",
                       "a byte-fallback BPE needs the SentencePiece normalizer or a Metaspace "
                       "pre-tokenizer, not " +
                           pre.dump().substr(0, 300));
    }
    const std::string scheme = pre.value("prepend_scheme", std::string("always"));
    if (scheme == "always") {
      spec.prefix = Tokenizer::Spec::Prefix::kEveryUnlessMetaspace;
    } else if (scheme == "first") {
      spec.prefix = Tokenizer::Spec::Prefix::kFirstUnlessMetaspace;
    } else if (scheme == "never") {
      spec.prefix = Tokenizer::Spec::Prefix::kNone;
    } else {
      throw InputError(source, "pre_tokenizer.prepend_scheme", "unknown scheme '" + scheme + "'");
    }
    spec.split_on_metaspace = flag(pre, "split", true);
  }
  // The decoder removes the prepended space: a Strip of one leading " ", or Metaspace's own.
  const json decoder = root.value("decoder", json());
  const std::string text = decoder.dump();
  spec.strip_prefix_space =
      spec.prefix != Tokenizer::Spec::Prefix::kNone &&
      (text.find("\"Strip\"") != std::string::npos || type_of(decoder) == "Metaspace");
}

Tokenizer::Spec spec_from_json(const json& root, const std::string& source) {
  if (!root.is_object() || !root.contains("model")) {
    throw InputError(source, "model", "no \"model\" object: not a tokenizer.json");
  }
  const json& model = root["model"];
  const std::string model_type = type_of(model);
  if (!(model_type == "BPE" || (model_type.empty() && model.contains("merges")))) {
    throw InputError(source, "model.type",
                     "unsupported tokenizer model '" + model_type + "' (only BPE)");
  }
  const bool sentencepiece = Tokenizer::json_is_sentencepiece(root);
  Tokenizer::Spec spec;
  if (sentencepiece) {
    parse_sentencepiece(root, spec, source);
    spec.byte_fallback = flag(model, "byte_fallback", false);
    spec.fuse_unk = flag(model, "fuse_unk", false);
  }
  const json& vocab = model.at("vocab");
  if (!vocab.is_object()) throw InputError(source, "model.vocab", "expected an object");
  for (const auto& [text, id_json] : vocab.items()) {
    const TokenId id = token_id(id_json, source, "model.vocab, '" + text + "'");
    if (static_cast<std::size_t>(id) >= spec.vocab.size()) spec.vocab.resize(id + 1);
    if (!spec.vocab[id].empty()) {
      throw InputError(source, "model.vocab", "id " + std::to_string(id) + " used twice");
    }
    spec.vocab[id] = text;
  }
  parse_merges(model.at("merges"), spec, source);
  spec.ignore_merges = flag(model, "ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = vocab.find(model["unk_token"].get<std::string>());
    if (it != vocab.end()) spec.unknown_id = token_id(*it, source, "model.unk_token");
  }
  if (root.contains("added_tokens")) {
    for (const auto& a : root["added_tokens"]) {
      spec.added.push_back({token_id(a.at("id"), source, "added_tokens"),
                            a.at("content").get<std::string>(), flag(a, "special", false),
                            flag(a, "lstrip", false), flag(a, "rstrip", false)});
    }
  }
  if (!sentencepiece) {
    const json pre = root.value("pre_tokenizer", json());
    if (pre.is_null())
      throw InputError(source, "pre_tokenizer", "missing (byte-level BPE needs one)");
    const PreTokenizerChoice choice = parse_pre_tokenizer(pre, source);
    spec.pre = choice.kind;
    spec.add_prefix_space = choice.add_prefix_space;
  }
  parse_post_processor(root.value("post_processor", json()), spec, source);
  return spec;
}

PreTokenizerKind pre_from_gguf_name(const std::string& pre, const std::string& source) {
  // NOTE: a GGUF without the key predates it; its byte-level BPE is GPT-2's in practice.
  if (pre == "gpt2" || pre.empty()) return PreTokenizerKind::kGpt2;
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell") {
    return PreTokenizerKind::kSmolLm;
  }
  if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe") {
    return PreTokenizerKind::kLlama3;
  }
  if (pre == "qwen2") return PreTokenizerKind::kQwen2;
  throw InputError(
      source, "tokenizer.ggml.pre",
      "unsupported pre-tokenizer '" + pre +
          "' (supported: gpt2, smollm, starcoder, refact, codeshell, llama-bpe, qwen2)");
}

// llama.cpp's SentencePiece settings: a space prepended to every text segment unless
// add_space_prefix is false, byte fallback, and the decoder strips the prepended space.
void spec_from_gguf_sentencepiece(const GgufTokenizerData& data, Tokenizer::Spec& spec,
                                  const std::string& source) {
  if (data.scores.size() != data.tokens.size()) {
    throw InputError(source, "tokenizer.ggml.scores",
                     std::to_string(data.scores.size()) + " scores for " +
                         std::to_string(data.tokens.size()) + " tokens");
  }
  if (!data.merges.empty()) {
    throw InputError(source, "tokenizer.ggml.merges",
                     "a SentencePiece (llama) vocabulary ranks merges by score and has none");
  }
  spec.sentencepiece = true;
  spec.byte_fallback = true;
  spec.fuse_unk = true;
  const bool space = data.add_space_prefix.value_or(true);
  spec.prefix = space ? Tokenizer::Spec::Prefix::kEverySegment : Tokenizer::Spec::Prefix::kNone;
  spec.strip_prefix_space = space;
}

// BPE merges of a SentencePiece vocabulary: every split of a normal token (type 1) into two
// normal tokens, ranked by the merged token's score (highest first), then its id, then the
// left part, as transformers' converter derives them from a SentencePiece model.
std::vector<std::pair<std::string, std::string>> merges_from_scores(const GgufTokenizerData& data,
                                                                    const std::string& source) {
  const auto normal = [&](std::size_t id) {
    return data.token_type.empty() || data.token_type[id] == 1;
  };
  std::unordered_map<std::string_view, std::size_t> id_of;
  for (std::size_t id = 0; id < data.tokens.size(); ++id) {
    if (normal(id)) id_of.emplace(data.tokens[id], id);
  }
  struct Ranked {
    double score;
    std::size_t id;
    std::string_view left, right;
  };
  std::vector<Ranked> ranked;
  for (std::size_t id = 0; id < data.tokens.size(); ++id) {
    if (!normal(id)) continue;
    const std::string_view token = data.tokens[id];
    if (!std::isfinite(data.scores[id])) {
      throw InputError(source, "tokenizer.ggml.scores",
                       "score of token " + std::to_string(id) + " is not finite");
    }
    // Python slices by code point: cut only at UTF-8 character boundaries.
    for (std::size_t cut = 1; cut < token.size(); ++cut) {
      if ((static_cast<unsigned char>(token[cut]) & 0xC0) == 0x80) continue;
      const auto left = token.substr(0, cut), right = token.substr(cut);
      if (id_of.count(left) && id_of.count(right)) {
        ranked.push_back({data.scores[id], id, left, right});
      }
    }
  }
  std::sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.id != b.id) return a.id < b.id;
    return a.left < b.left;
  });
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(ranked.size());
  for (const auto& r : ranked) merges.emplace_back(r.left, r.right);
  return merges;
}

}  // namespace

bool Tokenizer::json_is_sentencepiece(const nlohmann::json& root) {
  if (!root.is_object()) return false;
  const json model = root.value("model", json::object());
  return flag(model, "byte_fallback", false) ||
         type_of(root.value("pre_tokenizer", json())) == "Metaspace" ||
         (root.contains("normalizer") && !root["normalizer"].is_null());
}

Tokenizer Tokenizer::from_json(const nlohmann::json& tokenizer_json, const std::string& source) {
  try {
    return Tokenizer(spec_from_json(tokenizer_json, source), source);
  } catch (const json::exception& e) {
    throw InputError(source, "", std::string("malformed tokenizer.json: ") + e.what());
  }
}

Tokenizer Tokenizer::from_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), "", "cannot open tokenizer file");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(path.string(), "", std::string("not valid JSON: ") + e.what());
  }
  return from_json(root, path.string());
}

Tokenizer Tokenizer::from_gguf(const GgufTokenizerData& data, const std::string& source) {
  if (data.model != "gpt2" && data.model != "llama") {
    throw InputError(source, "tokenizer.ggml.model",
                     "unsupported tokenizer model '" + data.model +
                         "' (gpt2: byte-level BPE; llama: SentencePiece-style BPE)");
  }
  if (data.tokens.empty()) throw InputError(source, "tokenizer.ggml.tokens", "empty");
  if (!data.token_type.empty() && data.token_type.size() != data.tokens.size()) {
    throw InputError(source, "tokenizer.ggml.token_type",
                     std::to_string(data.token_type.size()) + " entries for " +
                         std::to_string(data.tokens.size()) + " tokens");
  }
  const auto id_of = [&](const std::optional<std::int64_t>& id,
                         const char* key) -> std::optional<TokenId> {
    if (!id) return std::nullopt;
    if (*id < 0 || *id >= static_cast<std::int64_t>(data.tokens.size())) {
      throw InputError(source, key,
                       "id " + std::to_string(*id) + " outside the vocabulary of " +
                           std::to_string(data.tokens.size()) + " tokens");
    }
    return static_cast<TokenId>(*id);
  };
  Spec spec;
  if (data.model == "llama") {
    spec_from_gguf_sentencepiece(data, spec, source);
  } else {
    spec.pre = pre_from_gguf_name(data.pre, source);
    spec.add_prefix_space = data.add_space_prefix.value_or(false);
    // llama.cpp takes a piece that is itself a token whole for Llama-3 only (ignore_merges).
    spec.ignore_merges = spec.pre == PreTokenizerKind::kLlama3;
  }
  // Control (3) and user-defined (4) tokens are matched in the text before BPE, like the added
  // tokens of a tokenizer.json; the rest form the BPE vocabulary.
  spec.vocab.resize(data.tokens.size());
  for (std::size_t id = 0; id < data.tokens.size(); ++id) {
    const std::int64_t type = data.token_type.empty() ? 1 : data.token_type[id];
    if (type == 3 || type == 4) {
      spec.added.push_back({static_cast<TokenId>(id), data.tokens[id], type == 3, false, false});
    } else {
      spec.vocab[id] = data.tokens[id];
    }
  }
  if (data.model == "llama") {
    spec.merges = merges_from_scores(data, source);
  } else {
    spec.merges.reserve(data.merges.size());
    for (std::size_t i = 0; i < data.merges.size(); ++i) {
      spec.merges.push_back(split_merge(data.merges[i], i, source));
    }
  }
  spec.unknown_id = id_of(data.unknown_id, "tokenizer.ggml.unknown_token_id");
  spec.bos_id = id_of(data.bos_id, "tokenizer.ggml.bos_token_id");
  spec.eos_id = id_of(data.eos_id, "tokenizer.ggml.eos_token_id");
  if (data.add_bos_token.value_or(false)) {
    if (!spec.bos_id) throw InputError(source, "tokenizer.ggml.add_bos_token", "no bos token id");
    spec.prefix_ids.push_back(*spec.bos_id);
  }
  if (data.add_eos_token.value_or(false)) {
    if (!spec.eos_id) throw InputError(source, "tokenizer.ggml.add_eos_token", "no eos token id");
    spec.suffix_ids.push_back(*spec.eos_id);
  }
  return Tokenizer(spec, source);
}

}  // namespace infllm::model
