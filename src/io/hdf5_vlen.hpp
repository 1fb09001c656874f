// hdf5_vlen.hpp: checks the variable-length entries of an HDF5 dataset (token sequences,
// variable-length strings) against the file before libhdf5 converts them.
//
// libhdf5 converts a variable-length entry by first allocating and zeroing a buffer of the
// length the entry declares, and then copying the global-heap object it points to, whatever
// that object's size. A corrupt length thus makes a 1 KB file allocate and touch up to 32 GB,
// and a length shorter than its object overruns the buffer. So before the real read, the
// entries' raw descriptors (length, heap collection address, object index) are read through a
// conversion to an opaque type that only records them, and each one is checked against the
// global heap collection it names, parsed from the file: the object must exist, and its size
// must be the declared length times the element size. Together the entries may not declare
// more bytes than the file holds, and none more than the record limit.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

namespace infllm::io {

struct VlenLimits {
  std::int64_t file_bytes = 0;        // the file's size: all entries together stay within it
  std::int64_t max_record_bytes = 0;  // one entry's bytes in the file (--max-record-mb)
};

// Throws InputError(path, where, ...) naming the first entry that fails, or the total.
// `element_bytes` is the size of one element in the file (1 for strings).
void check_vlen_entries(const std::string& path, const std::string& where, hid_t file,
                        hid_t dataset, std::size_t element_bytes, const VlenLimits& limits);

}  // namespace infllm::io
