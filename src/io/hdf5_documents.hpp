// hdf5_documents.hpp: the HDF5 input layout (/documents/...) read into Documents.
#pragma once

#include <string>
#include <vector>

#include "io/documents.hpp"

namespace infllm::io {

// Reads /documents/id with /documents/text or /documents/tokens (and optional
// /documents/max_new_tokens) from an existing HDF5 file; InputError on any mismatch.
//
// The file is read in a child process (io/hdf5_isolated.hpp), so that libhdf5 crashing on a
// corrupt file is one InputError naming it. What infllm can check itself (the variable-length
// entries, the extents, the record limit) it checks before libhdf5 reads (io/hdf5_vlen.hpp).
std::vector<Document> read_hdf5_documents(const std::string& path, const ReadOptions& options);

// The same read in this process (the fuzz target uses it, for coverage and the sanitizers).
std::vector<Document> read_hdf5_documents_in_process(const std::string& path,
                                                     const ReadOptions& options);

}  // namespace infllm::io
