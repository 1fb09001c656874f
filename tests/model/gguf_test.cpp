// gguf_test.cpp: the GGUF reader: metadata and tensor directory of files the `gguf` package
// wrote, and one clear InputError for each kind of malformed file.
//
// Malformed files are built here byte by byte (GgufBytes), so each test corrupts exactly one
// thing of an otherwise valid file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/formats/gguf.hpp"

namespace infllm::model {
namespace {

const std::string kTiny = std::string(INFLLM_SOURCE_DIR) + "/tests/data/model/tiny_llama.gguf";

// A little-endian GGUF v3 writer for tests: metadata, then tensor infos, then aligned data.
class GgufBytes {
 public:
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const char*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  void pad_to(std::size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
  }
  std::vector<char> bytes;
};

// A valid file: one u32 key, one string key, one F32 tensor "w" of shape [2, 3] (ne = [3, 2]).
GgufBytes valid_file(std::uint32_t tensor_type = 0, std::uint64_t tensor_offset = 0,
                     std::uint32_t version = 3) {
  GgufBytes g;
  g.raw("GGUF", 4);
  g.u32(version);
  g.u64(1);  // tensors
  g.u64(2);  // metadata
  g.str("llama.block_count");
  g.u32(4);  // UINT32
  g.u32(7);
  g.str("general.name");
  g.u32(8);  // STRING
  g.str("tiny");
  g.str("w");
  g.u32(2);
  g.u64(3);
  g.u64(2);
  g.u32(tensor_type);
  g.u64(tensor_offset);
  g.pad_to(32);
  for (int i = 0; i < 6; ++i) {
    const float v = static_cast<float>(i) * 0.5f;
    g.raw(&v, 4);
  }
  return g;
}

class GgufFileTest : public ::testing::Test {
 protected:
  std::string write(const std::vector<char>& bytes) {
    // Unique per process and test: ctest may run the tests of this file in parallel.
    const auto path = std::filesystem::temp_directory_path() /
                      ("infllm_gguf_test_" + std::to_string(::getpid()) + "_" +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                       std::to_string(counter_++) + ".gguf");
    std::ofstream(path, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    paths_.push_back(path);
    return path.string();
  }
  void TearDown() override {
    for (const auto& p : paths_) std::filesystem::remove(p);
  }
  // The message of the InputError that opening `bytes` throws, or "" when none.
  std::string open_error(const std::vector<char>& bytes) {
    const std::string path = write(bytes);
    try {
      GgufFile g(path);
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), path);
      return e.what();
    }
    return "";
  }

 private:
  std::vector<std::filesystem::path> paths_;
  int counter_ = 0;
};

TEST(GgufFile, ReadsTheMetadataTheGgufPackageWrote) {
  const GgufFile g(kTiny);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string_opt("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.block_count"), 1);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_NEAR(*g.get_float_opt("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_EQ(g.get_bool_opt("tokenizer.ggml.add_bos_token"), true);
  const GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->strings.size(), 16u);
  EXPECT_EQ(tokens->strings[3], "t3");
}

TEST(GgufFile, ShapesAreInPyTorchOrder) {
  const GgufFile g(kTiny);
  const GgufTensorInfo* t = g.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<std::int64_t>{32, 48}));  // (hidden, intermediate)
  EXPECT_EQ(t->bytes, 32u * 48u * 4u);
}

TEST(GgufFile, WrongTypeOfKeyNamesTheKey) {
  const GgufFile g(kTiny);
  try {
    g.get_int("general.architecture");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), "general.architecture");
  }
  EXPECT_THROW(g.get_int("llama.no_such_key"), InputError);
  EXPECT_FALSE(g.get_int_opt("llama.no_such_key"));
}

TEST_F(GgufFileTest, BuiltFileReadsBack) {
  const std::string path = write(valid_file().bytes);
  const GgufFile g(path);
  EXPECT_EQ(g.get_int("llama.block_count"), 7);
  const auto values = g.read_f32(*g.find_tensor("w"));
  EXPECT_EQ(values, (std::vector<float>{0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f}));
}

TEST_F(GgufFileTest, BadMagicIsNotGguf) {
  auto bytes = valid_file().bytes;
  bytes[0] = 'X';
  EXPECT_NE(open_error(bytes).find("not a GGUF file"), std::string::npos);
}

TEST_F(GgufFileTest, UnsupportedVersionIsNamed) {
  EXPECT_NE(open_error(valid_file(0, 0, 9).bytes).find("version 9"), std::string::npos);
}

TEST_F(GgufFileTest, TruncationInsideMetadataIsAnError) {
  auto bytes = valid_file().bytes;
  bytes.resize(40);  // inside the first key
  EXPECT_NE(open_error(bytes).find("outside the file"), std::string::npos);
}

TEST_F(GgufFileTest, TruncatedTensorDataNamesTheTensor) {
  auto bytes = valid_file().bytes;
  bytes.resize(bytes.size() - 4);
  const std::string msg = open_error(bytes);
  EXPECT_NE(msg.find("tensor w"), std::string::npos) << msg;
  EXPECT_NE(msg.find("outside the file"), std::string::npos) << msg;
}

TEST_F(GgufFileTest, OffsetOutOfRangeIsAnError) {
  const std::string msg = open_error(valid_file(0, 1 << 20).bytes);
  EXPECT_NE(msg.find("tensor w"), std::string::npos) << msg;
}

TEST_F(GgufFileTest, MisalignedOffsetIsAnError) {
  EXPECT_NE(open_error(valid_file(0, 4).bytes).find("not aligned"), std::string::npos);
}

TEST_F(GgufFileTest, UnknownTensorTypeIsListedButNotRead) {
  const std::string path = write(valid_file(/*tensor_type=*/20).bytes);
  const GgufFile g(path);  // listing works, so inspect can show it
  ASSERT_EQ(g.tensors().size(), 1u);
  try {
    g.read_f32(g.tensors()[0]);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find("IQ4_NL"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor w"), std::string::npos) << e.what();
  }
}

TEST_F(GgufFileTest, UnknownValueTypeIsAnError) {
  auto g = valid_file();
  // The first value's type field sits after magic, version, two counts and the first key.
  const std::size_t at = 4 + 4 + 8 + 8 + 8 + std::strlen("llama.block_count");
  const std::uint32_t bogus = 77;
  std::memcpy(g.bytes.data() + at, &bogus, 4);
  const std::string msg = open_error(g.bytes);
  EXPECT_NE(msg.find("llama.block_count"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown value type 77"), std::string::npos) << msg;
}

TEST_F(GgufFileTest, HugeStringLengthIsTruncationNotACrash) {
  auto g = valid_file();
  const std::size_t at = 4 + 4 + 8 + 8;  // the first key's length
  const std::uint64_t huge = ~std::uint64_t{0} - 3;
  std::memcpy(g.bytes.data() + at, &huge, 8);
  EXPECT_NE(open_error(g.bytes).find("outside the file"), std::string::npos);
}

}  // namespace
}  // namespace infllm::model
