// cuda_check.hpp: one checking macro for CUDA runtime calls (STYLE.md habit 4): a failure throws
// InternalError with `host file:line call: message` (the MPI layer adds the rank and aborts).
#pragma once

#include <cuda_runtime_api.h>

namespace infllm::cuda {
[[noreturn]] void cuda_fail(cudaError_t code, const char* call, const char* file, int line);
}  // namespace infllm::cuda

#define INFLLM_CUDA_CHECK(call)                                              \
  do {                                                                       \
    const cudaError_t infllm_cuda_rc_ = (call);                              \
    if (infllm_cuda_rc_ != cudaSuccess) {                                    \
      ::infllm::cuda::cuda_fail(infllm_cuda_rc_, #call, __FILE__, __LINE__); \
    }                                                                        \
  } while (0)
