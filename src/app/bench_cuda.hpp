// bench_cuda.hpp: `infllm bench attention --backend cuda` and `infllm bench forward --backend
// cuda` (bench_cuda.cpp): the CUDA backend on GPU 0, against the device's own copy bandwidth and
// cuBLAS's own GEMM rate, measured in the same run. In a build without the CUDA backend both say
// so and exit 2.
#pragma once

#include "app/bench.hpp"

namespace infllm::app {

int run_cuda_attention(const BenchOptions& options);
int run_cuda_forward(const BenchOptions& options);

}  // namespace infllm::app
