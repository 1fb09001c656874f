// tokenizer_pretokenize.cpp: the GPT-2, SmolLM2, Llama-3 and Qwen2 pre-tokenizer scanners (see the
// header for the regexes). Each scanner walks characters once; each branch below is one regex
// alternative, tried in the regex's order, so the leftmost-first semantics of the regex engine
// (Oniguruma in Hugging Face tokenizers) carry over, including the backtracking of
// \s+(?!\S), which leaves the last whitespace character of a run to the word after it.
#include "model/tokenizer/tokenizer_pretokenize.hpp"

#include <cstdint>

#include "model/tokenizer/unicode.hpp"

namespace infllm::model {

namespace {

enum class Cls : std::uint8_t { kLetter, kNumber, kSpace, kNewline, kWhitespace, kOther };

// The text as characters: where each starts (byte offset), its class and, for the few ASCII
// characters the contractions test, its value. offset[size] is the text's end.
struct Chars {
  std::vector<std::uint32_t> offset;
  std::vector<Cls> cls;
  std::vector<char32_t> cp;

  explicit Chars(std::string_view text) {
    offset.reserve(text.size() + 1);
    cls.reserve(text.size());
    cp.reserve(text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
      const Utf8Char c = decode_utf8(text, pos);
      offset.push_back(static_cast<std::uint32_t>(pos));
      cp.push_back(c.valid ? c.code_point : 0xFFFD);
      cls.push_back(c.valid ? classify(c.code_point) : Cls::kOther);
      pos += c.length;
    }
    offset.push_back(static_cast<std::uint32_t>(text.size()));
  }

  static Cls classify(char32_t c) {
    if (c == ' ') return Cls::kSpace;
    if (c == '\n' || c == '\r') return Cls::kNewline;
    if (is_letter(c)) return Cls::kLetter;
    if (is_number(c)) return Cls::kNumber;
    if (is_whitespace(c)) return Cls::kWhitespace;
    return Cls::kOther;
  }

  std::size_t size() const { return cls.size(); }
  bool ws(std::size_t i) const {
    return cls[i] == Cls::kSpace || cls[i] == Cls::kNewline || cls[i] == Cls::kWhitespace;
  }
};

class Emitter {
 public:
  Emitter(std::string_view text, const Chars& chars, std::vector<std::string_view>& pieces)
      : text_(text), chars_(chars), pieces_(pieces) {}
  void emit(std::size_t begin, std::size_t end) {
    pieces_.push_back(
        text_.substr(chars_.offset[begin], chars_.offset[end] - chars_.offset[begin]));
  }

 private:
  std::string_view text_;
  const Chars& chars_;
  std::vector<std::string_view>& pieces_;
};

char32_t fold(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to 's'
  return c;
}

// Length (2 or 3) of a contraction 's 't 're 've 'm 'll 'd at i, or 0. `fold_case` for (?i:).
std::size_t contraction(const Chars& ch, std::size_t i, std::size_t end, bool fold_case) {
  if (ch.cp[i] != '\'' || i + 1 >= end) return 0;
  auto at = [&](std::size_t k) { return fold_case ? fold(ch.cp[k]) : ch.cp[k]; };
  const char32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= end) return 0;
  const char32_t b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End of the run of class `c` starting at k.
std::size_t run(const Chars& ch, std::size_t k, std::size_t end, Cls c) {
  while (k < end && ch.cls[k] == c) ++k;
  return k;
}

std::size_t ws_run(const Chars& ch, std::size_t k, std::size_t end) {
  while (k < end && ch.ws(k)) ++k;
  return k;
}

// \s+(?!\S)|\s+ at i, a whitespace character: the run, less its last character when a
// non-space follows and the run has more than one.
std::size_t whitespace_end(const Chars& ch, std::size_t i, std::size_t end) {
  const std::size_t k = ws_run(ch, i, end);
  return (k == end || k - i == 1) ? k : k - 1;
}

void gpt2(const Chars& ch, std::size_t begin, std::size_t end, Emitter& out) {
  std::size_t i = begin;
  while (i < end) {
    if (const std::size_t n = contraction(ch, i, end, false)) {
      out.emit(i, i + n);
      i += n;
      continue;
    }
    // " ?X+" for X in letters, numbers, others: an optional literal space before the run.
    std::size_t j = i;
    if (ch.cls[i] == Cls::kSpace && i + 1 < end && !ch.ws(i + 1)) j = i + 1;
    std::size_t k;
    if (!ch.ws(j)) {
      k = run(ch, j, end, ch.cls[j]);
    } else {
      k = whitespace_end(ch, i, end);
    }
    out.emit(i, k);
    i = k;
  }
}

void smollm(const Chars& ch, Emitter& out) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < ch.size(); ++i) {
    if (ch.cls[i] != Cls::kNumber) continue;
    gpt2(ch, start, i, out);
    out.emit(i, i + 1);
    start = i + 1;
  }
  gpt2(ch, start, ch.size(), out);
}

