// generate_cuda_test.cpp: `mpiexec -n 2 infllm generate --backend cuda` end to end, as a user runs
// it, on the build of infllm whose CUDA backend runs over the CUDA-on-CPU layer
// (infllm-cuda-on-cpu): the micro model, a pool small enough that the longest document borrows
// rBlocks from the other rank, the KV pools in the MPI windows (registered for the device),
// DistAttention staging through the backend. Its greedy tokens are the CPU backend's up to the
// first near tie, whichever remote attention runs; bf16 weights (the default) finish every
// request; an output the two backends would write differently does not resume across them; and
// the real `infllm` refuses --backend cuda where it has no CUDA backend or no device.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using infllm::testing::CommandResult;
using nlohmann::json;

std::string binary(const std::string& name) {
  return std::string(INFLLM_BINARY_DIR) + "/src/app/" + name;
}

CommandResult mpi_run(const std::string& name, const std::string& args) {
  return infllm::testing::run_command(
      infllm::testing::infllm_env() + "INFLLM_TEST_RANKS=2 INFLLM_TEST_MPI_TIMEOUT=200 " +
      std::string(INFLLM_BINARY_DIR) + "/tests/mpi_launch.sh " + binary(name) + " " + args);
}

class GenerateCuda : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = std::make_unique<infllm::testing::TempDir>("infllm-generate-cuda-test");
    const CommandResult r =
        infllm::testing::run_infllm("make-model --preset micro --seed 3 --out " + path("micro"));
    ASSERT_EQ(r.code, 0) << r.out;
    // 110 + 6 tokens need 15 rBlocks of 8 tokens; a rank's pool holds 12.
    std::ofstream in(path("in.jsonl"));
    const int lengths[] = {110, 20, 10};
    for (int i = 0; i < 3; ++i) {
      json tokens = json::array();
      for (int j = 0; j < lengths[i]; ++j) tokens.push_back(3 + (j * 37 + i * 101 + j / 7) % 500);
      in << json{{"id", "d" + std::to_string(i)}, {"tokens", tokens}, {"max_new_tokens", 6}}.dump()
         << "\n";
    }
  }
  static void TearDownTestSuite() { tmp_.reset(); }
  static std::string path(const std::string& name) { return (tmp_->path() / name).string(); }
  static std::string args(const std::string& output) {
    return "generate --model " + path("micro") + " --input " + path("in.jsonl") + " --output " +
           path(output) + " --block-tokens 8 --kv-pool-mb 0.09375 --ignore-eos --logprobs 2";
  }
  static std::map<std::string, json> records(const std::string& output) {
    std::map<std::string, json> out;
    std::ifstream in(path(output));
    for (std::string line; std::getline(in, line);) {
      json r = json::parse(line);
      out[r.at("id").get<std::string>()] = r;
    }
    return out;
  }
  static std::unique_ptr<infllm::testing::TempDir> tmp_;
};
std::unique_ptr<infllm::testing::TempDir> GenerateCuda::tmp_;

TEST_F(GenerateCuda, GreedyTokensAreTheCpuBackendsWithBorrowedBlocks) {
  constexpr double kNearTie = 1e-3;  // logprob gap under which either order is right
  for (const std::string remote : {"push-query", "pull-kv"}) {
    SCOPED_TRACE(remote);
    const std::string cpu_out = "cpu-" + remote + ".jsonl", cuda_out = "cuda-" + remote + ".jsonl";
    const CommandResult cpu =
        mpi_run("infllm", args(cpu_out) + " --quiet --backend cpu --remote-attention " + remote);
    ASSERT_EQ(cpu.code, 0) << cpu.out;
    const CommandResult cuda =
        mpi_run("infllm-cuda-on-cpu", args(cuda_out) + " --backend cuda --weight-dtype f32 " +
                                          "--remote-attention " + remote + " --metrics " +
                                          path("metrics-" + remote + ".json"));
    ASSERT_EQ(cuda.code, 0) << cuda.out;
    EXPECT_NE(cuda.out.find("backend cuda:0 (f32 weights)"), std::string::npos) << cuda.out;
    std::ifstream metrics(path("metrics-" + remote + ".json"));
    EXPECT_GT(json::parse(metrics).at("loans_total").get<int>(), 0) << "nothing was borrowed";
    const auto want = records(cpu_out), got = records(cuda_out);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [id, w] : want) {
      SCOPED_TRACE(id);
      const json& g = got.at(id);
      EXPECT_EQ(g.at("status"), "done");
      const auto wt = w.at("tokens").get<std::vector<int>>();
      const auto gt = g.at("tokens").get<std::vector<int>>();
      ASSERT_EQ(gt.size(), wt.size());
      for (std::size_t i = 0; i < wt.size(); ++i) {
        EXPECT_EQ(gt[i], wt[i]) << "token " << i;
        const json& top = w.at("top_logprobs").at(i);
        const double gap =
            top.at(0).at("logprob").get<double>() - top.at(1).at("logprob").get<double>();
        if (gt[i] != wt[i] || gap < kNearTie) break;
      }
    }
  }
}

TEST_F(GenerateCuda, Bf16WeightsByDefaultFinishEveryRequest) {
  const CommandResult r = mpi_run("infllm-cuda-on-cpu", args("bf16.jsonl") + " --backend cuda");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("backend cuda:0 (bf16 weights)"), std::string::npos) << r.out;
  const auto got = records("bf16.jsonl");
  ASSERT_EQ(got.size(), 3u);
  for (const auto& [id, g] : got) EXPECT_EQ(g.at("status"), "done") << id;
}

TEST_F(GenerateCuda, AnOutputDoesNotResumeOnTheOtherBackend) {
  ASSERT_EQ(mpi_run("infllm", args("resume.jsonl") + " --quiet --backend cpu").code, 0);
  const CommandResult r =
      mpi_run("infllm-cuda-on-cpu", args("resume.jsonl") + " --quiet --resume --backend cuda");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--backend"), std::string::npos) << r.out;
}

TEST_F(GenerateCuda, BackendCudaIsRefusedWhereThisBuildCannotRunIt) {
  // The default build has no CUDA backend; a CUDA build on a machine without a GPU sees none.
  const CommandResult r =
      infllm::testing::run_infllm(args("refused.jsonl") + " --quiet --backend cuda");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(r.out.find("this build has no CUDA backend") != std::string::npos ||
              r.out.find("no CUDA device is visible") != std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(path("refused.jsonl")));
}

}  // namespace
