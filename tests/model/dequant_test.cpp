// dequant_test.cpp: every supported ggml type expands to f32 exactly as the `gguf` Python package
// (llama.cpp's reference numpy code) does, plus hand-computed blocks and misuse checks.
//
// Golden data: tests/data/model/dequant_golden.gguf, made by scripts/golden/make_gguf_golden.py:
// tensor "T" stored as type T and "T.expected" (F32) = gguf.quants.dequantize of it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/half.hpp"
#include "model/formats/dequant.hpp"
#include "model/formats/gguf.hpp"

namespace infllm::model {
namespace {

const std::string kGolden =
    std::string(INFLLM_SOURCE_DIR) + "/tests/data/model/dequant_golden.gguf";

class DequantGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DequantGolden, MatchesTheGgufPackage) {
  const GgufFile g(kGolden);
  const GgufTensorInfo* t = g.find_tensor(GetParam());
  const GgufTensorInfo* e = g.find_tensor(GetParam() + ".expected");
  ASSERT_NE(t, nullptr);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(ggml_type_name(t->type_id), GetParam());
  EXPECT_EQ(t->shape, (std::vector<std::int64_t>{2, 256}));
  const std::vector<float> got = g.read_f32(*t);
  const std::vector<float> want = g.read_f32(*e);
  ASSERT_EQ(got.size(), want.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "element " << i;
    // numpy and C++ evaluate the same f32 expression; allow one rounding of slack.
    if (std::fabs(got[i] - want[i]) > 1e-6f * std::max(1.0f, std::fabs(want[i]))) {
      if (++mismatches <= 5)
        ADD_FAILURE() << "element " << i << ": " << got[i] << " vs " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(EveryType, DequantGolden,
                         ::testing::Values("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                           "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"),
                         [](const auto& info) { return info.param; });

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (const int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

void put_f16(std::vector<std::byte>& b, std::size_t at, float v) {
  const std::uint16_t bits = to_f16(v).bits;
  b[at] = static_cast<std::byte>(bits & 0xff);
  b[at + 1] = static_cast<std::byte>(bits >> 8);
}

TEST(Dequant, Q8_0BlockIsScaleTimesSignedBytes) {
  std::vector<std::byte> block(34);
  put_f16(block, 0, 0.5f);
  for (int j = 0; j < 32; ++j)
    block[2 + j] = static_cast<std::byte>(static_cast<std::int8_t>(j - 16));
  std::vector<float> out(32);
  dequantize(GgmlType::kQ8_0, block, out);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * static_cast<float>(j - 16)) << j;
}

TEST(Dequant, Q4_1LowNibblesComeFirst) {
  std::vector<std::byte> block(20);
  put_f16(block, 0, 2.0f);   // d
  put_f16(block, 2, -1.0f);  // m
  for (int j = 0; j < 16; ++j) block[4 + j] = static_cast<std::byte>((15 - j) << 4 | j);
  std::vector<float> out(32);
  dequantize(GgmlType::kQ4_1, block, out);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * static_cast<float>(j) - 1.0f) << j;
    EXPECT_EQ(out[16 + j], 2.0f * static_cast<float>(15 - j) - 1.0f) << j;
  }
}

TEST(Dequant, Q4_0IsCenteredOnEight) {
  std::vector<std::byte> block(18);
  put_f16(block, 0, 0.25f);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<std::byte>(0x08 | (0xf << 4));
  std::vector<float> out(32);
  dequantize(GgmlType::kQ4_0, block, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[16], 0.25f * 7.0f);
}

// Found by fuzz_gguf: a GGUF tensor with no elements reached memcpy(dst, src, 0) with null
// pointers (undefined behaviour, UBSan). An empty tensor of any type dequantizes to nothing.
TEST(Dequant, EmptyTensorOfEveryTypeIsNothing) {
  for (std::uint32_t id = 0; id < 48; ++id) {
    const auto info = ggml_type_info(id);
    if (!info) continue;
    SCOPED_TRACE(info->name);
    EXPECT_NO_THROW(dequantize(info->type, std::span<const std::byte>(), std::span<float>()));
  }
}

TEST(Dequant, GeometryOfTheTypes) {
  EXPECT_EQ(ggml_type_info(12)->block_bytes, 144);  // Q4_K: 256 elements
  EXPECT_EQ(ggml_type_info(14)->block_bytes, 210);  // Q6_K
  EXPECT_EQ(ggml_type_info(3)->block_bytes, 20);    // Q4_1: 32 elements
  EXPECT_EQ(ggml_row_bytes(GgmlType::kQ8_0, 64), 68u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::kBF16, 3), 6u);
}

TEST(Dequant, UnsupportedTypesHaveNamesButNoInfo) {
  EXPECT_FALSE(ggml_type_info(20));
  EXPECT_EQ(ggml_type_name(20), "IQ4_NL");
  EXPECT_EQ(ggml_type_name(99), "type 99");
  EXPECT_EQ(ggml_type_name(30), "BF16");
}

TEST(Dequant, SizeMismatchIsMisuse) {
  const auto block = bytes_of({0, 0, 0});
  std::vector<float> out(32);
  EXPECT_THROW(dequantize(GgmlType::kQ8_0, block, out), InternalError);
  EXPECT_THROW(ggml_row_bytes(GgmlType::kQ8_0, 31), InternalError);
}

}  // namespace
}  // namespace infllm::model
