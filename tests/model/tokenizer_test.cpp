// tokenizer_test.cpp: the byte-level BPE tokenizer against golden ids from the Hugging Face
// `tokenizers` package (tests/data/tokenizer, made by scripts/golden/make_tokenizer_golden.py),
// plus the behaviours the golden data cannot show: byte-exact decoding, added-token options,
// post-processors and malformed files.
#include "model/tokenizer/tokenizer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

const std::string kDataDir = std::string(INFLLM_SOURCE_DIR) + "/tests/data/tokenizer/";

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Tokenizer& smollm2() {
  static const Tokenizer tok = Tokenizer::from_json_file(kDataDir + "smollm2_tokenizer.json");
  return tok;
}

std::uint64_t fnv1a64(const std::vector<TokenId>& ids) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (TokenId id : ids) {
    for (int k = 0; k < 4; ++k) {
      h = (h ^ ((static_cast<std::uint32_t>(id) >> (8 * k)) & 0xFF)) * 0x100000001B3ull;
    }
  }
  return h;
}

// A hand-written tokenizer.json: bytes a b c and space, merges "a b" then "ab c", one added
// token. `edit` changes it before loading.
json tiny_json() {
  return json::parse(R"({
    "added_tokens": [{"id": 7, "content": "<s>", "special": true, "lstrip": false,
                      "rstrip": false, "normalized": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5,
                                       "Ġa": 6, "<s>": 7},
              "merges": ["a b", ["ab", "c"], "Ġ a"]}
  })");
}

// --- golden: SmolLM2 ---------------------------------------------------------------------------

TEST(TokenizerGolden, Smollm2SamplesMatchHuggingFaceTokenizers) {
  const json golden = read_json(kDataDir + "smollm2_golden.json");
  ASSERT_GE(golden["cases"].size(), 8u);
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(smollm2().encode(text), c["ids"].get<std::vector<TokenId>>());
  }
}

TEST(TokenizerGolden, Smollm2DecodeRestoresEverySample) {
  const json golden = read_json(kDataDir + "smollm2_golden.json");
  for (const auto& c : golden["cases"]) {
    // Bytes the vocabulary lacks were encoded as the unknown token: not reversible.
    if (c["name"] == "missing_bytes") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    EXPECT_EQ(smollm2().decode(c["ids"].get<std::vector<TokenId>>()), c["text"].get<std::string>());
  }
}

TEST(TokenizerGolden, Smollm2FromGgufArraysMatchesTokenizerJson) {
  // The GGUF loader gets what a GGUF file carries: tokens by id, merges, token types.
  const json tj = read_json(kDataDir + "smollm2_tokenizer.json");
  GgufTokenizerData data;
  data.model = "gpt2";
  data.pre = "smollm";
  data.tokens.resize(tj["model"]["vocab"].size());
  for (const auto& [text, id] : tj["model"]["vocab"].items()) data.tokens[id.get<int>()] = text;
  data.token_type.assign(data.tokens.size(), 1);
  for (const auto& a : tj["added_tokens"]) data.token_type[a["id"].get<int>()] = 3;
  data.merges = tj["model"]["merges"].get<std::vector<std::string>>();
  data.bos_id = 1;
  data.eos_id = 2;
  data.unknown_id = 0;
  const Tokenizer gguf = Tokenizer::from_gguf(data, "smollm2.gguf");
  EXPECT_EQ(gguf.eos_id(), 2);
  EXPECT_TRUE(gguf.prefix_ids().empty());
  const json golden = read_json(kDataDir + "smollm2_golden.json");
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    EXPECT_EQ(gguf.encode(c["text"].get<std::string>()), c["ids"].get<std::vector<TokenId>>());
  }
}

TEST(TokenizerGolden, Smollm2LongTextMatchesHuggingFaceTokenizers) {
  const json long_text = read_json(kDataDir + "smollm2_golden.json")["long_text"];
  const std::string text = read_file(long_text["path"].get<std::string>());
  if (text.size() != long_text["bytes"].get<std::size_t>()) {
    GTEST_SKIP() << long_text["path"] << " is absent or another version";
  }
  const std::vector<TokenId> ids = smollm2().encode(text);
  EXPECT_EQ(ids.size(), long_text["count"].get<std::size_t>());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(ids)));
  EXPECT_EQ(hex, long_text["fnv1a64"].get<std::string>());
}

// Whole novels, when a developer points at them (make_tokenizer_golden.py golden --long-out
// DIR writes austen<i>.txt and austen<i>.ids): INFLLM_TOKENIZER_LONG_DIR=DIR. Prints MB/s.
TEST(TokenizerGolden, LongTextsFromEnvironmentMatch) {
  const char* dir = std::getenv("INFLLM_TOKENIZER_LONG_DIR");
  if (dir == nullptr) GTEST_SKIP() << "INFLLM_TOKENIZER_LONG_DIR not set";
  const Tokenizer& tok = smollm2();  // loaded before the clock starts
  for (int i = 0;; ++i) {
    const std::string base = std::string(dir) + "/austen" + std::to_string(i);
    const std::string text = read_file(base + ".txt");
    if (text.empty()) break;
    std::vector<TokenId> want;
    std::istringstream in(read_file(base + ".ids"));
    for (TokenId id; in >> id;) want.push_back(id);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<TokenId> ids = tok.encode(text);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << base << ": " << text.size() / 1e6 << " MB, " << ids.size() << " tokens, "
              << text.size() / 1e6 / s << " MB/s\n";
    EXPECT_EQ(ids, want) << base;
  }
}

