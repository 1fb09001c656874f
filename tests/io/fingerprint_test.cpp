// fingerprint_test.cpp: the output's fingerprint: content identities of models and inputs, the
// durable sidecar, and a refusal that names the part that differs.
#include "io/fingerprint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/errors.hpp"
#include "support/temp_dir.hpp"

namespace infllm::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One folder per test process, removed when the process ends (support/temp_dir.hpp).
fs::path temp_dir() {
  static const infllm::testing::TempDir dir("infllm-fingerprint-test");
  return dir.path();
}

std::string write(const std::string& name, const std::string& bytes) {
  const auto p = (temp_dir() / name).string();
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

json options(int seed) { return {{"seed", seed}, {"max-new-tokens", 16}}; }

// The message of the InputError `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Fingerprint, InputHashFollowsContentNotPath) {
  const auto a = write("a.jsonl", "{\"id\": 1}\n");
  const auto b = write("b.jsonl", "{\"id\": 1}\n");
  const auto c = write("c.jsonl", "{\"id\": 2}\n");
  EXPECT_EQ(file_content_hash(a), file_content_hash(b));
  EXPECT_NE(file_content_hash(a), file_content_hash(c));
}

TEST(Fingerprint, ModelIdentitySeesWeightsBeyondTheHeader) {
  // Same size and header, different bytes at the end: a reseeded model of the same shape.
  const std::string head(3 << 20, 'h');
  const auto a = write("a.gguf", head + "weights-1");
  const auto b = write("b.gguf", head + "weights-2");
  EXPECT_NE(model_identity(a), model_identity(b));
  EXPECT_EQ(model_identity(a), model_identity(write("a2.gguf", head + "weights-1")));
}

TEST(Fingerprint, HfDirectoryIdentityCoversConfigAndSafetensors) {
  const auto dir = temp_dir() / "hf";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"hidden_size\": 128}";
  std::ofstream(dir / "model.safetensors") << "tensor bytes 1";
  const std::string first = model_identity(dir.string());
  std::ofstream(dir / "model.safetensors") << "tensor bytes 2";
  EXPECT_NE(model_identity(dir.string()), first);
}

TEST(Fingerprint, SidecarRoundTrips) {
  const auto in = write("in.jsonl", "{}\n");
  const auto out = (temp_dir() / "out.jsonl").string();
  const json fp = make_fingerprint(in, in, options(1), 3);
  write_meta(out, fp);
  EXPECT_TRUE(fs::exists(meta_path(out)));
  EXPECT_FALSE(fs::exists(meta_path(out) + ".tmp"));
  EXPECT_EQ(read_meta(out), fp);
  EXPECT_FALSE(read_meta((temp_dir() / "none.jsonl").string()).has_value());
}

TEST(Fingerprint, MatchingFingerprintsPass) {
  const auto in = write("same.jsonl", "{}\n");
  const json fp = make_fingerprint(in, in, options(1), 3);
  EXPECT_NO_THROW(check_fingerprint("out.jsonl", fp, fp));
}

TEST(Fingerprint, DifferentModelIsNamed) {
  const auto in = write("m.jsonl", "{}\n");
  const json a = make_fingerprint(write("m1.gguf", "one"), in, options(1), 3);
  const json b = make_fingerprint(write("m2.gguf", "two"), in, options(1), 3);
  const std::string msg = error_of([&] { check_fingerprint("out.jsonl", a, b); });
  EXPECT_NE(msg.find("out.jsonl"), std::string::npos) << msg;
  EXPECT_NE(msg.find("different model"), std::string::npos) << msg;
}

TEST(Fingerprint, DifferentInputIsNamed) {
  const auto model = write("mi.gguf", "model");
  const json a = make_fingerprint(model, write("i1.jsonl", "1"), options(1), 3);
  const json b = make_fingerprint(model, write("i2.jsonl", "2"), options(1), 3);
  const std::string msg = error_of([&] { check_fingerprint("out.jsonl", a, b); });
  EXPECT_NE(msg.find("different input"), std::string::npos) << msg;
}

TEST(Fingerprint, DifferentOptionIsNamed) {
  const auto in = write("o.jsonl", "{}\n");
  const json a = make_fingerprint(in, in, options(1), 3);
  const json b = make_fingerprint(in, in, options(2), 3);
  const std::string msg = error_of([&] { check_fingerprint("out.jsonl", a, b); });
  EXPECT_NE(msg.find("option --seed"), std::string::npos) << msg;
}

TEST(Fingerprint, UnreadableSidecarIsAnInputError) {
  const auto out = (temp_dir() / "bad.jsonl").string();
  std::ofstream(meta_path(out)) << "{not json";
  EXPECT_THROW(read_meta(out), InputError);
}

TEST(Fingerprint, SidecarThatIsNotAFingerprintIsAnInputError) {
  const auto in = write("n.jsonl", "{}\n");
  const json fp = make_fingerprint(in, in, options(1), 3);
  EXPECT_THROW(check_fingerprint("out.jsonl", json::array(), fp), InputError);
  EXPECT_THROW(check_fingerprint("out.jsonl", {{"options", 3}}, fp), InputError);
}

}  // namespace
}  // namespace infllm::io
