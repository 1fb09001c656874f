// device_test.cpp: the CUDA kernels run and agree with the host's verifiable pattern.
// Label `gpu`: every test skips cleanly where no device is present.
#include <gtest/gtest.h>

#include <vector>

#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/cuda_device.hpp"
#include "core/verifiable.hpp"
#include "kernels/verifiable_fill.cuh"

namespace infllm::cuda {
namespace {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(GpuTest, DescribesTheDevice) {
  const std::string line = describe_device(0);
  EXPECT_NE(line.find("sm_"), std::string::npos) << line;
  RecordProperty("device", line);
}

TEST_F(GpuTest, DeviceFillMatchesHostPattern) {
  constexpr std::size_t kBytes = 65536 + 13;
  void* dev = nullptr;
  INFLLM_CUDA_CHECK(cudaMalloc(&dev, kBytes));
  INFLLM_CUDA_CHECK(kernels::launch_fill_verifiable(dev, kBytes, 5, 77, nullptr));
  std::vector<std::uint8_t> host(kBytes);
  INFLLM_CUDA_CHECK(cudaMemcpy(host.data(), dev, kBytes, cudaMemcpyDeviceToHost));
  EXPECT_EQ(count_unverifiable(host.data(), kBytes, 5, 77), 0u);

  unsigned long long* bad = nullptr;
  INFLLM_CUDA_CHECK(cudaMalloc(&bad, sizeof(*bad)));
  INFLLM_CUDA_CHECK(cudaMemset(bad, 0, sizeof(*bad)));
  INFLLM_CUDA_CHECK(kernels::launch_count_unverifiable(dev, kBytes, 5, 78, bad, nullptr));
  unsigned long long wrong = 0;
  INFLLM_CUDA_CHECK(cudaMemcpy(&wrong, bad, sizeof(wrong), cudaMemcpyDeviceToHost));
  EXPECT_GT(wrong, kBytes * 9 / 10) << "another block's pattern must not verify";
  cudaFree(bad);
  cudaFree(dev);
}

}  // namespace
}  // namespace infllm::cuda
