// hdf5_vlen.cpp: see hdf5_vlen.hpp. The global heap collection layout follows the HDF5 file
// format specification (section III.E): "GCOL", version 1, three reserved bytes, the
// collection's size; then objects, each a 2-byte index, a 2-byte reference count, four reserved
// bytes, the object's size and its data padded to 8 bytes; index 0 is the free space, whose size
// counts its own header.
#include "io/hdf5_vlen.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/errors.hpp"
#include "io/hdf5_file.hpp"

namespace infllm::io {

namespace {

// The opaque type the descriptors are "converted" to; only record_descriptors converts to it.
constexpr char kDescriptorTag[] = "infllm: raw variable-length descriptor";
constexpr std::size_t kOpaqueBytes = 16;

struct Descriptor {
  std::uint64_t length = 0;
  std::uint64_t address = 0;
  std::uint64_t index = 0;
};

// Where record_descriptors puts what it sees during one H5Dread on this thread.
thread_local std::vector<Descriptor>* g_collector = nullptr;

std::uint64_t load_le(const unsigned char* p, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

bool is_descriptor_type(hid_t t) {
  if (H5Tget_class(t) != H5T_OPAQUE) return false;
  char* tag = H5Tget_tag(t);
  const bool ours = tag != nullptr && std::strcmp(tag, kDescriptorTag) == 0;
  H5free_memory(tag);
  return ours;
}

// A libhdf5 conversion function from a variable-length type in its file form (a 4-byte length,
// the heap collection's address, a 4-byte object index) to the descriptor type: it records the
// source elements and leaves the destination as it is.
herr_t record_descriptors(hid_t src, hid_t dst, H5T_cdata_t* cdata, std::size_t count,
                          std::size_t buf_stride, std::size_t /*bkg_stride*/, void* buf,
                          void* /*bkg*/, hid_t /*dxpl*/) noexcept {
  switch (cdata->command) {
    case H5T_CONV_INIT: {
      const bool variable = H5Tget_class(src) == H5T_VLEN || H5Tis_variable_str(src) > 0;
      if (!variable || !is_descriptor_type(dst)) return -1;
      cdata->need_bkg = H5T_BKG_NO;
      return 0;
    }
    case H5T_CONV_FREE:
      return 0;
    case H5T_CONV_CONV: {
      const std::size_t size = H5Tget_size(src);
      if (g_collector == nullptr || size < 4 + 2 + 4 || size > kOpaqueBytes) return -1;
      const std::size_t address_bytes = size - 8;
      const std::size_t stride = buf_stride != 0 ? buf_stride : size;
      const auto* bytes = static_cast<const unsigned char*>(buf);
      try {
        for (std::size_t i = 0; i < count; ++i) {
          const unsigned char* p = bytes + i * stride;
          g_collector->push_back(
              {load_le(p, 4), load_le(p + 4, address_bytes), load_le(p + 4 + address_bytes, 4)});
        }
      } catch (...) {
        return -1;
      }
      return 0;
    }
    default:
      return -1;
  }
}

// Registers record_descriptors with libhdf5 for its lifetime. Soft conversions are chosen by
// type class (any sequence or string to an opaque type); the function's INIT accepts only
// variable-length sources and the tagged opaque. Registered per read, not once per process, so
// that nothing outlives it (H5close drops registrations; an unregistered path is simply absent).
class DescriptorConversion {
 public:
  DescriptorConversion() : opaque_(H5Tcreate(H5T_OPAQUE, kOpaqueBytes)) {
    H5Tset_tag(opaque_.get(), kDescriptorTag);
    H5Tset_size(string_.get(), H5T_VARIABLE);
    if (H5Tregister(H5T_PERS_SOFT, kSequenceName, sequence_.get(), opaque_.get(),
                    record_descriptors) < 0 ||
        H5Tregister(H5T_PERS_SOFT, kStringName, string_.get(), opaque_.get(), record_descriptors) <
            0) {
      unregister();
      throw std::runtime_error("libhdf5 refused the descriptor conversion (H5Tregister)");
    }
  }
  DescriptorConversion(const DescriptorConversion&) = delete;
  DescriptorConversion& operator=(const DescriptorConversion&) = delete;
  ~DescriptorConversion() { unregister(); }

  hid_t opaque() const { return opaque_.get(); }

 private:
  static constexpr char kSequenceName[] = "infllm vlen descriptors";
  static constexpr char kStringName[] = "infllm vlen string descriptors";

  void unregister() {
    H5Tunregister(H5T_PERS_SOFT, kSequenceName, sequence_.get(), opaque_.get(), record_descriptors);
    H5Tunregister(H5T_PERS_SOFT, kStringName, string_.get(), opaque_.get(), record_descriptors);
  }

  Hdf5Handle opaque_;
  Hdf5Handle sequence_{H5Tvlen_create(H5T_NATIVE_INT)};
  Hdf5Handle string_{H5Tcopy(H5T_C_S1)};
};

class FileReader {
 public:
  explicit FileReader(const std::string& path)
      : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw InputError(path, "", std::string("cannot open: ") + std::strerror(errno));
  }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  ~FileReader() { ::close(fd_); }

  // Reads exactly `bytes` at `offset`; false when the file ends first.
  bool read(std::uint64_t offset, void* out, std::size_t bytes) const {
    auto* p = static_cast<char*>(out);
    while (bytes > 0) {
      const ssize_t got = ::pread(fd_, p, bytes, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw InputError(path_, "", std::string("cannot read: ") + std::strerror(errno));
      if (got == 0) return false;
      p += got;
      offset += static_cast<std::uint64_t>(got);
      bytes -= static_cast<std::size_t>(got);
    }
    return true;
  }

 private:
  std::string path_;
  int fd_;
};

std::uint64_t align8(std::uint64_t x) { return (x + 7) / 8 * 8; }

// The object sizes of the global heap collections the descriptors name, each collection parsed
// once. Every bound is checked against the collection and the file, so a corrupt collection is
// refused rather than followed.
class GlobalHeaps {
 public:
  GlobalHeaps(const std::string& path, const std::string& where, std::uint64_t file_bytes,
              std::uint64_t base, std::size_t size_bytes)
      : path_(path),
        where_(where),
        reader_(path),
        file_bytes_(file_bytes),
        base_(base),
        size_bytes_(size_bytes) {}

  // The size of object `index` of the collection at `address`, or throws naming `entry`.
  std::uint64_t object_size(std::uint64_t address, std::uint64_t index, const std::string& entry) {
    auto it = collections_.find(address);
    if (it == collections_.end()) it = collections_.emplace(address, parse(address, entry)).first;
    const auto object = it->second.find(index);
    if (index == 0 || object == it->second.end()) {
      refuse(entry, "points to object " + std::to_string(index) + " of the global heap at " +
                        std::to_string(address) + ", which does not exist (a corrupt file)");
    }
    return object->second;
  }

 private:
  [[noreturn]] void refuse(const std::string& entry, const std::string& problem) const {
    throw InputError(path_, where_ + ", " + entry, problem);
  }

  std::unordered_map<std::uint64_t, std::uint64_t> parse(std::uint64_t address,
                                                         const std::string& entry) {
    const std::uint64_t header = align8(8 + size_bytes_);
    const std::uint64_t object_header = align8(8 + size_bytes_);
    const std::string what = "the global heap at " + std::to_string(address);
    const std::uint64_t at = base_ + address;
    if (address > file_bytes_ || at > file_bytes_ || file_bytes_ - at < header) {
      refuse(entry, "points to " + what + ", past the end of the file (a corrupt file)");
    }
    std::vector<unsigned char> head(header);
    if (!reader_.read(at, head.data(), head.size()) || std::memcmp(head.data(), "GCOL", 4) != 0 ||
        head[4] != 1) {
      refuse(entry,
             "points to " + what + ", which is not a global heap collection (a corrupt file)");
    }
    const std::uint64_t size = load_le(head.data() + 8, size_bytes_);
    if (size < header || size > file_bytes_ - at) {
      refuse(entry, what + " declares " + std::to_string(size) +
                        " bytes, which the file does not hold (a corrupt file)");
    }
    std::vector<unsigned char> body(size);
    if (!reader_.read(at, body.data(), body.size())) {
      refuse(entry, what + " ends before its declared size (a corrupt file)");
    }
    std::unordered_map<std::uint64_t, std::uint64_t> objects;
    std::uint64_t p = header;
    while (p < size) {
      if (size - p < object_header) break;  // a tail too small for a header is free space
      const std::uint64_t index = load_le(body.data() + p, 2);
      const std::uint64_t bytes = load_le(body.data() + p + 8, size_bytes_);
      if (bytes > size)
        refuse(entry, what + " holds an object larger than itself (a corrupt file)");
      const std::uint64_t need = index == 0 ? bytes : object_header + align8(bytes);
      if (need == 0 || need > size - p) {
        refuse(entry, what + " holds an object that overruns it (a corrupt file)");
      }
      if (index != 0 && !objects.emplace(index, bytes).second) {
        refuse(entry, what + " holds object " + std::to_string(index) + " twice (a corrupt file)");
      }
      p += need;
    }
    return objects;
  }

  std::string path_;
  std::string where_;
  FileReader reader_;
  std::uint64_t file_bytes_;
  std::uint64_t base_;
  std::size_t size_bytes_;
  std::map<std::uint64_t, std::unordered_map<std::uint64_t, std::uint64_t>> collections_;
};

std::string mib(std::int64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

void check_vlen_entries(const std::string& path, const std::string& where, hid_t file,
                        hid_t dataset, std::size_t element_bytes, const VlenLimits& limits) {
  Hdf5Handle space(H5Dget_space(dataset));
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0) throw InputError(path, where, "cannot read the dataset's extent");

  std::vector<Descriptor> descriptors;
  descriptors.reserve(static_cast<std::size_t>(count));
  {
    const DescriptorConversion conversion;
    std::vector<unsigned char> sink(static_cast<std::size_t>(count) * kOpaqueBytes);
    g_collector = &descriptors;
    const herr_t read =
        H5Dread(dataset, conversion.opaque(), H5S_ALL, H5S_ALL, H5P_DEFAULT, sink.data());
    g_collector = nullptr;
    if (read < 0) throw InputError(path, where, "cannot read the variable-length entries");
  }

  Hdf5Handle fcpl(H5Fget_create_plist(file));
  std::size_t address_bytes = 0;
  std::size_t size_bytes = 0;
  hsize_t userblock = 0;
  if (H5Pget_sizes(fcpl.get(), &address_bytes, &size_bytes) < 0 ||
      H5Pget_userblock(fcpl.get(), &userblock) < 0 || size_bytes < 2 || size_bytes > 8) {
    throw InputError(path, where, "cannot read the file's address and length sizes");
  }
  const auto file_bytes = static_cast<std::uint64_t>(limits.file_bytes);
  GlobalHeaps heaps(path, where, file_bytes, userblock, size_bytes);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < descriptors.size(); ++i) {
    const Descriptor& d = descriptors[i];
    // Address 0 is a null entry, which libhdf5 does not read; any other is read whole, even
    // at length 0, so it must exist and match.
    if (d.address == 0) continue;
    const std::string entry = "index " + std::to_string(i);
    const std::uint64_t declared = d.length * element_bytes;  // length < 2^32, element <= 2^16
    const std::uint64_t stored = heaps.object_size(d.address, d.index, entry);
    if (declared != stored) {
      throw InputError(path, where + ", " + entry,
                       "declares " + std::to_string(d.length) + " elements of " +
                           std::to_string(element_bytes) + " bytes but its heap object holds " +
                           std::to_string(stored) + " bytes (a corrupt file)");
    }
    if (limits.max_record_bytes > 0 &&
        declared > static_cast<std::uint64_t>(limits.max_record_bytes)) {
      throw InputError(path, where + ", " + entry,
                       "holds " + std::to_string(declared) + " bytes, more than " +
                           mib(limits.max_record_bytes) + " (--max-record-mb)");
    }
    total += declared;
    if (total > file_bytes) {
      throw InputError(path, where,
                       "the entries up to " + entry + " declare " + std::to_string(total) +
                           " bytes, more than the file's " + std::to_string(file_bytes) +
                           " (entries that share heap objects: a corrupt file)");
    }
  }
}

}  // namespace infllm::io
