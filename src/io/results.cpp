// results.cpp: JSONL records, the fsync'ed append-only log, and the HDF5 results file built from
// its journal (see results.hpp).
#include "io/results.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/fingerprint.hpp"
#include "io/hdf5_results.hpp"
#include "io/write_file.hpp"

namespace infllm::io {

using nlohmann::json;

json to_json(const ResultRecord& r) {
  json j = {{"id", r.id},
            {"status", r.status},
            {"reason", r.reason},
            {"finish_reason", r.finish_reason},
            {"tokens", r.tokens},
            {"text", r.text},
            {"prompt_tokens", r.prompt_tokens},
            {"generated_tokens", r.tokens.size()},
            {"queue_s", r.queue_s},
            {"first_token_s", r.first_token_s},
            {"total_s", r.total_s},
            {"remote_blocks_max", r.remote_blocks_max},
            {"creditors", r.creditors},
            {"preemptions", r.preemptions}};
  if (!r.top_logprobs.empty()) {
    json per_token = json::array();
    for (const auto& top : r.top_logprobs) {
      json entries = json::array();
      for (const auto& [token, logprob] : top)
        entries.push_back({{"token", token}, {"logprob", logprob}});
      per_token.push_back(std::move(entries));
    }
    j["top_logprobs"] = std::move(per_token);
  }
  return j;
}

ResultRecord record_from_json(const json& j, const std::string& file, const std::string& where) {
  // nlohmann's get<int>() of a float, or of an integer too large, converts without a check (a
  // float out of range is undefined behaviour): integers are checked here.
  const auto integer = [&](const json& v, const std::string& field, std::int64_t lo,
                           std::int64_t hi) {
    if (!v.is_number_integer()) throw InputError(file, where, field + " is not an integer");
    const bool fits = v.is_number_unsigned()
                          ? v.get<std::uint64_t>() <= std::uint64_t(hi)
                          : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
    if (!fits) {
      throw InputError(file, where,
                       field + " " + v.dump() + " is outside [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
    }
    return v.get<std::int64_t>();
  };
  const auto integers = [&](const json& v, const std::string& field) {
    if (!v.is_array()) throw InputError(file, where, field + " is not a list");
    std::vector<std::int32_t> out;
    out.reserve(v.size());
    for (const auto& e : v) out.push_back(std::int32_t(integer(e, field, 0, INT32_MAX)));
    return out;
  };
  const auto count = [&](const char* field) -> std::int64_t {
    return j.contains(field) ? integer(j[field], field, 0, INT64_MAX) : 0;
  };
  try {
    ResultRecord r;
    r.id = j.at("id").get<std::string>();
    r.status = j.at("status").get<std::string>();
    r.reason = j.value("reason", "");
    r.finish_reason = j.value("finish_reason", "");
    r.tokens = integers(j.at("tokens"), "tokens");
    r.text = j.value("text", "");
    r.prompt_tokens = count("prompt_tokens");
    r.queue_s = j.value("queue_s", 0.0);
    r.first_token_s = j.value("first_token_s", 0.0);
    r.total_s = j.value("total_s", 0.0);
    r.remote_blocks_max = count("remote_blocks_max");
    if (j.contains("creditors")) r.creditors = integers(j["creditors"], "creditors");
    r.preemptions = j.contains("preemptions")
                        ? static_cast<int>(integer(j["preemptions"], "preemptions", 0, INT32_MAX))
                        : 0;
    if (j.contains("top_logprobs")) {
      for (const auto& per : j["top_logprobs"]) {
        std::vector<std::pair<std::int32_t, double>> top;
        for (const auto& e : per) {
          top.emplace_back(std::int32_t(integer(e.at("token"), "top_logprobs token", 0, INT32_MAX)),
                           e.at("logprob").get<double>());
        }
        r.top_logprobs.push_back(std::move(top));
      }
    }
    return r;
  } catch (const json::exception& e) {
    throw InputError(file, where, std::string("not a result record: ") + e.what());
  }
}

namespace {

// An append-only file of JSON lines, fsync'ed every `sync_every` records. `append_to_existing`
// keeps what the file holds (resume); otherwise it is created empty.
class JsonlLog {
 public:
  JsonlLog(const std::string& path, int sync_every, bool append_to_existing = false)
      : path_(path), sync_every_(sync_every) {
    const int mode = append_to_existing ? O_APPEND : O_TRUNC;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | mode | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw InputError(path, "", std::string("cannot create output: ") + std::strerror(errno));
    }
  }
  ~JsonlLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  void append(const json& j) {
    const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (!write_all(fd_, line)) {
      throw OutputError(path_, std::string("write failed: ") + std::strerror(errno));
    }
    if (++unsynced_ >= sync_every_) sync();
  }

  void sync() {
    if (fd_ >= 0 && ::fsync(fd_) != 0) {
      throw OutputError(path_, std::string("fsync failed: ") + std::strerror(errno));
    }
    unsynced_ = 0;
  }

 private:
  std::string path_;
  int fd_ = -1;
  int sync_every_;
  int unsynced_ = 0;
};

class JsonlSink final : public ResultSink {
 public:
  JsonlSink(const std::string& path, int sync_every, ResultLog earlier)
      : log_(path, sync_every, /*append_to_existing=*/true) {
    earlier_ = std::move(earlier.records);
    torn_bytes_ = earlier.torn_bytes;
  }
  void append(const ResultRecord& r) override { log_.append(to_json(r)); }
  void flush() override { log_.sync(); }
  void close() override { log_.sync(); }

 private:
  JsonlLog log_;
};

class Hdf5Sink final : public ResultSink {
 public:
  Hdf5Sink(const std::string& path, int sync_every, json attributes, ResultLog earlier)
      : path_(path),
        journal_(path + ".journal", sync_every, /*append_to_existing=*/true),
        attributes_(std::move(attributes)) {
    earlier_ = std::move(earlier.records);
    torn_bytes_ = earlier.torn_bytes;
    records_ = earlier_;
  }
  void append(const ResultRecord& r) override {
    journal_.append(to_json(r));
    records_.push_back(r);
  }
  void flush() override { journal_.sync(); }
  void set_tables(RunTables tables) override { tables_ = std::move(tables); }
  void close() override {
    journal_.sync();
    write_hdf5_results(path_, records_, attributes_, &tables_);
  }

 private:
  std::string path_;
  JsonlLog journal_;
  json attributes_;
  std::vector<ResultRecord> records_;
  RunTables tables_;
};

void check_writable(const std::string& path, const OutputOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "", "output is a directory");
  if (fs::exists(path, ec) && !options.overwrite && !options.resume) {
    throw InputError(path, "", "output exists (use --resume to continue it or --overwrite)");
  }
  const fs::path dir = fs::absolute(path).parent_path();
  if (!fs::is_directory(dir, ec)) {
    throw InputError(path, "", "output directory " + dir.string() + " does not exist");
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw InputError(path, "", "output directory " + dir.string() + " is not writable");
  }
}

}  // namespace

