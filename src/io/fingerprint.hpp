// fingerprint.hpp: what an output was made from, stored beside it so `--resume` can refuse to
// continue an output with another model, input or output-changing options.
//
// NOTE: the fingerprint lives in a sidecar `<output>.meta.json`, written (temp file, fsync,
// rename, fsync of the directory) before the output or its journal is created. A sidecar rather
// than a field in every record: it exists even when no record has been written yet, it is read
// without scanning the output, and the records keep the schema of docs/usage.md.
//
// Identities are content hashes (FNV-1a 64, hex), never paths or mtimes, so a model or input
// copied to another file system still matches:
//   model  HF directory: config.json's bytes, then per *.safetensors (sorted by name): name,
//          size, first and last MiB; GGUF file: size, first and last MiB (header and metadata,
//          and weights at both ends, so a reseeded model of the same shape differs)
//   input  every byte of the file
//   options  the options that change outputs (sampling, stopping, seed, logprobs); block size,
//          batching, threads and pool size do not (docs/design.md, Determinism)
// Paths are recorded for people (`infllm inspect`) and not compared.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace infllm::io {

// FNV-1a 64 of a file's bytes as 16 hex digits; InputError naming the file if unreadable.
std::string file_content_hash(const std::string& path);

// The same hash over bytes as they stream by (the input reader hashes what it reads, so that
// an input is read once, and a FIFO can be an input).
class ContentHash {
 public:
  void add(const void* data, std::size_t n);
  std::string hex() const;

 private:
  std::uint64_t h_ = 1469598103934665603ull;  // FNV-1a 64 offset basis
};

// The content identity of a model (HF directory or GGUF file), as described above.
std::string model_identity(const std::string& path);

// {"model": {"path", "identity"}, "input": {"path", "hash"}, "options": options,
//  "requests": requests, "version": 1}
// `input_hash`: the input's file_content_hash when the reader already computed it while
// reading ("" = hash the file now).
nlohmann::json make_fingerprint(const std::string& model_path, const std::string& input_path,
                                const nlohmann::json& options, std::int64_t requests,
                                const std::string& input_hash = "");

std::string meta_path(const std::string& output);

// Writes `<output>.meta.json` durably (see the NOTE above).
void write_meta(const std::string& output, const nlohmann::json& fingerprint);

// The stored fingerprint, or nullopt when there is no sidecar; InputError if it is not JSON.
std::optional<nlohmann::json> read_meta(const std::string& output);

// Throws InputError naming the output and the first part that differs (model, input, or the
// option by name) when `stored` and `current` disagree.
void check_fingerprint(const std::string& output, const nlohmann::json& stored,
                       const nlohmann::json& current);

}  // namespace infllm::io
