// unicode.cpp: UTF-8 decoding, Unicode classes and the GPT-2 byte alphabet (see unicode.hpp).
#include "model/tokenizer/unicode.hpp"

#include <algorithm>
#include <array>

namespace infllm::model {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// The allowed range of the second byte for each lead byte (Unicode Table 3-7); later bytes are
// always 0x80..0xBF. {0, 0} marks a byte that cannot lead.
struct LeadInfo {
  std::uint8_t length;
  std::uint8_t second_lo;
  std::uint8_t second_hi;
};

LeadInfo lead_info(std::uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  return {0, 0, 0};
}

bool in_ranges(char32_t cp, const unicode_detail::CodePointRange* ranges, std::size_t size) {
  const auto* end = ranges + size;
  // First range whose last >= cp.
  const auto* it = std::lower_bound(
      ranges, end, cp,
      [](const unicode_detail::CodePointRange& r, char32_t c) { return r.last < c; });
  return it != end && it->first <= cp;
}

struct ByteAlphabet {
  std::array<char32_t, 256> to_unicode{};
  std::array<std::int16_t, 324> to_byte{};  // code points < 324 cover the whole alphabet

  ByteAlphabet() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_unicode[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_unicode[b]] = static_cast<std::int16_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet table;
  return table;
}

}  // namespace

Utf8Char decode_utf8(std::string_view text, std::size_t pos) {
  const auto b0 = static_cast<std::uint8_t>(text[pos]);
  const LeadInfo info = lead_info(b0);
  if (info.length == 1) return {b0, 1, true};
  if (info.length == 0) return {kReplacement, 1, false};
  char32_t cp = b0 & (0xFF >> (info.length + 1));
  for (std::uint8_t i = 1; i < info.length; ++i) {
    if (pos + i >= text.size()) return {kReplacement, i, false};
    const auto b = static_cast<std::uint8_t>(text[pos + i]);
    const std::uint8_t lo = i == 1 ? info.second_lo : 0x80;
    const std::uint8_t hi = i == 1 ? info.second_hi : 0xBF;
    if (b < lo || b > hi) return {kReplacement, i, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, info.length, true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char c = decode_utf8(text, pos);
    if (c.valid) {
      out.append(text.substr(pos, c.length));
    } else {
      append_utf8(out, kReplacement);
    }
    pos += c.length;
  }
  return out;
}

std::size_t complete_utf8_prefix(std::string_view bytes) {
  // An incomplete tail is at most 3 bytes long; it starts at a lead byte whose sequence runs
  // past the end with every byte so far allowed.
  const std::size_t n = bytes.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const std::size_t pos = n - back;
    const auto b = static_cast<std::uint8_t>(bytes[pos]);
    if (b >= 0x80 && b < 0xC0) continue;  // a continuation byte: look further back
    const Utf8Char c = decode_utf8(bytes, pos);
    const bool truncated = !c.valid && pos + c.length == n && lead_info(b).length > back;
    return truncated ? pos : n;
  }
  return n;
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(cp, unicode_detail::kLetterRanges, unicode_detail::kLetterRangesSize);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(cp, unicode_detail::kNumberRanges, unicode_detail::kNumberRangesSize);
}

bool is_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

char32_t byte_to_unicode(std::uint8_t byte) { return alphabet().to_unicode[byte]; }

int unicode_to_byte(char32_t cp) {
  const auto& table = alphabet().to_byte;
  return cp < table.size() ? table[cp] : -1;
}

}  // namespace infllm::model
