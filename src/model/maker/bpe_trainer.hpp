// bpe_trainer.hpp: a small deterministic byte-level BPE trainer, for the tokenizer.json of the
// models that `infllm make-model` generates.
//
// Generated models need a real tokenizer (tests feed them text), but no download: this trains
// one from a corpus in well under a second. The result is a Hugging Face tokenizer.json that the
// Python `tokenizers` package and infllm's Tokenizer load and encode identically
// (tests/model/bpe_trainer_test.cpp; scripts/golden/make_tokenizer_golden.py checks the Python
// side against the committed tests/data/tokenizer/trained_*.json).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace infllm::model {

struct BpeTrainerOptions {
  // Size of the whole vocabulary: the special tokens, the 256 byte tokens and the merges.
  std::int32_t vocab_size = 512;
  // Added tokens, given ids 0, 1, ... in this order; never merged, matched whole in text.
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
};

// Trains byte-level BPE on `corpus` and returns a tokenizer.json (GPT-2 style: ByteLevel
// pre-tokenizer with the GPT-2 regex and no prefix space, BPE model, ByteLevel decoder, the
// special tokens as added tokens, no BOS added).
//
// Ids: special tokens 0..k-1, byte b at k + b, then one id per merge in the order learned.
// Each step merges the adjacent pair that occurs most often across the pre-tokenized corpus
// (ties: the smaller (left id, right id)), so the result depends on the corpus and options only.
// Special tokens in the corpus are cut out before counting.
//
// Throws UsageError("vocab-size") when vocab_size < k + 256, and InputError("corpus") when the
// corpus runs out of pairs to merge before vocab_size tokens exist (use a longer corpus, e.g.
// default_bpe_corpus()).
nlohmann::json train_byte_level_bpe(std::string_view corpus, const BpeTrainerOptions& options = {});

// A few KB of public-domain English prose (Jane Austen), enough for a 512-token vocabulary.
std::string_view default_bpe_corpus();

}  // namespace infllm::model
