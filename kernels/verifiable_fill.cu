// verifiable_fill.cu: device fill and check of verifiable blocks (see verifiable_fill.cuh).
// GPU tests use them to check blocks that moved between device buffers without a host copy of
// the expected data.
#include "kernels/verifiable_fill.cuh"

#include "kernels/cuda_compat.cuh"

#include "core/verifiable.hpp"

namespace infllm::kernels {

namespace {

__global__ void fill_verifiable_kernel(std::uint8_t* dst, std::size_t bytes, std::uint64_t stream,
                                       std::uint64_t block) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < bytes;
       i += std::size_t{gridDim.x} * blockDim.x) {
    dst[i] = verifiable_byte(stream, block, i);
  }
}

__global__ void count_unverifiable_kernel(const std::uint8_t* src, std::size_t bytes,
                                          std::uint64_t stream, std::uint64_t block,
                                          unsigned long long* bad) {
  unsigned long long mine = 0;
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < bytes;
       i += std::size_t{gridDim.x} * blockDim.x) {
    mine += src[i] != verifiable_byte(stream, block, i);
  }
  if (mine != 0) atomicAdd(bad, mine);
}

unsigned grid_for(std::size_t bytes, unsigned threads) {
  const std::size_t blocks = (bytes + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 4096 ? (blocks == 0 ? 1 : blocks) : 4096);
}

}  // namespace

cudaError_t launch_fill_verifiable(void* dst, std::size_t bytes, std::uint64_t stream,
                                   std::uint64_t block, cudaStream_t cuda_stream) {
  constexpr unsigned kThreads = 256;
  INFLLM_LAUNCH(grid_for(bytes, kThreads), kThreads, 0, cuda_stream, fill_verifiable_kernel)
  (static_cast<std::uint8_t*>(dst), bytes, stream, block);
  return cudaGetLastError();
}

cudaError_t launch_count_unverifiable(const void* src, std::size_t bytes, std::uint64_t stream,
                                      std::uint64_t block, unsigned long long* bad,
                                      cudaStream_t cuda_stream) {
  constexpr unsigned kThreads = 256;
  INFLLM_LAUNCH(grid_for(bytes, kThreads), kThreads, 0, cuda_stream, count_unverifiable_kernel)
  (static_cast<const std::uint8_t*>(src), bytes, stream, block, bad);
  return cudaGetLastError();
}

}  // namespace infllm::kernels
