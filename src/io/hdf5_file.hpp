// hdf5_file.hpp: RAII ownership of HDF5 handles and the opening of files with clear errors.
//
// HDF5's C API returns negative ids on failure and prints its own error stack; infllm turns
// both into one InputError naming the file, and closes every handle it opened (H5Xclose by type).
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

namespace infllm::io {

// Owns one HDF5 id (file, group, dataset, dataspace, datatype, property list, attribute) and
// closes it with H5Idec_ref, which works for every kind.
class Hdf5Handle {
 public:
  Hdf5Handle() = default;
  explicit Hdf5Handle(hid_t id) : id_(id) {}
  Hdf5Handle(const Hdf5Handle&) = delete;
  Hdf5Handle& operator=(const Hdf5Handle&) = delete;
  Hdf5Handle(Hdf5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Hdf5Handle& operator=(Hdf5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~Hdf5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Opens an existing HDF5 file read-only; InputError("<path>: ...") if it is missing or not HDF5.
Hdf5Handle open_hdf5_read(const std::string& path);

// Creates (truncates) an HDF5 file for writing; InputError naming the path on failure.
// Throws OutputError naming `path` and the OS error when the file cannot be created.
Hdf5Handle create_hdf5(const std::string& path);
// A file that lives in memory only (HDF5's core driver, no backing store); its bytes come from
// H5Fget_file_image. `name` is for messages.
Hdf5Handle create_hdf5_in_memory(const std::string& name);

// Silences HDF5's automatic error printing for this process (errors become InputError instead).
void silence_hdf5_errors();

}  // namespace infllm::io
