// generate_test.cpp: `infllm generate` on one rank, run as users run it: a generated model in
// the Hugging Face layout, a JSONL or HDF5 input, the executable, and its output files.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "support/run_command.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using Result = infllm::testing::CommandResult;

Result infllm(const std::string& args) { return infllm::testing::run_infllm(args); }

class Generate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("infllm_generate_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    const Result r =
        infllm("make-model --preset micro --seed 3 --out " + (dir_ / "micro").string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static std::string path(const std::string& name) { return (dir_ / name).string(); }
  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  static std::vector<json> read_jsonl(const std::string& p) {
    std::vector<json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  std::string model() const { return path("micro"); }
  static fs::path dir_;
};
fs::path Generate::dir_;

const char* kInput =
    "{\"id\": \"text\", \"prompt\": \"It is a truth universally acknowledged\", "
    "\"max_new_tokens\": 5}\n"
    "{\"id\": \"ids\", \"tokens\": [5, 6, 7, 8], \"max_new_tokens\": 3}\n"
    "{\"id\": \"chat\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
    "\"max_new_tokens\": 4, \"temperature\": 0.8, \"seed\": 1}\n";

TEST_F(Generate, WritesOneLinePerRequest) {
  const auto in = write("in.jsonl", kInput);
  const auto out = path("out.jsonl");
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          out + " --metrics " + path("m.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto lines = read_jsonl(out);
  ASSERT_EQ(lines.size(), 3u);
  std::set<std::string> ids;
  for (const auto& l : lines) {
    ids.insert(l["id"]);
    EXPECT_EQ(l["status"], "done") << l.dump();
    EXPECT_GT(l["generated_tokens"].get<int>(), 0);
    EXPECT_EQ(l["tokens"].size(), l["generated_tokens"].get<std::size_t>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"text", "ids", "chat"}));
  std::ifstream m(path("m.json"));
  const json metrics = json::parse(m);
  EXPECT_EQ(metrics["requests"], 3);
  EXPECT_EQ(metrics["requests_by_status"]["done"], 3);
}

TEST_F(Generate, GreedyRunsAreReproducible) {
  const auto in = write("repro.jsonl", kInput);
  ASSERT_EQ(infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                   path("r1.jsonl"))
                .code,
            0);
  // A different batch shape and chunking: same greedy tokens.
  ASSERT_EQ(infllm("generate --quiet --max-batch-tokens 3 --max-num-seqs 1 --model " + model() +
                   " --input " + in + " --output " + path("r2.jsonl"))
                .code,
            0);
  std::map<std::string, json> a, b;
  for (const auto& l : read_jsonl(path("r1.jsonl"))) a[l["id"]] = l["tokens"];
  for (const auto& l : read_jsonl(path("r2.jsonl"))) b[l["id"]] = l["tokens"];
  EXPECT_EQ(a, b);
}

TEST_F(Generate, HdfOutputHasTheResults) {
  const auto in = write("h.jsonl", kInput);
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          path("out.h5"));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string text =
      infllm::testing::run_command("h5dump -d /results/status " + path("out.h5")).out;
  EXPECT_NE(text.find("\"done\", \"done\", \"done\""), std::string::npos) << text;
}

TEST_F(Generate, RequestTooLargeForThePoolIsRejectedExitOne) {
  const auto in = write("big.jsonl",
                        "{\"id\": \"small\", \"tokens\": [1, 2], \"max_new_tokens\": 2}\n"
                        "{\"id\": \"big\", \"tokens\": [1, 2], \"max_new_tokens\": 5000}\n");
  // micro: 2 layers x 2 kv heads x 32 dims x 16 tokens x 2 x 4 bytes = 16 KiB per rBlock;
  // 1 MiB holds 64 blocks = 1024 tokens.
  const Result r = infllm("generate --quiet --kv-pool-mb 1 --model " + model() + " --input " + in +
                          " --output " + path("big.out.jsonl"));
  EXPECT_EQ(r.code, 1) << r.out;
  std::map<std::string, json> by_id;
  for (const auto& l : read_jsonl(path("big.out.jsonl"))) by_id[l["id"]] = l;
  EXPECT_EQ(by_id["small"]["status"], "done");
  EXPECT_EQ(by_id["big"]["status"], "rejected");
  EXPECT_EQ(by_id["big"]["reason"], "kv_capacity");
}

TEST_F(Generate, BadInputExitsTwoAndWritesNothing) {
  const auto in = write("bad.jsonl", "{\"id\": \"a\", \"tokens\": [1, 99999]}\n");
  const auto out = path("never.jsonl");
  const Result r = infllm("generate --model " + model() + " --input " + in + " --output " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("bad.jsonl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outside the vocabulary"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Generate, MissingModelExitsTwoNamingIt) {
  const auto in = write("ok.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\n");
  const Result r = infllm("generate --model " + path("nope") + " --input " + in + " --output " +
                          path("o.jsonl"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find(path("nope")), std::string::npos) << r.out;
}

TEST_F(Generate, ExistingOutputIsRefused) {
  const auto in = write("e.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\n");
  write("exists.jsonl", "{\"id\": \"old\"}\n");
  const Result r = infllm("generate --model " + model() + " --input " + in + " --output " +
                          path("exists.jsonl"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("output exists"), std::string::npos) << r.out;
  EXPECT_EQ(read_jsonl(path("exists.jsonl")).size(), 1u);
}

}  // namespace
