// unicode.hpp: the little Unicode the byte-level BPE tokenizer needs, without ICU or PCRE.
//
// The pre-tokenizer regexes of GPT-2, SmolLM2 and Llama-3 use three classes: \p{L} (letters),
// \p{N} (numbers) and \s (White_Space). Letters and numbers come from a generated table of code
// point ranges (unicode_tables.cpp, made by scripts/golden/make_tokenizer_golden.py from Python's
// unicodedata); White_Space is short and fixed, so it is written out here. Also: strict UTF-8
// decoding (invalid bytes are reported, never guessed at), the GPT-2 byte <-> unicode mapping
// that byte-level BPE vocabularies are written in, and lossy repair of invalid UTF-8 the way
// Rust's String::from_utf8_lossy does it (one U+FFFD per maximal invalid subpart).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace infllm::model {

// One decoded UTF-8 sequence. `length` is in bytes (1..4). When `valid` is false, the bytes at
// the position do not start a well-formed sequence; `length` is then the maximal subpart of a
// well-formed sequence that they start (at least 1), and `code_point` is U+FFFD.
struct Utf8Char {
  char32_t code_point = 0;
  std::uint8_t length = 0;
  bool valid = false;
};

// Decodes the sequence starting at text[pos] (pos < text.size()). Rejects overlong forms,
// surrogates and code points above U+10FFFF.
Utf8Char decode_utf8(std::string_view text, std::size_t pos);

// Appends the UTF-8 encoding of `cp` (cp <= 0x10FFFF, not a surrogate).
void append_utf8(std::string& out, char32_t cp);

// `text` with every maximal invalid subpart replaced by U+FFFD; valid text is returned as is.
std::string to_valid_utf8(std::string_view text);

// The length of `bytes` less a trailing incomplete UTF-8 sequence (one that more bytes could
// still complete). For streaming decoded tokens: emit the prefix now, keep the rest for the next
// token, whose bytes may finish the character.
std::size_t complete_utf8_prefix(std::string_view bytes);

// General category L* (Lu, Ll, Lt, Lm, Lo).
bool is_letter(char32_t cp);
// General category N* (Nd, Nl, No). This is also Rust's char::is_numeric, which the Hugging
// Face Digits pre-tokenizer uses.
bool is_number(char32_t cp);
// The White_Space property (what \s matches in a Unicode regex).
bool is_whitespace(char32_t cp);

// GPT-2's byte-level alphabet: every byte maps to a printable code point (printable Latin-1
// bytes to themselves, the others to U+0100 upwards in order), so that any byte string is a
// string of visible characters. byte_to_unicode(' ') is U+0120 'Ġ'.
char32_t byte_to_unicode(std::uint8_t byte);
// The inverse: the byte of a code point of the alphabet, or -1 when `cp` is not in it.
int unicode_to_byte(char32_t cp);

namespace unicode_detail {
struct CodePointRange {
  char32_t first;
  char32_t last;
};
extern const CodePointRange kLetterRanges[];
extern const std::size_t kLetterRangesSize;
extern const CodePointRange kNumberRanges[];
extern const std::size_t kNumberRangesSize;
}  // namespace unicode_detail

}  // namespace infllm::model
