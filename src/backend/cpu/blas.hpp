// blas.hpp: the GEMM shapes the model uses, over OpenBLAS (row-major, f32).
#pragma once

#include <cstddef>

namespace infllm::cpu {

// y (m, n) = x (m, k) . w^T, with w stored (n, k) row-major, as Hugging Face stores linear
// weights (out_features, in_features). beta = 0 overwrites y, beta = 1 accumulates.
void matmul_wt(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
               std::size_t k, float beta = 0.0f);

}  // namespace infllm::cpu
