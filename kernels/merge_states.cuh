// merge_states.cuh: launcher for merging partial attention states on the GPU (DistAttention's
// merge of the partitions computed on different ranks), with core/attention_state.hpp's math.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace infllm::kernels {

// For each of `rows` query heads: out = merge over `parts` partitions of (o, m, l), normalized.
// o: (parts, rows, head_dim), m and l: (parts, rows), out: (rows, head_dim); device pointers.
cudaError_t launch_merge_states(const float* o, const float* m, const float* l, int parts,
                                std::int64_t rows, int head_dim, float* out, cudaStream_t stream);

}  // namespace infllm::kernels
