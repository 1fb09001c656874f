// blas.cpp: see blas.hpp.
#include "backend/cpu/blas.hpp"

#include <cblas.h>

#include "backend/cpu/attention_parallel.hpp"

namespace infllm::cpu {

void matmul_wt(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
               std::size_t k, float beta) {
  if (m == 0 || n == 0) return;
  attention_parallel_park();  // OpenBLAS's threads need the cores infllm's pool would poll on
  if (m == 1) {
    // One row (batch-1 decode): y = W x as a matrix-vector product, which streams W once.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, w,
                static_cast<int>(k), x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(k), w, static_cast<int>(k), beta, y,
              static_cast<int>(n));
}

}  // namespace infllm::cpu