// --- golden: pre-tokenizer splits ---------------------------------------------------------------

TEST(PreTokenizerGolden, SplitsMatchHuggingFaceRegexes) {
  const json golden = read_json(kDataDir + "pretokenize_golden.json");
  const std::map<std::string, PreTokenizerKind> kinds = {{"gpt2", PreTokenizerKind::kGpt2},
                                                         {"smollm", PreTokenizerKind::kSmolLm},
                                                         {"llama3", PreTokenizerKind::kLlama3},
                                                         {"qwen2", PreTokenizerKind::kQwen2}};
  ASSERT_GE(golden["splits"].size(), 36u);
  for (const auto& s : golden["splits"]) {
    const auto kind = s["kind"].get<std::string>();
    const auto name = s["name"].get<std::string>();
    SCOPED_TRACE(kind + " " + name);
    std::vector<std::string_view> pieces;
    const auto text = golden["texts"][name].get<std::string>();
    pre_tokenize(kinds.at(kind), text, pieces);
    EXPECT_EQ(std::vector<std::string>(pieces.begin(), pieces.end()),
              s["pieces"].get<std::vector<std::string>>());
  }
}

TEST(PreTokenizer, InvalidUtf8BytesArePunctuation) {
  std::vector<std::string_view> pieces;
  pre_tokenize(PreTokenizerKind::kGpt2,
               "ab \xFF\xFE"
               "cd",
               pieces);
  EXPECT_EQ(std::vector<std::string>(pieces.begin(), pieces.end()),
            (std::vector<std::string>{"ab", " \xFF\xFE", "cd"}));
}

// --- decoding ------------------------------------------------------------------------------------

TEST(TokenizerDecode, JoinsUtf8CharactersSplitAcrossByteTokens) {
  const std::string text = "\xF0\x9F\xA6\x9C\xE2\x80\x8D\xF0\x9F\x90\xA7";  // rare emoji + ZWJ
  const std::vector<TokenId> ids = smollm2().encode(text);
  ASSERT_GT(ids.size(), 2u);  // the characters are split into byte tokens
  std::string joined;
  for (TokenId id : ids) joined += smollm2().decode(std::vector<TokenId>{id});
  EXPECT_EQ(joined, text);
  EXPECT_EQ(smollm2().decode(ids), text);
}

TEST(TokenizerDecode, TextRepairsACharacterCutInHalf) {
  const std::vector<TokenId> ids = smollm2().encode("\xF0\x9F\xA6\x9C!");
  ASSERT_GT(ids.size(), 2u);
  const std::vector<TokenId> head(ids.begin(), ids.begin() + 1);
  EXPECT_NE(smollm2().decode(head), smollm2().decode_text(head));
  EXPECT_EQ(smollm2().decode_text(head).substr(0, 3), "\xEF\xBF\xBD");
}

TEST(TokenizerDecode, SkipSpecialDropsControlTokens) {
  const std::vector<TokenId> ids = smollm2().encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(smollm2().decode(ids, /*skip_special=*/true), "user\nhi");
}

TEST(TokenizerDecode, IdOutsideVocabularyIsInputError) {
  EXPECT_THROW(smollm2().decode(std::vector<TokenId>{49152}), InputError);
  EXPECT_THROW(smollm2().decode(std::vector<TokenId>{-1}), InputError);
}

// --- encoding options and formats ----------------------------------------------------------------

TEST(TokenizerEncode, ParseSpecialFalseEncodesMarkersAsText) {
  const std::vector<TokenId> plain =
      smollm2().encode("<|im_end|>", {.add_special = true, .parse_special = false});
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(smollm2().decode(plain), "<|im_end|>");
  EXPECT_EQ(smollm2().encode("<|im_end|>"), std::vector<TokenId>{2});
}

TEST(TokenizerEncode, MergesApplyByRank) {
  const Tokenizer tok = Tokenizer::from_json(tiny_json(), "tiny.json");
  EXPECT_EQ(tok.encode("abc"), (std::vector<TokenId>{5}));
  EXPECT_EQ(tok.encode("cab a"), (std::vector<TokenId>{2, 4, 6}));
  EXPECT_EQ(tok.encode("ab<s>c"), (std::vector<TokenId>{4, 7, 2}));
}

