// hdf5_results.hpp: the HDF5 results file, built in one go from the run's records.
//
// Layout (every dataset one-dimensional, one entry per request, in completion order):
//   /results/id, status, reason, finish_reason, text    variable-length UTF-8 strings
//   /results/tokens, creditors                         variable-length int32 sequences
//   /results/prompt_tokens, generated_tokens,
//            remote_blocks_max, preemptions            int64
//   /results/queue_s, first_token_s, total_s           float64
//   /steps/<column>   float64, one entry per engine step of the run (RunTables::steps)
//   /ledger/<column>  int64 rows of debt-ledger snapshots: step, debtor, creditor, blocks
//   root attributes: `run` (JSON text: model, options, ranks, version) and `complete` (= 1)
// The file is written to `<path>.tmp` and renamed into place, so a reader never sees a partial
// file; `complete` is the last thing written.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/results.hpp"

namespace infllm::io {

void write_hdf5_results(const std::string& path, const std::vector<ResultRecord>& records,
                        const nlohmann::json& run_attributes, const RunTables* tables = nullptr);

// Reads /results back (for `inspect`, resume and tests); InputError when absent or incomplete.
std::vector<ResultRecord> read_hdf5_results(const std::string& path);

}  // namespace infllm::io
