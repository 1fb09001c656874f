// cuda_device.cpp: see cuda_device.hpp and cuda_check.hpp.
#include "backend/cuda/cuda_device.hpp"

#include <cublas_v2.h>
#include <nccl.h>

#include <sstream>

#include "backend/cuda/cuda_check.hpp"
#include "core/errors.hpp"

namespace infllm::cuda {

std::string describe_device(int device) {
  cudaDeviceProp prop{};
  INFLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int runtime = 0;
  INFLLM_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  int nccl = 0;
  ncclGetVersion(&nccl);
  std::ostringstream os;
  os << "cuda:" << device << ' ' << prop.name << " sm_" << prop.major << prop.minor << ' '
     << (prop.totalGlobalMem >> 20) << " MiB, runtime " << runtime << ", cuBLAS "
     << cublasGetCudartVersion() << ", NCCL " << nccl;
  return os.str();
}

}  // namespace infllm::cuda