// Llama-3's split; Qwen2's when max_digits is 1.
void llama3(const Chars& ch, std::size_t max_digits, Emitter& out) {
  const std::size_t end = ch.size();
  std::size_t i = 0;
  while (i < end) {
    std::size_t k = 0;
    const Cls c = ch.cls[i];
    if (const std::size_t n = contraction(ch, i, end, true)) {
      k = i + n;
    } else if (c == Cls::kLetter) {  // [^\r\n\p{L}\p{N}]?\p{L}+ without the prefix
      k = run(ch, i, end, Cls::kLetter);
    } else if (c != Cls::kNewline && c != Cls::kNumber && i + 1 < end &&
               ch.cls[i + 1] == Cls::kLetter) {  // ... with it
      k = run(ch, i + 1, end, Cls::kLetter);
    } else if (c == Cls::kNumber) {  // \p{N}{1,3} (Qwen2: \p{N})
      k = i + 1;
      while (k < end && k < i + max_digits && ch.cls[k] == Cls::kNumber) ++k;
    } else if (c == Cls::kOther ||
               (c == Cls::kSpace && i + 1 < end && ch.cls[i + 1] == Cls::kOther)) {
      // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
      k = run(ch, c == Cls::kSpace ? i + 1 : i, end, Cls::kOther);
      k = run(ch, k, end, Cls::kNewline);
    } else {
      // Whitespace. \s*[\r\n]+ ends after the run's last newline, if it has one.
      const std::size_t run_end = ws_run(ch, i, end);
      std::size_t last_newline = run_end;
      for (std::size_t q = run_end; q > i; --q) {
        if (ch.cls[q - 1] == Cls::kNewline) {
          last_newline = q - 1;
          break;
        }
      }
      k = last_newline < run_end ? last_newline + 1 : whitespace_end(ch, i, end);
    }
    out.emit(i, k);
    i = k;
  }
}

}  // namespace

std::string_view pre_tokenizer_name(PreTokenizerKind kind) {
  switch (kind) {
    case PreTokenizerKind::kGpt2:
      return "gpt2";
    case PreTokenizerKind::kSmolLm:
      return "smollm";
    case PreTokenizerKind::kLlama3:
      return "llama3";
    case PreTokenizerKind::kQwen2:
      return "qwen2";
  }
  return "?";
}

void pre_tokenize(PreTokenizerKind kind, std::string_view text,
                  std::vector<std::string_view>& pieces) {
  if (text.empty()) return;
  const Chars chars(text);
  Emitter out(text, chars, pieces);
  switch (kind) {
    case PreTokenizerKind::kGpt2:
      gpt2(chars, 0, chars.size(), out);
      break;
    case PreTokenizerKind::kSmolLm:
      smollm(chars, out);
      break;
    case PreTokenizerKind::kLlama3:
      llama3(chars, 3, out);
      break;
    case PreTokenizerKind::kQwen2:
      llama3(chars, 1, out);
      break;
  }
}

}  // namespace infllm::model
