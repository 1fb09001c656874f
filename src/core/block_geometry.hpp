// block_geometry.hpp: the shape of one rBlock and where each layer's K and V sit inside it.
//
// An rBlock holds the K and V of `block_tokens` consecutive tokens of one request, for every
// layer. Layout (each [..] is contiguous, innermost last):
//
//   block = [layer 0: K[kv_head][token][head_dim], V[kv_head][token][head_dim]]
//           [layer 1: K ..., V ...] ... [layer L-1: ...]
//
// Tokens of one head are contiguous so micro-attention streams a head's keys with unit stride.
// block_bytes = layers * 2 * kv_heads * block_tokens * head_dim * dtype_bytes.
#pragma once

#include <cstddef>
#include <string>

namespace infllm {

enum class KvDtype { kF32, kF16, kBF16 };

std::size_t dtype_bytes(KvDtype dtype);
const char* dtype_name(KvDtype dtype);
// "f32" | "f16" | "bf16"; throws UsageError("kv-dtype") otherwise.
KvDtype parse_kv_dtype(const std::string& name);

struct BlockGeometry {
  int block_tokens = 16;
  int layers = 1;
  int kv_heads = 1;
  int head_dim = 64;
  KvDtype dtype = KvDtype::kF32;

  // Throws InternalError when a field is not positive.
  void validate() const;

  std::size_t elem_bytes() const { return dtype_bytes(dtype); }
  // Elements of one head's K (or V) in one block: block_tokens * head_dim.
  std::size_t head_elems() const {
    return static_cast<std::size_t>(block_tokens) * static_cast<std::size_t>(head_dim);
  }
  // Bytes of K (or V) of one layer: kv_heads * block_tokens * head_dim * elem.
  std::size_t layer_half_bytes() const {
    return static_cast<std::size_t>(kv_heads) * head_elems() * elem_bytes();
  }
  std::size_t layer_bytes() const { return 2 * layer_half_bytes(); }
  std::size_t block_bytes() const { return static_cast<std::size_t>(layers) * layer_bytes(); }

  // Byte offsets inside a block of K[layer][kv_head][0][0] and V[layer][kv_head][0][0].
  std::size_t k_offset(int layer, int kv_head) const {
    return static_cast<std::size_t>(layer) * layer_bytes() +
           static_cast<std::size_t>(kv_head) * head_elems() * elem_bytes();
  }
  std::size_t v_offset(int layer, int kv_head) const {
    return k_offset(layer, kv_head) + layer_half_bytes();
  }
  // Byte offset of token t (0 <= t < block_tokens) within a head's K or V run.
  std::size_t token_offset(int token) const {
    return static_cast<std::size_t>(token) * static_cast<std::size_t>(head_dim) * elem_bytes();
  }
};

}  // namespace infllm
