// bench_cuda_test.cpp: `infllm bench attention|forward --backend cuda` run through the build whose
// CUDA backend runs over the CUDA-on-CPU layer (infllm-cuda-on-cpu), at its smallest sizes: the
// benchmarks a GPU check runs (scripts/gpu_check.sh) print their tables and exit 0. The real
// `infllm` without the CUDA backend refuses them by name.
#include <gtest/gtest.h>

#include <string>

#include "support/run_command.hpp"

namespace {

using infllm::testing::CommandResult;

CommandResult on_cpu(const std::string& args) {
  return infllm::testing::run_command(infllm::testing::infllm_env() + INFLLM_BINARY_DIR +
                                      "/src/app/infllm-cuda-on-cpu " + args);
}

TEST(BenchCuda, AttentionPrintsItsTableAgainstTheCopyBandwidth) {
  const CommandResult r = on_cpu("bench attention --backend cuda");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("copy bandwidth (device to device, read + written)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("KV GB/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      1024 "), std::string::npos) << r.out;
}

TEST(BenchCuda, ForwardPrintsPrefillAndDecodeAgainstCublas) {
  const CommandResult r = on_cpu("bench forward --backend cuda");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("cuBLAS bf16 GEMM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of cuBLAS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of copy BW"), std::string::npos) << r.out;
}

TEST(BenchCuda, RefusedByNameWithoutTheCudaBackendOrForOtherBenchmarks) {
  CommandResult r = infllm::testing::run_infllm("bench mixed --backend cuda");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--backend"), std::string::npos) << r.out;
#if !defined(INFLLM_HAVE_CUDA)
  r = infllm::testing::run_infllm("bench attention --backend cuda");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("this build has no CUDA backend"), std::string::npos) << r.out;
#endif
}

}  // namespace

namespace {

// `--version` says which backends the build has and how rBlocks and partial states travel.
TEST(Version, NamesTheBackendsAndTheTransports) {
  const CommandResult cpu = infllm::testing::run_infllm("--version");
  ASSERT_EQ(cpu.code, 0) << cpu.out;
  EXPECT_NE(cpu.out.find("rBlocks between ranks: MPI one-sided RMA"), std::string::npos) << cpu.out;
#if !defined(INFLLM_HAVE_CUDA)
  EXPECT_NE(cpu.out.find("backends: cpu (this build has no CUDA backend"), std::string::npos)
      << cpu.out;
#endif
  const CommandResult layer = on_cpu("--version");
  ASSERT_EQ(layer.code, 0) << layer.out;
  EXPECT_NE(layer.out.find("cuda over the CUDA-on-CPU layer"), std::string::npos) << layer.out;
  EXPECT_NE(layer.out.find("registers its window with the GPU"), std::string::npos) << layer.out;
}

}  // namespace
