// verifiable_fill.cuh: launchers for filling and checking device buffers with the verifiable
// pattern of core/verifiable.hpp (the same function on host and device).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace infllm::kernels {

// Fills `bytes` bytes at device pointer `dst` with the pattern of (stream, block).
cudaError_t launch_fill_verifiable(void* dst, std::size_t bytes, std::uint64_t stream,
                                   std::uint64_t block, cudaStream_t cuda_stream);

// Counts the bytes of device buffer `src` that differ from the pattern; the count is written to
// the device word `bad` (which the caller zeroes).
cudaError_t launch_count_unverifiable(const void* src, std::size_t bytes, std::uint64_t stream,
                                      std::uint64_t block, unsigned long long* bad,
                                      cudaStream_t cuda_stream);

}  // namespace infllm::kernels
