// documents.hpp: the input of `infllm generate`: documents from JSONL or HDF5, validated.
//
// JSONL: one object per line (blank lines skipped):
//   {"id": "doc-1", "prompt": "text ..."}                       plain text
//   {"id": 7, "tokens": [1, 2, 3]}                              token ids (id may be a number)
//   {"id": "c", "messages": [{"role": "user", "content": "hi"}]}  chat, rendered by the model
// optional: "max_new_tokens", and per-request overrides "temperature", "top_p", "top_k",
// "min_p", "seed", "min_new_tokens", "ignore_eos", "stop" (string or array of strings).
//
// HDF5: /documents/id (variable-length strings) and one of /documents/text (variable-length
// strings) or /documents/tokens (variable-length int sequences), all the same length; optional
// /documents/max_new_tokens (integers).
//
// Every problem is one InputError naming the file, the record (line N / index N and id) or the
// field, and what is wrong. The format follows the extension (.jsonl, .h5, .hdf5).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace infllm::io {

enum class FileFormat { kJsonl, kHdf5 };

// The format of `path` by extension; InputError(path, "", ...) for any other extension.
FileFormat format_from_path(const std::string& path);

struct ChatMessage {
  std::string role;
  std::string content;
};

// Per-request overrides of the run's sampling options; unset fields use the run's values.
struct SamplingOverrides {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> min_p;
  std::optional<std::uint64_t> seed;
  std::optional<int> min_new_tokens;
  std::optional<bool> ignore_eos;
  std::optional<std::vector<std::string>> stop;
};

struct Document {
  std::string id;
  // Exactly one of the three is set.
  std::optional<std::string> prompt;
  std::optional<std::vector<std::int32_t>> tokens;
  std::optional<std::vector<ChatMessage>> messages;
  std::optional<int> max_new_tokens;
  SamplingOverrides overrides;
  std::string where;  // "line 3" or "index 2": for later messages about this record
};

struct ReadOptions {
  // Token ids must be in [0, vocab_size); 0 leaves them unchecked (no model loaded yet).
  std::int64_t vocab_size = 0;
  // A JSONL line longer than this is refused (--max-record-mb): reading is a stream bounded by
  // it, so an input that never ends (a FIFO, /dev/zero) cannot grow memory without bound.
  std::int64_t max_record_bytes = std::int64_t{64} << 20;
  // Asked when a blocking open or read of the input is interrupted by a signal (a FIFO with no
  // writer yet): true ends the read with StopRequested. Empty: interrupted calls are retried.
  std::function<bool()> stop_requested;
  // When set, receives the input's file_content_hash (fingerprint.hpp), computed over the bytes
  // as they are read, so that the input is read once (JSONL; HDF5 inputs are hashed as files).
  std::string* content_hash = nullptr;
};

// Reads and validates every document of `path`.
std::vector<Document> read_documents(const std::string& path, const ReadOptions& options = {});

// Parses one JSONL record (exposed for tests); `where` is "line N".
Document parse_document_json(const std::string& path, const std::string& where,
                             const std::string& line, const ReadOptions& options);

}  // namespace infllm::io
