// elem_access.cuh: f32 loads and stores of ElemType elements in kernels, through CUDA's own
// __half and __nv_bfloat16 conversions (round to nearest even).
#pragma once

#include <cstddef>

#include "kernels/cuda_compat.cuh"
#include "kernels/elem_type.hpp"

namespace infllm::kernels {

__device__ __forceinline__ float load_elem(const void* base, std::size_t i, ElemType t) {
  switch (t) {
    case ElemType::kF16:
      return __half2float(static_cast<const __half*>(base)[i]);
    case ElemType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case ElemType::kF32:
      break;
  }
  return static_cast<const float*>(base)[i];
}

__device__ __forceinline__ void store_elem(void* base, std::size_t i, ElemType t, float v) {
  switch (t) {
    case ElemType::kF16:
      static_cast<__half*>(base)[i] = __float2half_rn(v);
      return;
    case ElemType::kBF16:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
      return;
    case ElemType::kF32:
      break;
  }
  static_cast<float*>(base)[i] = v;
}

}  // namespace infllm::kernels
