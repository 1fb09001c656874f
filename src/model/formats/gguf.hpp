// gguf.hpp: a reader of GGUF (version 2 and 3) files: metadata, tensor directory, tensor data.
//
// GGUF is llama.cpp's single-file model format: a header, key/value metadata (architecture
// hyper-parameters under `llama.*`, the tokenizer under `tokenizer.*`), a directory of tensors
// (name, dimensions, ggml type, offset) and the aligned tensor data. This reader keeps every
// metadata value (the tokenizer reads its arrays from here) and checks every tensor's byte range
// against the file size at open. Tensors of any type are listed (so `infllm inspect` can show
// them); reading one whose type infllm cannot dequantize is an InputError naming the tensor.
//
// Dimensions: GGUF lists them innermost first (ggml's ne[0] is the contiguous one); `shape` here
// is reversed to PyTorch order, so a linear weight stored with ne = [in, out] has shape
// [out, in] and its row-major f32 expansion is exactly Hugging Face's layout.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/formats/mapped_file.hpp"

namespace infllm::model {

// GGUF metadata value types (gguf.h enum gguf_type).
enum class GgufValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Scalars: integers and bools in `i` (UINT64 beyond INT64_MAX is an
// InputError), floats in `f`, a string in `s`. Arrays: `elem_type`, and the elements in `ints`,
// `floats` or `strings` by element kind (nested arrays are not supported).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  GgufValueType elem_type = GgufValueType::kUint8;  // arrays only
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_array() const { return type == GgufValueType::kArray; }
  bool is_integer() const;  // any integer type or bool, scalar
  bool is_float() const {
    return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
  }
  std::size_t array_size() const { return ints.size() + floats.size() + strings.size(); }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;  // outermost first (reversed ggml ne)
  std::uint32_t type_id = 0;        // ggml type id; see dequant.hpp
  std::uint64_t offset = 0;         // absolute byte offset in the file
  std::uint64_t bytes = 0;          // 0 when the type is not one infllm knows
  std::int64_t numel() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws InputError on bad magic, an unsupported version, truncated
  // metadata or directory, or tensor data outside the file.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Metadata access. `find` returns nullptr when absent; the typed getters throw InputError
  // naming the key when it is absent (required forms) or of the wrong type.
  const GgufValue* find(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  std::optional<std::int64_t> get_int_opt(const std::string& key) const;
  std::optional<double> get_float_opt(const std::string& key) const;  // ints accepted too
  std::optional<std::string> get_string_opt(const std::string& key) const;
  std::optional<bool> get_bool_opt(const std::string& key) const;

  // The tensor expanded to f32 (row-major in `shape`). Throws InputError when its type cannot be
  // dequantized.
  std::vector<float> read_f32(const GgufTensorInfo& tensor) const;
  // The tensor's bytes as stored (bounds-checked against the file).
  std::span<const std::byte> raw(const GgufTensorInfo& tensor) const;

 private:
  MappedFile file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace infllm::model
