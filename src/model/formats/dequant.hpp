// dequant.hpp: ggml tensor types (as GGUF files store them) and their conversion to f32.
//
// GGUF weights come quantized in blocks: a block of 32 (or, for the K-quants, a super-block of
// 256) consecutive elements of a row shares one or more f16 scales. infllm computes in f32, so
// the loader expands every tensor once at load time (docs/design.md: "quantized types
// dequantized at load"). The formulas are those of ggml's dequantize_row_* and are checked
// element by element against the `gguf` Python package (tests/data/model/, made by
// scripts/golden/make_gguf_golden.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace infllm::model {

// ggml's type ids (ggml.h enum ggml_type), as stored in GGUF tensor infos.
enum class GgmlType : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

// Storage geometry of a type: `block_elems` elements take `block_bytes` bytes.
struct GgmlTypeInfo {
  GgmlType type;
  const char* name;  // "Q4_K", as ggml and the gguf package name it
  std::int64_t block_elems;
  std::int64_t block_bytes;
};

// The geometry of a type infllm can dequantize, or nullopt for any other id (including ggml
// types that exist but are not supported here, e.g. the IQ* family).
std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t type_id);

// A readable name for any ggml type id ("IQ4_NL", or "type 99" when unknown), for messages.
std::string ggml_type_name(std::uint32_t type_id);

// Bytes that `elems` elements of `type` occupy. `elems` must be a multiple of the block size
// (InternalError otherwise; callers validate shapes against the block size first).
std::uint64_t ggml_row_bytes(GgmlType type, std::int64_t elems);

// Expands `src` (exactly ggml_row_bytes(type, dst.size()) bytes) into `dst` (f32 elements).
// A size mismatch is misuse (InternalError).
void dequantize(GgmlType type, std::span<const std::byte> src, std::span<float> dst);

}  // namespace infllm::model
