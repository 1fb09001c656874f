// safetensors_test.cpp: the safetensors reader and writer: round trips in every dtype, files the
// Python `safetensors` package wrote, and one clear InputError per kind of corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/formats/safetensors.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infllm_st_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a file from a raw header and data section.
  std::string write_raw(const std::string& header, const std::vector<char>& data,
                        std::uint64_t declared_len = 0) {
    const std::string p = path("raw.safetensors");
    std::ofstream out(p, std::ios::binary);
    const std::uint64_t len = declared_len ? declared_len : header.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << header;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    return p;
  }
  // The message of the InputError that opening `p` throws, "" when none.
  static std::string open_error(const std::string& p) {
    try {
      SafetensorsFile f(p);
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), p);
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

// Values exactly representable in f16 and bf16, so every dtype round-trips exactly.
SafetensorsEntry counting_entry(const std::string& name, StDtype dtype,
                                std::vector<std::int64_t> shape) {
  return {name, dtype, std::move(shape), [](std::int64_t first, std::span<float> out) {
            for (std::size_t i = 0; i < out.size(); ++i) {
              out[i] = static_cast<float>(first + static_cast<std::int64_t>(i)) * 0.25f - 8.0f;
            }
          }};
}

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  const std::string p = path("a.safetensors");
  write_safetensors(
      p, {counting_entry("a", StDtype::kF32, {3, 4}), counting_entry("b", StDtype::kF16, {5}),
          counting_entry("c", StDtype::kBF16, {2, 2, 2})});
  const SafetensorsFile f(p);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  for (const char* name : {"a", "b", "c"}) {
    const SafetensorsTensor* t = f.find(name);
    ASSERT_NE(t, nullptr) << name;
    const auto v = f.read_f32(*t);
    ASSERT_EQ(static_cast<std::int64_t>(v.size()), t->numel());
    for (std::size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(v[i], static_cast<float>(i) * 0.25f - 8.0f) << name << " " << i;
    }
  }
  EXPECT_EQ(f.find("b")->dtype, "F16");
  EXPECT_EQ(f.find("c")->shape, (std::vector<std::int64_t>{2, 2, 2}));
}

TEST_F(SafetensorsTest, ReadsAFileThePythonPackageWrote) {
  const SafetensorsFile f(std::string(INFLLM_SOURCE_DIR) +
                          "/tests/data/model/tiny_llama/model.safetensors");
  const SafetensorsTensor* t = f.find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, "F32");
  EXPECT_EQ(t->shape, (std::vector<std::int64_t>{32, 48}));
  EXPECT_EQ(f.tensors().size(), 12u);
}

TEST_F(SafetensorsTest, TruncatedDataNamesTheTensor) {
  const std::string p = path("t.safetensors");
  write_safetensors(p, {counting_entry("first", StDtype::kF32, {4}),
                        counting_entry("last", StDtype::kF32, {64})});
  fs::resize_file(p, fs::file_size(p) - 10);
  const std::string msg = open_error(p);
  EXPECT_NE(msg.find("tensor last"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, FileShorterThanItsHeaderIsAnError) {
  const std::string p = write_raw("{}", {}, /*declared_len=*/4096);
  EXPECT_NE(open_error(p).find("header"), std::string::npos);
}

TEST_F(SafetensorsTest, EmptyFileIsAnError) {
  const std::string p = path("empty.safetensors");
  std::ofstream(p).close();
  EXPECT_NE(open_error(p).find("outside the file"), std::string::npos);
}

TEST_F(SafetensorsTest, HeaderThatIsNotJsonIsAnError) {
  EXPECT_NE(open_error(write_raw("{not json", {})).find("not valid JSON"), std::string::npos);
}

// Found by fuzz_safetensors: a number beyond a double made nlohmann's parser throw
// out_of_range, which escaped as an uncaught exception (terminate) instead of the file's error.
TEST_F(SafetensorsTest, NumberBeyondADoubleIsAnError) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":5e555555}})";
  const std::string msg = open_error(write_raw(header, std::vector<char>(4)));
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("number overflow"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, OffsetsOutOfRangeAreAnError) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8000]}})";
  const std::string msg = open_error(write_raw(header, std::vector<char>(8)));
  EXPECT_NE(msg.find("tensor w"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data_offsets [0, 8000)"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, ReversedOffsetsAreAnError) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})";
  EXPECT_NE(open_error(write_raw(header, std::vector<char>(8))).find("tensor w"),
            std::string::npos);
}

TEST_F(SafetensorsTest, OffsetsDisagreeingWithShapeAreAnError) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  const std::string msg = open_error(write_raw(header, std::vector<char>(8)));
  EXPECT_NE(msg.find("do not hold a F32 [3] tensor"), std::string::npos) << msg;
}

TEST_F(SafetensorsTest, UnsupportedDtypeIsNamedWhenRead) {
  const std::string header = R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  const std::string p = write_raw(header, std::vector<char>(8));
  const SafetensorsFile f(p);
  try {
    f.read_f32(*f.find("ids"));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("dtype I64"), std::string::npos) << e.what();
    EXPECT_EQ(e.where(), "tensor ids");
  }
}

TEST_F(SafetensorsTest, WriterAlignsTheDataSection) {
  const std::string p = path("aligned.safetensors");
  write_safetensors(p, {counting_entry("x", StDtype::kBF16, {3})});
  std::ifstream in(p, std::ios::binary);
  std::uint64_t len = 0;
  in.read(reinterpret_cast<char*>(&len), 8);
  EXPECT_EQ((8 + len) % 8, 0u);
  EXPECT_EQ(fs::file_size(p), 8 + len + 6);
}

}  // namespace
}  // namespace infllm::model
