// gemm_on_cpu.cpp: Blas's CPU twin for the CUDA-on-CPU build (see gemm.hpp): cublasGemmEx's
// contract computed directly, with the argument checks cuBLAS makes (CUBLAS_STATUS_INVALID_VALUE)
// and one more it cannot: every operand lies in memory the layer allocated as device memory.
#include <cmath>
#include <cstring>
#include <string>

#include "backend/cuda/gemm.hpp"
#include "core/errors.hpp"
#include "kernels/elem_access.cuh"
#include "kernels/emulation/cuda_on_cpu.hpp"

namespace infllm::cuda {

Blas::Blas(cudaStream_t stream) { (void)stream; }

Blas::~Blas() = default;

void Blas::gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a,
                int lda, const void* b, int ldb, GemmType type, float beta, float* c, int ldc) {
  const int a_rows = trans_a ? k : m, b_rows = trans_b ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) ||
      ldc < std::max(1, m)) {
    throw InternalError("cublasGemmEx: invalid value (m " + std::to_string(m) + ", n " +
                        std::to_string(n) + ", k " + std::to_string(k) + ", lda " +
                        std::to_string(lda) + ", ldb " + std::to_string(ldb) + ", ldc " +
                        std::to_string(ldc) + ")");
  }
  if (m == 0 || n == 0) return;
  // The extent of each operand, as column-major storage: its last column's last element.
  const std::size_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  const auto extent = [](std::size_t rows, std::size_t cols, int ld) {
    return cols == 0 ? 0 : (cols - 1) * static_cast<std::size_t>(ld) + rows;
  };
  if ((k > 0 && (!cuda_on_cpu::is_device_memory(
                     a, extent(a_rows, a_cols, lda) * kernels::elem_type_bytes(type)) ||
                 !cuda_on_cpu::is_device_memory(
                     b, extent(b_rows, b_cols, ldb) * kernels::elem_type_bytes(type)))) ||
      !cuda_on_cpu::is_device_memory(c, extent(m, n, ldc) * sizeof(float))) {
    throw InternalError("cublasGemmEx: an operand is not device memory (cuda_on_cpu)");
  }
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double sum = 0.0;
      for (int p = 0; p < k; ++p) {
        const std::size_t ai =
            trans_a ? p + static_cast<std::size_t>(i) * lda : i + static_cast<std::size_t>(p) * lda;
        const std::size_t bi =
            trans_b ? j + static_cast<std::size_t>(p) * ldb : p + static_cast<std::size_t>(j) * ldb;
        sum +=
            static_cast<double>(kernels::load_elem(a, ai, type)) * kernels::load_elem(b, bi, type);
      }
      float& out = c[i + static_cast<std::size_t>(j) * ldc];
      const double prior = beta == 0.0f ? 0.0 : static_cast<double>(beta) * out;
      out = static_cast<float>(alpha * sum + prior);
    }
  }
}

}  // namespace infllm::cuda