ResultLog read_result_log(const std::string& path, bool truncate_torn) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "", "cannot open");
    std::ostringstream os;
    os << in.rdbuf();
    bytes = os.str();
  }
  ResultLog log;
  const std::size_t end = bytes.rfind('\n') == std::string::npos ? 0 : bytes.rfind('\n') + 1;
  log.torn_bytes = bytes.size() - end;
  if (truncate_torn && log.torn_bytes > 0) {
    // NOTE: a kill can cut a record mid-write; the record is then simply not finished, and the
    // request runs again. Anything after the last newline is that cut.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(end)) != 0 || ::fsync(fd) != 0) {
      const std::string err = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      throw InputError(path, "", "cannot drop its torn last line: " + err);
    }
    ::close(fd);
  }
  std::set<std::string> ids;
  std::size_t line_no = 0;
  for (std::size_t at = 0; at < end;) {
    const std::size_t nl = bytes.find('\n', at);
    const std::string line = bytes.substr(at, nl - at);
    at = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "line " + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw InputError(path, where, std::string("not JSON: ") + e.what());
    }
    ResultRecord r = record_from_json(j, path, where);
    if (!ids.insert(r.id).second) throw InputError(path, where, "duplicate id " + r.id);
    log.records.push_back(std::move(r));
  }
  return log;
}

namespace {

// Resume: the fingerprint beside `output` must exist and match before its record is touched.
void check_resumable(const std::string& output, const json* fingerprint) {
  if (fingerprint == nullptr) return;
  const auto stored = read_meta(output);
  if (!stored) {
    throw InputError(output, "",
                     "cannot resume: no fingerprint " + meta_path(output) +
                         " beside it (use --overwrite to start again)");
  }
  check_fingerprint(output, *stored, *fingerprint);
}

}  // namespace

std::unique_ptr<ResultSink> open_result_sink(const std::string& path, const OutputOptions& options,
                                             const json& run_attributes, const json* fingerprint) {
  const FileFormat format = format_from_path(path);
  check_writable(path, options);
  std::error_code ec;
  const std::string record = format == FileFormat::kJsonl ? path : path + ".journal";
  ResultLog earlier;
  if (options.resume && std::filesystem::exists(record, ec)) {
    check_resumable(path, fingerprint);
    earlier = read_result_log(record, /*truncate_torn=*/true);
  } else {
    if (options.resume && format == FileFormat::kHdf5 && std::filesystem::exists(path, ec)) {
      throw InputError(
          path, "",
          "cannot resume: its journal " + record + " (the record of an HDF5 output) is missing");
    }
    if (format == FileFormat::kHdf5 && std::filesystem::exists(record, ec) && !options.overwrite) {
      throw InputError(record, "",
                       "journal of an earlier run exists (use --resume or --overwrite)");
    }
    if (fingerprint != nullptr) write_meta(path, *fingerprint);
    // Start empty: the append-mode log below keeps what is there.
    std::filesystem::remove(record, ec);
  }
  if (format == FileFormat::kJsonl) {
    return std::make_unique<JsonlSink>(path, options.sync_every, std::move(earlier));
  }
  // A stale or unfinished HDF5 file is never trusted: it is rebuilt from the journal at close.
  std::filesystem::remove(path, ec);
  return std::make_unique<Hdf5Sink>(path, options.sync_every, run_attributes, std::move(earlier));
}

}  // namespace infllm::io
