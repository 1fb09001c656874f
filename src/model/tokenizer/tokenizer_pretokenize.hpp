// tokenizer_pretokenize.hpp: the regex splits that byte-level BPE runs before its merges.
//
// Byte-level BPE never merges across pre-token boundaries, so the split decides as much of the
// result as the merges do. The three splits used by the model families infllm loads are written
// out as small hand-made scanners, one alternative of the regex per branch, instead of linking
// a regex engine (docs/building.md: Debian packages only, no PCRE/ICU):
//
//   kGpt2    GPT-2's pattern (HF ByteLevel pre-tokenizer with use_regex; GGUF pre "gpt2"):
//            's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kSmolLm  every \p{N} character split off alone first (HF Digits with individual_digits),
//            then kGpt2 inside the rest (SmolLM2, StarCoder; GGUF pre "smollm", "starcoder")
//   kLlama3  Llama-3's pattern (HF Split with this regex; GGUF pre "llama-bpe"):
//            (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2   kLlama3 with \p{N} instead of \p{N}{1,3}: one digit per piece (GGUF pre "qwen2")
//
// Invalid UTF-8 bytes count as one character each of none of the classes (like punctuation).
#pragma once

#include <string_view>
#include <vector>

namespace infllm::model {

enum class PreTokenizerKind { kGpt2, kSmolLm, kLlama3, kQwen2 };

// The regex of kGpt2, kLlama3 and kQwen2 exactly as tokenizer.json files write them in a Split
// pre-tokenizer, so that the loader can recognise them.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string_view pre_tokenizer_name(PreTokenizerKind kind);

// Appends the pieces of `text` to `pieces`, in order; they are non-empty views into `text` and
// concatenate to it.
void pre_tokenize(PreTokenizerKind kind, std::string_view text,
                  std::vector<std::string_view>& pieces);

}  // namespace infllm::model
