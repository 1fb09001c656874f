// cuda_on_cpu_test.cpp: the CUDA-on-CPU layer keeps CUDA's execution model: every thread of
// every block runs with its indices, __syncthreads orders shared memory, warp shuffles follow
// CUDA's lane rules, atomics are atomic, a bad launch is an error, and the misuses that hang or
// corrupt on a GPU (a thread leaving before a barrier, a partial-warp mask) abort with a message.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/cuda_compat.cuh"
#include "kernels/device_buffer.hpp"

namespace {

using infllm::test::DeviceBuffer;

__global__ void indices_kernel(std::uint32_t* out) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[b * threads + t] = b * 1000 + t;
}

TEST(CudaOnCpu, EveryThreadOfEveryBlockRunsWithItsIndices) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const unsigned n = 12 * 24;
  DeviceBuffer<std::uint32_t> out(n);
  out.poison();
  INFLLM_LAUNCH(grid, block, 0, nullptr, indices_kernel)(out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<std::uint32_t> got = out.download();
  for (unsigned b = 0; b < 12; ++b) {
    for (unsigned t = 0; t < 24; ++t) EXPECT_EQ(got[b * 24 + t], b * 1000 + t);
  }
}

// Each block reverses its slice through shared memory: correct only if __syncthreads separates
// every write from the reads of other threads.
__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int tile[96];
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  tile[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = tile[blockDim.x - 1 - threadIdx.x];
}

TEST(CudaOnCpu, SyncthreadsOrdersSharedMemory) {
  std::vector<int> in(96 * 3);
  std::iota(in.begin(), in.end(), 0);
  DeviceBuffer<int> d_in(in), d_out(in.size());
  INFLLM_LAUNCH(3, 96, 0, nullptr, reverse_kernel)(d_in.get(), d_out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = d_out.download();
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 96; ++t) EXPECT_EQ(got[b * 96 + t], b * 96 + 95 - t);
  }
}

__global__ void shuffles_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int v = 100 + lane;
  int* row = out + threadIdx.x * 5;
  row[0] = __shfl_xor_sync(0xffffffffu, v, 5);
  row[1] = __shfl_down_sync(0xffffffffu, v, 3);
  row[2] = __shfl_up_sync(0xffffffffu, v, 2, 8);
  row[3] = __shfl_sync(0xffffffffu, v, 7, 16);
  int sum = v;
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  row[4] = sum;
}

TEST(CudaOnCpu, ShufflesFollowCudaLaneRules) {
  DeviceBuffer<int> out(64 * 5);
  INFLLM_LAUNCH(1, 64, 0, nullptr, shuffles_kernel)(out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = out.download();
  int all = 0;
  for (int l = 0; l < 32; ++l) all += 100 + l;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    SCOPED_TRACE(t);
    EXPECT_EQ(got[t * 5 + 0], 100 + (lane ^ 5));
    EXPECT_EQ(got[t * 5 + 1], 100 + (lane + 3 < 32 ? lane + 3 : lane));  // past the warp: own
    EXPECT_EQ(got[t * 5 + 2], 100 + (lane % 8 >= 2 ? lane - 2 : lane));  // below the group: own
    EXPECT_EQ(got[t * 5 + 3], 100 + (lane / 16) * 16 + 7);
    EXPECT_EQ(got[t * 5 + 4], all);
  }
}

__global__ void atomics_kernel(unsigned long long* count, float* sum, int* max) {
  atomicAdd(count, 1ull);
  atomicAdd(sum, 0.5f);
  atomicMax(max, static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x));
}

TEST(CudaOnCpu, AtomicsAreAtomicAcrossThreadsAndBlocks) {
  DeviceBuffer<unsigned long long> count(std::vector<unsigned long long>{0});
  DeviceBuffer<float> sum(std::vector<float>{0.0f});
  DeviceBuffer<int> max(std::vector<int>{-1});
  INFLLM_LAUNCH(4, 128, 0, nullptr, atomics_kernel)(count.get(), sum.get(), max.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(count.download()[0], 512u);
  EXPECT_EQ(sum.download()[0], 256.0f);
  EXPECT_EQ(max.download()[0], 511);
}

__global__ void dynamic_shared_kernel(float* out) {
  INFLLM_DYNAMIC_SHARED(float, scratch);
  scratch[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = scratch[(threadIdx.x + 1) % blockDim.x];
}

TEST(CudaOnCpu, DynamicSharedMemoryHoldsTheLaunchSize) {
  DeviceBuffer<float> out(40);
  INFLLM_LAUNCH(1, 40, 40 * sizeof(float), nullptr, dynamic_shared_kernel)(out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = out.download();
  for (int t = 0; t < 40; ++t) EXPECT_EQ(got[t], static_cast<float>((t + 1) % 40));
}

TEST(CudaOnCpu, InvalidLaunchIsTheLastErrorAndRunsNothing) {
  DeviceBuffer<std::uint32_t> out(4);
  out.poison();
  INFLLM_LAUNCH(1, 2048, 0, nullptr, indices_kernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read once
  INFLLM_LAUNCH(1, 32, 64 * 1024, nullptr, indices_kernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(out.download()[0], 0xffffffffu);
}

TEST(CudaOnCpu, CopiesCheckWhichSideIsDeviceMemory) {
  DeviceBuffer<float> dev(8);
  std::vector<float> host(8, 1.0f);
  EXPECT_EQ(cudaMemcpy(dev.get(), host.data(), 32, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(host.data(), dev.get(), 32, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(dev.get() + 4, host.data(), 32, cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);  // runs past the allocation
  EXPECT_EQ(cudaMemset(host.data(), 0, 32), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  EXPECT_TRUE(cuda_on_cpu::is_device_memory(dev.get(), 32));
  EXPECT_FALSE(cuda_on_cpu::is_device_memory(host.data(), 4));
}

__global__ void early_return_kernel(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void partial_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void divergent_shuffle_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

using CudaOnCpuDeathTest = ::testing::Test;

TEST_F(CudaOnCpuDeathTest, ThreadLeavingBeforeSyncthreadsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        DeviceBuffer<int> out(64);
        INFLLM_LAUNCH(1, 64, 0, nullptr, early_return_kernel)(out.get());
      },
      "early_return_kernel: block \\(0,0,0\\): block thread 3 returned while thread 0 waits at "
      "__syncthreads");
}

TEST_F(CudaOnCpuDeathTest, ShuffleMaskLeavingOutLanesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        DeviceBuffer<int> out(32);
        INFLLM_LAUNCH(1, 32, 0, nullptr, partial_mask_kernel)(out.get());
      },
      "every lane of the warp must take part");
}

TEST_F(CudaOnCpuDeathTest, ShuffleInDivergentCodeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        DeviceBuffer<int> out(32);
        INFLLM_LAUNCH(1, 32, 0, nullptr, divergent_shuffle_kernel)(out.get());
      },
      "divergent_shuffle_kernel: .*returned while thread 0 waits at __shfl\\*_sync");
}

}  // namespace
