// hdf5_file.cpp: see hdf5_file.hpp.
#include "io/hdf5_file.hpp"

#include <cerrno>
#include <cstring>

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

Hdf5Handle create_hdf5_in_memory(const std::string& name) {
  silence_hdf5_errors();
  Hdf5Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), 1 << 20, /*backing_store=*/false) < 0) {
    throw InternalError(name + ": HDF5 could not set up an in-memory file");
  }
  Hdf5Handle file(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!file.valid()) throw InternalError(name + ": HDF5 could not create an in-memory file");
  return file;
}

Hdf5Handle create_hdf5(const std::string& path) {
  silence_hdf5_errors();
  errno = 0;
  Hdf5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file.valid()) {
    const int err = errno;
    throw OutputError(path, std::string("cannot create an HDF5 file") +
                                (err != 0 ? std::string(": ") + std::strerror(err) : ""));
  }
  return file;
}

}  // namespace infllm::io
