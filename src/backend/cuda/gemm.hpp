// gemm.hpp: the one door to cuBLAS. Every GEMM of the CUDA backend is Blas::gemm, which has
// cublasGemmEx's contract; gemm_cublas.cpp calls cuBLAS, gemm_on_cpu.cpp is its CPU twin for the
// CUDA-on-CPU build (the unit tests), with the same contract and checks.
//
//   C (m, n) = alpha * op(A) (m, k) . op(B) (k, n) + beta * C
//
// Column-major, as cuBLAS: element (i, j) of a matrix with leading dimension ld is at i + j * ld;
// op(X) is X or its transpose. A and B have one element type (f32, f16 or bf16), C is f32, the
// products are summed in f32 (CUBLAS_COMPUTE_32F). With beta = 0, C is not read (NaN in C does
// not propagate). A row-major y (rows, n) = x (rows, k) . W^T with W (n, k) row-major is
// gemm(T, N, n, rows, k, 1, W, k, x, k, 0, y, n).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/elem_type.hpp"

namespace infllm::cuda {

// The element types of the GEMM inputs are the kernels' (kernels/elem_type.hpp).
using GemmType = kernels::ElemType;

class Blas {
 public:
  // A cuBLAS handle whose work goes onto `stream`.
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // Throws InternalError naming the call on a bad argument (a leading dimension too small, types
  // that differ) or a cuBLAS failure.
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a, int lda,
            const void* b, int ldb, GemmType type, float beta, float* c, int ldc);

 private:
  void* handle_ = nullptr;  // cublasHandle_t (none in the CPU twin)
};

}  // namespace infllm::cuda