TEST(TokenizerEncode, TemplatePostProcessorAddsBos) {
  json j = tiny_json();
  j["post_processor"] = json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel"},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A"}}],
       "special_tokens": {"<s>": {"id": "<s>", "ids": [7], "tokens": ["<s>"]}}}]})");
  const Tokenizer tok = Tokenizer::from_json(j, "tiny.json");
  EXPECT_EQ(tok.bos_id(), 7);
  EXPECT_EQ(tok.encode("ab"), (std::vector<TokenId>{7, 4}));
  EXPECT_EQ(tok.encode("ab", {.add_special = false}), (std::vector<TokenId>{4}));
}

TEST(TokenizerEncode, IgnoreMergesTakesAWholeWordToken) {
  json j = tiny_json();
  j["model"]["vocab"]["ca"] = 8;
  j["model"]["merges"].push_back("c a");  // rank 3: after "a b", so BPE gives c|ab
  EXPECT_EQ(Tokenizer::from_json(j, "t.json").encode("cab"), (std::vector<TokenId>{2, 4}));
  j["model"]["vocab"]["cab"] = 9;
  j["model"]["merges"].push_back("ca b");
  EXPECT_EQ(Tokenizer::from_json(j, "t.json").encode("cab"), (std::vector<TokenId>{2, 4}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(Tokenizer::from_json(j, "t.json").encode("cab"), (std::vector<TokenId>{9}));
}

TEST(TokenizerEncode, LstripAndRstripAddedTokensSwallowSpaces) {
  json j = tiny_json();
  j["added_tokens"][0]["lstrip"] = true;
  j["added_tokens"][0]["rstrip"] = true;
  EXPECT_EQ(Tokenizer::from_json(j, "t.json").encode("ab  <s>  c"),
            (std::vector<TokenId>{4, 7, 2}));
}

TEST(TokenizerEncode, EmptyTextIsOnlyTheSpecialTokens) {
  EXPECT_TRUE(smollm2().encode("").empty());
}

// --- malformed files -------------------------------------------------------------------------

void expect_input_error(const json& j, const std::string& needle) {
  try {
    Tokenizer::from_json(j, "bad.json");
    ADD_FAILURE() << "no error; wanted one mentioning " << needle;
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "bad.json");
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, NonBpeModelIsRejected) {
  json j = tiny_json();
  j["model"]["type"] = "WordPiece";
  expect_input_error(j, "WordPiece");
}

TEST(TokenizerErrors, MergeOfUnknownTokenNamesTheMerge) {
  json j = tiny_json();
  j["model"]["merges"].push_back("x y");
  expect_input_error(j, "merges[3]");
}

TEST(TokenizerErrors, MalformedMergeIsRejected) {
  json j = tiny_json();
  j["model"]["merges"].push_back("abc");
  expect_input_error(j, "merges[3]");
}

TEST(TokenizerErrors, UnknownPreTokenizerRegexIsRejected) {
  json j = tiny_json();
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
  expect_input_error(j, "pre_tokenizer");
}

TEST(TokenizerErrors, NormalizerIsRejected) {
  json j = tiny_json();
  j["normalizer"] = {{"type", "NFC"}};
  expect_input_error(j, "NFC");
}

TEST(TokenizerErrors, WrongJsonTypeIsInputError) {
  json j = tiny_json();
  j["model"]["vocab"]["a"] = "zero";
  expect_input_error(j, "model.vocab, 'a': token id \"zero\" is not an integer");
}

// Found by fuzz_tokenizer_json: an added token's id 4e67 went through nlohmann's get<int>()
// (UBSan: a float out of range converted to int). Every id is a checked integer, and one far
// beyond any vocabulary is refused before it sizes the vocabulary table.
TEST(TokenizerErrors, TokenIdsThatAreNotSmallIntegersAreNamed) {
  json j = tiny_json();
  j["added_tokens"] = json::parse(R"([{"id": 4e67, "content": "<x>", "special": true}])");
  expect_input_error(j, "added_tokens: token id 4e+67 is not an integer");
  j = tiny_json();
  j["model"]["vocab"]["a"] = 2000000000;
  expect_input_error(j, "model.vocab, 'a': token id 2000000000 outside [0, 16777215]");
  j = tiny_json();
  j["model"]["vocab"]["a"] = -1;
  expect_input_error(j, "token id -1 outside");
}

TEST(TokenizerErrors, MissingAndInvalidFilesAreInputErrors) {
  EXPECT_THROW(Tokenizer::from_json_file(kDataDir + "no_such_tokenizer.json"), InputError);
  EXPECT_THROW(Tokenizer::from_json_file(kDataDir + "README.md"), InputError);
}

TEST(TokenizerErrors, UnsupportedGgufPreTokenizerIsNamed) {
  GgufTokenizerData data;
  data.model = "gpt2";
  data.pre = "deepseek-coder";
  data.tokens = {"a"};
  try {
    Tokenizer::from_gguf(data, "m.gguf");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("deepseek-coder"), std::string::npos);
  }
}

TEST(TokenizerErrors, GgufSentencePieceModelIsRejected) {
  GgufTokenizerData data;
  data.model = "llama";
  data.tokens = {"a"};
  EXPECT_THROW(Tokenizer::from_gguf(data, "m.gguf"), InputError);
}

}  // namespace
}  // namespace infllm::model
