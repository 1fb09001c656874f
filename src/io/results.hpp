// results.hpp: the output of `infllm generate`: one record per request, written durably.
//
// JSONL output: exactly one object per request, in completion order, appended to the output
// file itself and fsync'ed in batches, so a killed job loses at most the records since the last
// sync. HDF5 output: the same records go to an append-only journal `<output>.journal` (JSONL,
// fsync'ed the same way); the HDF5 file (/results/...) is built from the journal when the run
// ends, and carries a `complete` attribute only once it is whole.
//
// Resume: the record (JSONL output, or the journal of an HDF5 output) is read back, a torn last
// line (bytes after the last newline: a write cut by a kill) is truncated away, and new records
// are appended after the finished ones; the HDF5 file, never trusted, is rebuilt from the whole
// journal at close. The fingerprint beside the output (io/fingerprint.hpp) is checked first.
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

// Tables of the run beside its results (HDF5 output: one group each, one 1-D dataset per
// column, all columns of a table the same length). JSONL output keeps them in --metrics only.
struct RunTables {
  std::vector<std::pair<std::string, std::vector<double>>> steps;          // per step
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> ledger;  // per snapshot row
};

struct OutputOptions {
  bool overwrite = false;  // replace an existing output (and journal)
  bool resume = false;     // continue an existing output (a missing one starts fresh)
  int sync_every = 8;      // fsync after this many records (and always at close)
};

// Where results go. Not thread-safe: rank 0's main thread writes.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void append(const ResultRecord& record) = 0;
  // fsyncs what was appended so far.
  virtual void flush() = 0;
  // The run's tables, written at close where the format has room for them.
  virtual void set_tables(RunTables tables) { (void)tables; }
  // Flushes and fsyncs what was appended; for HDF5, builds the final file (earlier + new).
  virtual void close() = 0;

  // On resume: the records an earlier run finished, and the bytes of a torn last line dropped.
  const std::vector<ResultRecord>& earlier() const { return earlier_; }
  std::size_t torn_bytes_dropped() const { return torn_bytes_; }

 protected:
  std::vector<ResultRecord> earlier_;
  std::size_t torn_bytes_ = 0;
};

// The records of a JSONL output or journal. Bytes after the last newline (a torn write) are not
// parsed; with `truncate_torn` the file is cut back to the last newline and fsync'ed. A line
// that is not a record, or an id seen twice, is an InputError naming the file and line.
struct ResultLog {
  std::vector<ResultRecord> records;
  std::size_t torn_bytes = 0;
};
ResultLog read_result_log(const std::string& path, bool truncate_torn);

// Opens the sink `path`'s extension calls for. An existing output (or journal) is refused with
// InputError unless options.overwrite or options.resume; an unwritable directory is an
// InputError naming it. Run-level attributes (model, options, version) are stored in the HDF5
// file. With a `fingerprint`, a fresh output gets its `<path>.meta.json` before any record, and a
// resumed one must match it (InputError naming the output and the part that differs).
std::unique_ptr<ResultSink> open_result_sink(const std::string& path, const OutputOptions& options,
                                             const nlohmann::json& run_attributes,
                                             const nlohmann::json* fingerprint = nullptr);

}  // namespace infllm::io
