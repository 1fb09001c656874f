// elementwise.cuh: launchers of the forward pass's row-wise kernels (embedding gather, RMSNorm,
// RoPE, SwiGLU, bias, dtype conversion). Every pointer is device memory, index arrays included;
// shapes are row-major as in backend/backend.hpp. Each returns the launch's error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/elem_type.hpp"

namespace infllm::kernels {

// y (n_rows, n) f32 = rows `rows` of table (any, n) stored as `type`.
cudaError_t launch_gather_rows(const void* table, ElemType type, const std::int32_t* rows,
                               std::size_t n_rows, std::size_t n, float* y, cudaStream_t stream);

// y (rows, dim) = x / sqrt(mean(x^2) + eps) * gain; y may be x.
cudaError_t launch_rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                            std::size_t dim, float eps, cudaStream_t stream);

// x (rows, heads, head_dim) rotated in place, Hugging Face's rotate_half convention: angle =
// f32(position) * inv_freq[i] in f32, cos and sin times `scale`.
cudaError_t launch_rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                        int head_dim, const float* inv_freq, float scale, cudaStream_t stream);

// gate (n) = silu(gate) * up.
cudaError_t launch_silu_mul(float* gate, const float* up, std::size_t n, cudaStream_t stream);

// y (rows, n) += bias (n).
cudaError_t launch_add_bias(float* y, const float* bias, std::size_t rows, std::size_t n,
                            cudaStream_t stream);

// y (n) = x (n) f32 converted to `type`, rounding to nearest even.
cudaError_t launch_convert(const float* x, void* y, ElemType type, std::size_t n,
                           cudaStream_t stream);

}  // namespace infllm::kernels
