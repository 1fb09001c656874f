// tokenizer.hpp: byte-level BPE (GPT-2, Llama-3, SmolLM2, Qwen2) and SentencePiece-style BPE
// (Llama-2, Mistral, TinyLlama), loaded from a Hugging Face tokenizer.json or from GGUF
// metadata; encode and decode.
//
// Encoding, in the order the Hugging Face `tokenizers` package applies it:
//   1. added tokens (<|im_start|>, <|endoftext|>, ...) are cut out of the text first, leftmost
//      and longest match wins; they become their ids directly;
//   2. each remaining segment is split by the pre-tokenizer regex (tokenizer_pretokenize.hpp);
//   3. each piece's bytes start as one symbol per byte (the vocabulary writes byte b as the
//      character byte_to_unicode(b), unicode.hpp), and adjacent symbols are merged, the pair
//      with the lowest merge rank first (leftmost on ties), until no pair has a merge; a byte
//      the vocabulary has no token for becomes the unknown token, or is dropped without one;
//   4. the post-processor's prefix and suffix ids (a BOS) are added when asked.
// Added tokens' lstrip / rstrip are honoured; single_word and normalized are not (no byte-level
// model infllm loads sets them, and byte-level models have no normalizer).
// A piece's ids depend on its bytes only, so each encode() call caches them per distinct piece:
// long prose repeats its words, and the cache makes encoding a novel take a fraction of a second.
//
// SentencePiece-style BPE differs in steps 2-3: no regex; each segment's spaces become "▁"
// (U+2581) and a "▁" is prepended where the file says (every segment: the legacy Prepend
// normalizer and llama.cpp's add_space_prefix; the first: Metaspace "first"), the segment is one
// piece (or split before each "▁": Metaspace split), symbols start as one per character, and a
// character with no token becomes the <0xXX> tokens of its UTF-8 bytes (byte fallback), else
// the unknown token (consecutive unknowns fused). Merges rank by the merged piece's score when
// they come from GGUF scores (tokenizer.ggml.model "llama"), as transformers' converter ranks
// them. A token's bytes are its text with "▁" as a space; <0xXX> tokens are their byte.
//
// Decoding concatenates the tokens' bytes. Byte tokens may split a UTF-8 character across
// tokens; decode() returns the exact bytes (joining the halves back), decode_text() repairs
// what is still invalid (a generation cut in mid-character) with U+FFFD, as `tokenizers` does.
//
// A Tokenizer is immutable after loading and safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/tokenizer/tokenizer_pretokenize.hpp"

namespace infllm::model {

using TokenId = std::int32_t;

// The tokenizer as a GGUF file carries it (tokenizer.ggml.*), raw, for the tokenizer to build
// from. Absent keys are empty / nullopt. The GGUF reader (weights.hpp: read_gguf_tokenizer)
// fills it.
struct GgufTokenizerData {
  std::string model;                     // tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama"
  std::string pre;                       // tokenizer.ggml.pre: pre-tokenizer name, e.g. "smollm"
  std::vector<std::string> tokens;       // tokenizer.ggml.tokens, id order
  std::vector<std::string> merges;       // tokenizer.ggml.merges, "a b", rank order
  std::vector<std::int64_t> token_type;  // tokenizer.ggml.token_type (1 normal, 3 control, ...)
  std::vector<double> scores;            // tokenizer.ggml.scores (SentencePiece models)
  std::optional<std::int64_t> bos_id, eos_id, unknown_id, padding_id, eot_id;
  std::optional<bool> add_bos_token, add_eos_token, add_space_prefix;
  std::string chat_template;  // tokenizer.chat_template, "" when absent
};

struct EncodeOptions {
  // Add the post-processor's special tokens (a BOS for Llama-3 and for GGUF add_bos_token).
  // Text rendered by a chat template already carries them: encode it with false.
  bool add_special = true;
  // Match added tokens (<|im_end|>) written in the text; false encodes them as plain text.
  bool parse_special = true;
};

class Tokenizer {
 public:
  // `source` names the file in error messages. Bad or unsupported content throws InputError.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const std::string& source);
  static Tokenizer from_json_file(const std::filesystem::path& path);
  static Tokenizer from_gguf(const GgufTokenizerData& data, const std::string& source);
  // True when a tokenizer.json describes SentencePiece-style BPE (byte fallback, a normalizer,
  // or a Metaspace pre-tokenizer), as from_json reads it.
  static bool json_is_sentencepiece(const nlohmann::json& tokenizer_json);

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;

  // The exact bytes of the tokens, concatenated. `skip_special` leaves out special added tokens.
  // An id outside the vocabulary throws InputError.
  // `strip_prefix_space` removes one leading space where encoding prepends one (the Strip /
  // Metaspace decoders of `tokenizers`, for a text decoded from its start); generated
  // continuations keep it, so that prompt + output is the document.
  std::string decode(std::span<const TokenId> ids, bool skip_special = false,
                     bool strip_prefix_space = false) const;
  // decode() made valid UTF-8 (each maximal invalid subpart becomes U+FFFD).
  std::string decode_text(std::span<const TokenId> ids, bool skip_special = false,
                          bool strip_prefix_space = false) const;
  // True for SentencePiece-style BPE.
  bool sentencepiece() const { return sentencepiece_; }

