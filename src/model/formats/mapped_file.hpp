// mapped_file.hpp: a read-only memory map of a model file with bounds-checked views.
//
// Model files (safetensors, GGUF) are large and read once at load; mapping them avoids a copy and
// lets the loaders convert tensors straight from the page cache. Every view asked of the map is
// checked against the file size first, so a corrupt header (an offset past the end, a length that
// overflows) becomes an InputError naming the file instead of a read past the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace infllm::model {

class MappedFile {
 public:
  // Maps `path` read-only. Throws InputError when it cannot be opened or mapped.
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

  // Bytes [offset, offset + length) of the file. Throws InputError("<what>: bytes [a, b) lie
  // outside the file of N bytes") when the range does not fit, overflow included.
  std::span<const std::byte> bytes(std::uint64_t offset, std::uint64_t length,
                                   const std::string& what) const;

 private:
  void release() noexcept;

  std::string path_;
  const std::byte* data_ = nullptr;  // nullptr for an empty file
  std::uint64_t size_ = 0;           // bytes
};

}  // namespace infllm::model
