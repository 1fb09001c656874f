// tokenizer_sentencepiece_test.cpp: SentencePiece-style BPE (Llama-2, Mistral, TinyLlama) against
// the libraries that define it: a BPE model trained by `sentencepiece` on Jane Austen with
// Llama-2's settings, its tokenizer.json in the legacy form those models publish (Prepend +
// Replace normalizer) and in the Metaspace form, both built and run by `tokenizers`, and the
// same vocabulary as a GGUF (tokenizer.ggml.model "llama", scores and token types) checked
// against `sentencepiece` itself (tests/data/tokenizer/spm_*, made by
// scripts/golden/make_sentencepiece_golden.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.hpp"
#include "model/formats/gguf.hpp"
#include "model/formats/weights.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

const std::string kDataDir = std::string(INFLLM_SOURCE_DIR) + "/tests/data/tokenizer/";

const json& golden() {
  static const json g = [] {
    std::ifstream in(kDataDir + "spm_golden.json");
    return json::parse(in);
  }();
  return g;
}

Tokenizer from_gguf_file() {
  const GgufFile g(kDataDir + "spm_austen.gguf");
  return Tokenizer::from_gguf(read_gguf_tokenizer(g), g.path());
}

// Every sample: the ids of `key` in the golden, and tokenizers' decoding of them.
void expect_matches(const Tokenizer& tok, const std::string& key) {
  ASSERT_GE(golden().at("cases").size(), 15u);
  for (const auto& c : golden().at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const std::string text = c.at("text").get<std::string>();
    const auto want = c.at(key).at("ids").get<std::vector<TokenId>>();
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids, want) << key << " sample " << name;
    EXPECT_EQ(tok.decode_text(want, false, true), c.at(key).at("decoded").get<std::string>())
        << key << " sample " << name;
  }
}

TEST(SentencePieceGolden, LegacyTokenizerJsonMatchesTokenizers) {
  const Tokenizer tok = Tokenizer::from_json_file(kDataDir + "spm_legacy_tokenizer.json");
  EXPECT_TRUE(tok.sentencepiece());
  expect_matches(tok, "legacy");
}

TEST(SentencePieceGolden, MetaspaceTokenizerJsonMatchesTokenizers) {
  const Tokenizer tok = Tokenizer::from_json_file(kDataDir + "spm_metaspace_tokenizer.json");
  expect_matches(tok, "metaspace");
}

// llama.cpp's reading of a SentencePiece GGUF: merges from the scores, a space before every
// segment. Against `sentencepiece` itself where the text has no <s> / </s> (SentencePiece
// reads those as text), and against the legacy tokenizer.json everywhere.
TEST(SentencePieceGolden, GgufMatchesSentencePieceAndTheLegacyForm) {
  const Tokenizer tok = from_gguf_file();
  EXPECT_EQ(tok.vocab_size(), golden().at("vocab_size").get<int>());
  int against_sentencepiece = 0;
  for (const auto& c : golden().at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const auto ids = tok.encode(c.at("text").get<std::string>());
    if (c.contains("sentencepiece")) {
      EXPECT_EQ(ids, c.at("sentencepiece").get<std::vector<TokenId>>()) << name;
      ++against_sentencepiece;
    }
    EXPECT_EQ(ids, c.at("legacy").at("ids").get<std::vector<TokenId>>()) << name;
    EXPECT_EQ(tok.decode_text(ids, false, true), c.at("legacy").at("decoded").get<std::string>())
        << name;
  }
  EXPECT_GE(against_sentencepiece, 14);
}

TEST(SentencePiece, ByteFallbackAndSpacesDecodeExactly) {
  const Tokenizer tok = from_gguf_file();
  const std::string text = "Emma \xF0\x9F\x98\x80 said:\n\tno";
  const auto ids = tok.encode(text, EncodeOptions{false, true});
  // The prepended space is there in the bytes, and stripped on request.
  EXPECT_EQ(tok.decode(ids), " " + text);
  EXPECT_EQ(tok.decode(ids, false, true), text);
  // The emoji is not in the vocabulary: its four bytes are <0xF0> <0x9F> <0x98> <0x80>.
  int byte_tokens = 0;
  for (TokenId id : ids) byte_tokens += tok.token_text(id).starts_with("<0x");
  EXPECT_GE(byte_tokens, 4 + 2);  // and \n, \t
}

json legacy_json() {
  std::ifstream in(kDataDir + "spm_legacy_tokenizer.json");
  return json::parse(in);
}

std::string json_error(const json& j) {
  try {
    Tokenizer::from_json(j, "tokenizer.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(SentencePieceErrors, UnsupportedNormalizersAndPreTokenizersAreNamed) {
  json j = legacy_json();
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_NE(json_error(j).find("normalizer: unsupported normalizer"), std::string::npos);
  j = legacy_json();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(json_error(j).find("pre_tokenizer"), std::string::npos);
  j = legacy_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "sometimes"}};
  EXPECT_NE(json_error(j).find("prepend_scheme"), std::string::npos);
  j = legacy_json();
  j["model"]["type"] = "Unigram";
  EXPECT_NE(json_error(j).find("model.type"), std::string::npos);
}

TEST(SentencePieceErrors, GgufScoresMustMatchTheTokens) {
  const GgufFile g(kDataDir + "spm_austen.gguf");
  GgufTokenizerData data = read_gguf_tokenizer(g);
  data.scores.pop_back();
  try {
    Tokenizer::from_gguf(data, "x.gguf");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.scores"), std::string::npos);
  }
}

}  // namespace
}  // namespace infllm::model
