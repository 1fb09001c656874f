// hdf5_file.cpp: see hdf5_file.hpp.
#include "io/hdf5_file.hpp"

#include <filesystem>

#include "core/errors.hpp"

namespace infllm::io {

void Hdf5Handle::reset() {
  if (id_ >= 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Hdf5Handle open_hdf5_read(const std::string& path) {
  silence_hdf5_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path, "", "no such file");
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());  // Debian 12 ships HDF5 1.10
#endif
  if (is_hdf5 <= 0) {
    throw InputError(path, "", "not an HDF5 file (or unreadable)");
  }
  Hdf5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw InputError(path, "", "cannot open as HDF5");
  return file;
}

Hdf5Handle create_hdf5(const std::string& path) {
  silence_hdf5_errors();
  Hdf5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file.valid()) throw InputError(path, "", "cannot create HDF5 file (directory writable?)");
  return file;
}

}  // namespace infllm::io
