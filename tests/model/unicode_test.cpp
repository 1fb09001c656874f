// unicode_test.cpp: UTF-8 decoding, the letter/number/space classes and the GPT-2 byte alphabet.
#include "model/tokenizer/unicode.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace infllm::model {
namespace {

TEST(Unicode, DecodesEveryLengthOfUtf8) {
  const std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é 日 😀
  const char32_t want[] = {U'a', 0xE9, 0x65E5, 0x1F600};
  std::size_t pos = 0;
  for (char32_t cp : want) {
    const Utf8Char c = decode_utf8(text, pos);
    ASSERT_TRUE(c.valid);
    EXPECT_EQ(static_cast<std::uint32_t>(c.code_point), static_cast<std::uint32_t>(cp));
    pos += c.length;
  }
  EXPECT_EQ(pos, text.size());
}

TEST(Unicode, RejectsOverlongSurrogateAndOutOfRange) {
  for (const std::string bad : {"\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                "\xF5\x80\x80\x80", "\x80", "\xFF"}) {
    EXPECT_FALSE(decode_utf8(bad, 0).valid) << bad.size();
  }
}

TEST(Unicode, TruncatedSequenceIsOneMaximalSubpart) {
  const Utf8Char c = decode_utf8("\xF0\x9F\x98x", 0);
  EXPECT_FALSE(c.valid);
  EXPECT_EQ(c.length, 3);
}

TEST(Unicode, RepairReplacesEachMaximalSubpartOnce) {
  // Truncated 4-byte sequence, a lone continuation byte, then valid text.
  EXPECT_EQ(to_valid_utf8("a\xF0\x9F\x98"
                          "b\x80"
                          "c\xC3\xA9"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xC3\xA9");
  EXPECT_EQ(to_valid_utf8("plain"), "plain");
}

TEST(Unicode, CompletePrefixHoldsBackOnlyAnUnfinishedCharacter) {
  const std::string smile = "\xF0\x9F\x98\x80";
  EXPECT_EQ(complete_utf8_prefix("ab" + smile), 6u);
  for (std::size_t cut = 1; cut < 4; ++cut) {
    EXPECT_EQ(complete_utf8_prefix("ab" + smile.substr(0, cut)), 2u) << cut;
  }
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  // Invalid bytes can never be completed, so they are not held back.
  EXPECT_EQ(complete_utf8_prefix("a\xFF"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\x80"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xE0\x80"), 3u);  // E0 80 is never valid
}

TEST(Unicode, AppendUtf8RoundTripsEveryScalarValue) {
  for (char32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x3000 ? 1 : 97)) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    append_utf8(s, cp);
    const Utf8Char c = decode_utf8(s, 0);
    ASSERT_TRUE(c.valid) << static_cast<std::uint32_t>(cp);
    ASSERT_EQ(static_cast<std::uint32_t>(c.code_point), static_cast<std::uint32_t>(cp));
    ASSERT_EQ(c.length, s.size());
  }
}

TEST(Unicode, ClassifiesLettersNumbersAndWhitespace) {
  for (std::uint32_t cp : {0x61u, 0x5Au, 0xE9u, 0x3B1u, 0x65E5u, 0x5D0u, 0x1D538u, 0x20001u}) {
    EXPECT_TRUE(is_letter(cp)) << std::hex << cp;
    EXPECT_FALSE(is_number(cp)) << std::hex << cp;
  }
  for (std::uint32_t cp : {0x30u, 0x39u, 0xBDu, 0xB2u, 0x663u, 0x2460u, 0x216Bu}) {  // ½ ² ٣ ① Ⅻ
    EXPECT_TRUE(is_number(cp)) << std::hex << cp;
    EXPECT_FALSE(is_letter(cp)) << std::hex << cp;
  }
  for (std::uint32_t cp : {0x20u, 0x9u, 0xAu, 0xDu, 0xA0u, 0x2003u, 0x3000u, 0x85u}) {
    EXPECT_TRUE(is_whitespace(cp)) << std::hex << cp;
  }
  // Combining marks (Mn), punctuation, symbols, emoji, ZWJ and the 0x1C..0x1F separators
  // (which Python's isspace accepts but White_Space does not) are in none of the classes.
  for (std::uint32_t cp : {0x301u, 0x2Eu, 0x27u, 0x24u, 0x1F600u, 0x200Du, 0x1Cu, 0x1Fu, 0x200Bu}) {
    EXPECT_FALSE(is_letter(cp) || is_number(cp) || is_whitespace(cp)) << std::hex << cp;
  }
}

TEST(Unicode, ByteAlphabetIsABijectionOntoPrintableCharacters) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = byte_to_unicode(static_cast<std::uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second) << b;
    EXPECT_EQ(unicode_to_byte(cp), b);
    EXPECT_FALSE(is_whitespace(cp)) << b;
  }
  EXPECT_EQ(static_cast<std::uint32_t>(byte_to_unicode(' ')), 0x120u);   // 'Ġ'
  EXPECT_EQ(static_cast<std::uint32_t>(byte_to_unicode('\n')), 0x10Au);  // 'Ċ'
  EXPECT_EQ(static_cast<std::uint32_t>(byte_to_unicode('A')), 0x41u);
  EXPECT_EQ(unicode_to_byte(0x4E00), -1);
}

}  // namespace
}  // namespace infllm::model
