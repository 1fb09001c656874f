// results.hpp: the output of `infllm generate`: one record per request, written durably.
//
// JSONL output: exactly one object per request, in completion order, appended to the output
// file itself and fsync'ed in batches, so a killed job loses at most the records since the last
// sync. HDF5 output: the same records go to an append-only journal `<output>.journal` (JSONL,
// fsync'ed the same way); the HDF5 file (/results/...) is built from the journal when the run
// ends, and carries a `complete` attribute only once it is whole.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace infllm::io {

struct ResultRecord {
  std::string id;
  std::string status;         // done | rejected | failed
  std::string reason;         // why rejected or failed
  std::string finish_reason;  // stop | length (done only)
  std::vector<std::int32_t> tokens;
  std::string text;
  std::int64_t prompt_tokens = 0;
  double queue_s = 0, first_token_s = 0, total_s = 0;
  std::int64_t remote_blocks_max = 0;
  std::vector<std::int32_t> creditors;
  int preemptions = 0;
  // Per generated token, its top-N (token, logprob); empty without --logprobs.
  std::vector<std::vector<std::pair<std::int32_t, double>>> top_logprobs;
};

nlohmann::json to_json(const ResultRecord& record);
ResultRecord record_from_json(const nlohmann::json& j, const std::string& file,
                              const std::string& where);

struct OutputOptions {
  bool overwrite = false;  // replace an existing output (and journal)
  int sync_every = 8;      // fsync after this many records (and always at close)
};

// Where results go. Not thread-safe: rank 0's main thread writes.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void append(const ResultRecord& record) = 0;
  // Flushes and fsyncs what was appended; for HDF5, builds the final file.
  virtual void close() = 0;
};

// Opens the sink `path`'s extension calls for. An existing output (or journal) is refused with
// InputError unless options.overwrite; an unwritable directory is an InputError naming it.
// Run-level attributes (model, options, version) are stored in the HDF5 file.
std::unique_ptr<ResultSink> open_result_sink(const std::string& path,
                                             const OutputOptions& options,
                                             const nlohmann::json& run_attributes);

}  // namespace infllm::io
