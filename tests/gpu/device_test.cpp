// device_test.cpp: the CUDA kernels run and agree with the host's verifiable pattern.
// Label `gpu`: every test skips cleanly where no device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/attention.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/cuda_device.hpp"
#include "core/verifiable.hpp"
#include "kernels/merge_states.cuh"
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

namespace infllm::cuda {
namespace {

// The GPU merge against the CPU merge (backend/cpu/attention.hpp) on partitions with empty ones.
TEST_F(GpuTest, MergeStatesMatchesTheCpuMerge) {
  constexpr int kParts = 4, kRows = 6, kDim = 64;
  std::vector<float> o(kParts * kRows * kDim), m(kParts * kRows), l(kParts * kRows);
  for (std::size_t i = 0; i < o.size(); ++i) o[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  for (int p = 0; p < kParts; ++p) {
    for (int r = 0; r < kRows; ++r) {
      const bool empty = (p + r) % 3 == 0;
      m[p * kRows + r] = empty ? -INFINITY : float(p * 3 - r);
      l[p * kRows + r] = empty ? 0.0f : 1.0f + p;
      if (empty) std::fill_n(&o[(p * kRows + r) * kDim], kDim, 0.0f);
    }
  }
  std::vector<cpu::PartialsView> views;
  for (int p = 0; p < kParts; ++p) {
    views.push_back({&o[p * kRows * kDim], &m[p * kRows], &l[p * kRows]});
  }
  std::vector<float> want(kRows * kDim);
  cpu::merge_partials(views, kRows, kDim, cpu::MaOutput{want.data(), nullptr, nullptr},
                      cpu::MaResult::kNormalized);

  float *d_o, *d_m, *d_l, *d_out;
  INFLLM_CUDA_CHECK(cudaMalloc(&d_o, o.size() * 4));
  INFLLM_CUDA_CHECK(cudaMalloc(&d_m, m.size() * 4));
  INFLLM_CUDA_CHECK(cudaMalloc(&d_l, l.size() * 4));
  INFLLM_CUDA_CHECK(cudaMalloc(&d_out, want.size() * 4));
  INFLLM_CUDA_CHECK(cudaMemcpy(d_o, o.data(), o.size() * 4, cudaMemcpyHostToDevice));
  INFLLM_CUDA_CHECK(cudaMemcpy(d_m, m.data(), m.size() * 4, cudaMemcpyHostToDevice));
  INFLLM_CUDA_CHECK(cudaMemcpy(d_l, l.data(), l.size() * 4, cudaMemcpyHostToDevice));
  INFLLM_CUDA_CHECK(
      kernels::launch_merge_states(d_o, d_m, d_l, kParts, kRows, kDim, d_out, nullptr));
  std::vector<float> got(want.size());
  INFLLM_CUDA_CHECK(cudaMemcpy(got.data(), d_out, got.size() * 4, cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << i;
    EXPECT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::abs(want[i]))) << i;
  }
  cudaFree(d_o);
  cudaFree(d_m);
  cudaFree(d_l);
  cudaFree(d_out);
}

}  // namespace
}  // namespace infllm::cuda
