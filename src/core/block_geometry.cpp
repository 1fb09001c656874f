// block_geometry.cpp: see block_geometry.hpp.
#include "core/block_geometry.hpp"

#include "core/errors.hpp"

namespace infllm {

std::size_t dtype_bytes(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return 4;
    case KvDtype::kF16:
    case KvDtype::kBF16:
      return 2;
  }
  throw InternalError("dtype_bytes: unknown KvDtype");
}

const char* dtype_name(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return "f32";
    case KvDtype::kF16:
      return "f16";
    case KvDtype::kBF16:
      return "bf16";
  }
  return "?";
}

KvDtype parse_kv_dtype(const std::string& name) {
  if (name == "f32") return KvDtype::kF32;
  if (name == "f16") return KvDtype::kF16;
  if (name == "bf16") return KvDtype::kBF16;
  throw UsageError("kv-dtype", "'" + name + "' is not one of f32, f16, bf16");
}

void BlockGeometry::validate() const {
  if (block_tokens <= 0 || layers <= 0 || kv_heads <= 0 || head_dim <= 0) {
    throw InternalError("BlockGeometry: block_tokens, layers, kv_heads and head_dim must be > 0");
  }
}

}  // namespace infllm