  // Number of ids (the largest id + 1), including added tokens.
  std::int32_t vocab_size() const { return static_cast<std::int32_t>(token_bytes_.size()); }
  // The raw bytes one token stands for.
  const std::string& token_bytes(TokenId id) const;
  // The token's text as the vocabulary file writes it ("Ġthe", "<|im_end|>").
  const std::string& token_text(TokenId id) const;
  // The id of a vocabulary text, if present.
  std::optional<TokenId> find_token(std::string_view text) const;
  bool is_special(TokenId id) const;

  std::optional<TokenId> bos_id() const { return bos_id_; }
  std::optional<TokenId> eos_id() const { return eos_id_; }
  // The model's config may name them where the tokenizer file does not (config.json's
  // bos_token_id / eos_token_id). An id outside the vocabulary throws InputError.
  void set_bos_id(std::optional<TokenId> id);
  void set_eos_id(std::optional<TokenId> id);
  // Ids encode() adds before / after the text when options.add_special.
  const std::vector<TokenId>& prefix_ids() const { return prefix_ids_; }
  const std::vector<TokenId>& suffix_ids() const { return suffix_ids_; }
  PreTokenizerKind pre_tokenizer() const { return pre_; }

  // Everything a loader extracts from a file, before the tables are built. Public so that both
  // loaders (tokenizer_load.cpp) can fill it; users call the factories above.
  struct Spec {
    struct Added {
      TokenId id = 0;
      std::string content;
      bool special = false;
      bool lstrip = false;
      bool rstrip = false;
    };
    std::vector<std::string> vocab;  // id -> text; "" for an id that only an added token has
    std::vector<std::pair<std::string, std::string>> merges;  // by rank
    std::vector<Added> added;
    PreTokenizerKind pre = PreTokenizerKind::kGpt2;
    bool add_prefix_space = false;
    bool ignore_merges = false;  // a piece that is itself a token skips the merges (Llama-3)
    std::optional<TokenId> unknown_id;
    std::vector<TokenId> prefix_ids, suffix_ids;
    std::optional<TokenId> bos_id, eos_id;
    // SentencePiece-style BPE (see the top of this file).
    bool sentencepiece = false;
    enum class Prefix {
      kNone,
      kEverySegment,          // every non-empty segment (legacy Prepend, llama.cpp)
      kEveryUnlessMetaspace,  // Metaspace "always": unless it already starts with "▁"
      kFirstUnlessMetaspace,  // Metaspace "first": the segment at the text's start only
    };
    Prefix prefix = Prefix::kNone;
    bool split_on_metaspace = false;  // Metaspace split: a piece starts at each "▁"
    bool byte_fallback = false;
    bool fuse_unk = false;
    bool strip_prefix_space = false;  // the decoder removes the prepended space
  };
  Tokenizer(const Spec& spec, std::string source);

 private:
  struct Merge {
    std::int32_t rank;
    TokenId result;
  };
  struct Added {
    std::string content;
    TokenId id;
    bool lstrip;
    bool rstrip;
  };
  static std::uint64_t pair_key(TokenId a, TokenId b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  void check_id(TokenId id, const char* what) const;
  void encode_segment(std::string_view segment, bool at_start, std::vector<TokenId>& out,
                      std::unordered_map<std::string_view, std::vector<TokenId>>& cache) const;
  void encode_metaspace_segment(std::string_view segment, bool at_start,
                                std::vector<TokenId>& out) const;
  void encode_piece(std::string_view piece, std::vector<TokenId>& out) const;
  // The initial symbols of a SentencePiece piece: one per character, or its byte tokens.
  void character_symbols(std::string_view piece, std::vector<TokenId>& ids) const;

  std::string source_;
  std::vector<std::string> token_text_;   // (vocab)
  std::vector<std::string> token_bytes_;  // (vocab)
  std::vector<bool> special_;             // (vocab)
  std::unordered_map<std::string, TokenId> id_by_text_;
  std::unordered_map<std::string, TokenId> id_by_bytes_;  // model vocabulary, not added tokens
  std::array<TokenId, 256> byte_id_{};                    // -1: the byte has no token
  std::unordered_map<std::uint64_t, Merge> merges_;       // pair_key(left, right) -> merge
  std::vector<Added> added_;
  std::array<std::vector<std::uint32_t>, 256> added_by_first_byte_;  // longest first
  PreTokenizerKind pre_ = PreTokenizerKind::kGpt2;
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  std::optional<TokenId> unknown_id_;
  std::vector<TokenId> prefix_ids_, suffix_ids_;
  std::optional<TokenId> bos_id_, eos_id_;
  bool sentencepiece_ = false;
  Spec::Prefix prefix_ = Spec::Prefix::kNone;
  bool split_on_metaspace_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool strip_prefix_space_ = false;
};

}  // namespace infllm::model
