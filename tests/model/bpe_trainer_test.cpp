// bpe_trainer_test.cpp: the BPE trainer writes a tokenizer.json that infllm's Tokenizer loads and
// that the Hugging Face `tokenizers` package encodes the same way (trained_golden.json holds
// the Python ids for tests/data/tokenizer/trained_tokenizer.json, which is this trainer's output
// for the default corpus and options).
#include "model/maker/bpe_trainer.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/errors.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

const std::string kDataDir = std::string(INFLLM_SOURCE_DIR) + "/tests/data/tokenizer/";

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

const json& default_trained() {
  static const json j = [] {
    json trained = train_byte_level_bpe(default_bpe_corpus());
    // To regenerate the committed copy: INFLLM_WRITE_TRAINED_TOKENIZER=path (README.md).
    if (const char* out = std::getenv("INFLLM_WRITE_TRAINED_TOKENIZER")) {
      std::ofstream(out) << trained.dump(1, ' ', false) << "\n";
    }
    return trained;
  }();
  return j;
}

TEST(BpeTrainer, VocabularyHasTheRequestedSize) {
  const json& j = default_trained();
  EXPECT_EQ(j["model"]["vocab"].size(), 512u);
  EXPECT_EQ(Tokenizer::from_json(j, "trained").vocab_size(), 512);
}

TEST(BpeTrainer, LayoutIsSpecialsThenBytesThenMerges) {
  const json& j = default_trained();
  EXPECT_EQ(j["model"]["vocab"]["<|endoftext|>"], 0);
  EXPECT_EQ(j["model"]["vocab"]["!"], 1 + '!');
  EXPECT_EQ(j["model"]["vocab"]["Ġ"], 1 + ' ');
  EXPECT_EQ(j["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
  EXPECT_EQ(j["model"]["merges"].size(), 512u - 257u);
}

TEST(BpeTrainer, SameInputGivesTheSameJson) {
  BpeTrainerOptions options;
  options.vocab_size = 300;
  const std::string_view corpus = default_bpe_corpus().substr(0, 1500);
  EXPECT_EQ(train_byte_level_bpe(corpus, options), train_byte_level_bpe(corpus, options));
}

TEST(BpeTrainer, MostFrequentPairIsMergedFirst) {
  BpeTrainerOptions options;
  options.vocab_size = 258;
  options.special_tokens = {};
  // Words "xy", " xy" twice, " ab" twice: "x y" occurs 3 times. Then " xy", " a" and "a b"
  // occur twice each, and the pair of smallest ids wins: (' ', 'a').
  const json j = train_byte_level_bpe("xy xy xy ab ab", options);
  ASSERT_EQ(j["model"]["merges"].size(), 2u);
  EXPECT_EQ(j["model"]["merges"][0], "x y");
  EXPECT_EQ(j["model"]["merges"][1], "Ġ a");
}

TEST(BpeTrainer, MatchesCommittedTrainedTokenizer) {
  EXPECT_EQ(default_trained(), read_json(kDataDir + "trained_tokenizer.json"));
}

TEST(BpeTrainer, CppEncodingMatchesHuggingFaceTokenizers) {
  const Tokenizer tok = Tokenizer::from_json(default_trained(), "trained");
  const json texts = read_json(kDataDir + "pretokenize_golden.json")["texts"];
  const json golden = read_json(kDataDir + "trained_golden.json");
  ASSERT_GE(golden["cases"].size(), 8u);
  for (const auto& c : golden["cases"]) {
    const auto name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    EXPECT_EQ(tok.encode(texts[name].get<std::string>()), c["ids"].get<std::vector<TokenId>>());
  }
}

TEST(BpeTrainer, RoundTripsTextOutsideTheCorpus) {
  const Tokenizer tok = Tokenizer::from_json(default_trained(), "trained");
  const std::string text = "Zürich 東京 🚀 <|endoftext|> 12345\n\tend";
  const std::vector<TokenId> ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 0), ids.end());  // the special token, whole
}

TEST(BpeTrainer, CompressesItsCorpus) {
  const Tokenizer tok = Tokenizer::from_json(default_trained(), "trained");
  const std::string_view corpus = default_bpe_corpus();
  EXPECT_LT(tok.encode(corpus).size(), corpus.size() / 2);
}

TEST(BpeTrainer, SpecialTokensInTheCorpusAreNotLearned) {
  BpeTrainerOptions options;
  options.vocab_size = 270;
  const json j = train_byte_level_bpe(
      "<|endoftext|><|endoftext|><|endoftext|>a bc def ghij klmno <|endoftext|>pqrstu", options);
  for (const auto& m : j["model"]["merges"]) {
    EXPECT_EQ(m.get<std::string>().find('|'), std::string::npos) << m;
  }
}

TEST(BpeTrainer, VocabBelowBytesAndSpecialsIsUsageError) {
  BpeTrainerOptions options;
  options.vocab_size = 256;
  EXPECT_THROW(train_byte_level_bpe("abc", options), UsageError);
}

TEST(BpeTrainer, CorpusTooShortIsInputError) {
  BpeTrainerOptions options;
  options.vocab_size = 400;
  EXPECT_THROW(train_byte_level_bpe("ab ab", options), InputError);
}

}  // namespace
}  // namespace infllm::model
