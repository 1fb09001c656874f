// safetensors.hpp: reading and writing the safetensors format of Hugging Face checkpoints.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}) and the
// raw tensor bytes, row-major, offsets relative to the end of the header. Reading maps the file
// and checks every tensor's byte range against the file size and against its dtype and shape
// before any byte is touched, so a truncated or corrupt file is an InputError naming the file
// and the tensor. infllm reads F32, F16 and BF16 and converts to f32.
//
// Writing (make-model) streams: the caller gives names, dtypes and shapes up front and a fill
// function producing f32 values by element index, converted chunk by chunk, so a 1B-parameter
// model is written without holding it in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/formats/mapped_file.hpp"

namespace infllm::model {

enum class StDtype { kF32, kF16, kBF16 };

// "F32", "F16", "BF16" (the safetensors spelling).
const char* st_dtype_name(StDtype dtype);
std::int64_t st_dtype_bytes(StDtype dtype);
// Parses "f32" | "f16" | "bf16" (make-model's --dtype) or the safetensors spelling; nullopt if
// neither.
std::optional<StDtype> parse_st_dtype(const std::string& name);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;                // as written in the header, e.g. "BF16" or "I64"
  std::vector<std::int64_t> shape;  // outermost first (PyTorch order)
  std::uint64_t begin = 0;          // absolute byte offsets in the file: [begin, end)
  std::uint64_t end = 0;
  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and parses `path`. Throws InputError on a truncated file, a header that is not JSON,
  // a tensor whose offsets fall outside the data or disagree with its dtype and shape.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  // Tensors in header order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const SafetensorsTensor* find(const std::string& name) const;
  // The string metadata ("__metadata__"), e.g. {"format": "pt"}.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor converted to f32, row-major. Throws InputError when its dtype is not F32, F16 or
  // BF16.
  std::vector<float> read_f32(const SafetensorsTensor& tensor) const;

 private:
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `fill(first, out)` stores elements [first, first + out.size()) of the
// tensor (row-major) as f32; they are converted to `dtype` on the way out.
struct SafetensorsEntry {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<std::int64_t> shape;
  std::function<void(std::int64_t first, std::span<float> out)> fill;
};

// Writes `entries` in order to `path` (replaced atomically: written to `path.tmp`, then
// renamed). Throws InputError when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace infllm::model
