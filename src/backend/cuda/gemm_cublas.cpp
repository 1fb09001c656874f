// gemm_cublas.cpp: Blas over cuBLAS (see gemm.hpp).
#include <cublas_v2.h>

#include <string>

#include "backend/cuda/gemm.hpp"
#include "core/errors.hpp"

namespace infllm::cuda {

namespace {

void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw InternalError(std::string(call) + ": " + cublasGetStatusString(status));
  }
}

cudaDataType_t data_type(GemmType t) {
  switch (t) {
    case GemmType::kF16:
      return CUDA_R_16F;
    case GemmType::kBF16:
      return CUDA_R_16BF;
    case GemmType::kF32:
      break;
  }
  return CUDA_R_32F;
}

}  // namespace

Blas::Blas(cudaStream_t stream) {
  cublasHandle_t h = nullptr;
  check(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  check(cublasSetStream(h, stream), "cublasSetStream");
}

Blas::~Blas() { cublasDestroy(static_cast<cublasHandle_t>(handle_)); }

void Blas::gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a,
                int lda, const void* b, int ldb, GemmType type, float beta, float* c, int ldc) {
  check(cublasGemmEx(static_cast<cublasHandle_t>(handle_), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                     trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, a, data_type(type), lda,
                     b, data_type(type), ldb, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

}  // namespace infllm::cuda
