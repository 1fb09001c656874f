// elem_type.hpp: the element types of device buffers (weights, KV blocks), for host code and
// launchers; kernels read and write them through elem_access.cuh.
#pragma once

#include <cstddef>
#include <cstdint>

namespace infllm::kernels {

enum class ElemType : std::uint8_t { kF32, kF16, kBF16 };

inline std::size_t elem_type_bytes(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }

}  // namespace infllm::kernels
