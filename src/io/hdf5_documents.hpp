// hdf5_documents.hpp: the HDF5 input layout (/documents/...) read into Documents.
#pragma once

#include <string>
#include <vector>

#include "io/documents.hpp"

namespace infllm::io {

// Reads /documents/id with /documents/text or /documents/tokens (and optional
// /documents/max_new_tokens) from an existing HDF5 file; InputError on any mismatch.
std::vector<Document> read_hdf5_documents(const std::string& path, const ReadOptions& options);

}  // namespace infllm::io
