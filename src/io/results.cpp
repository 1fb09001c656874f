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

#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/hdf5_results.hpp"

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
      for (const auto& [token, logprob] : top) entries.push_back({{"token", token}, {"logprob", logprob}});
      per_token.push_back(std::move(entries));
    }
    j["top_logprobs"] = std::move(per_token);
  }
  return j;
}

ResultRecord record_from_json(const json& j, const std::string& file, const std::string& where) {
  try {
    ResultRecord r;
    r.id = j.at("id").get<std::string>();
    r.status = j.at("status").get<std::string>();
    r.reason = j.value("reason", "");
    r.finish_reason = j.value("finish_reason", "");
    r.tokens = j.at("tokens").get<std::vector<std::int32_t>>();
    r.text = j.value("text", "");
    r.prompt_tokens = j.value("prompt_tokens", std::int64_t{0});
    r.queue_s = j.value("queue_s", 0.0);
    r.first_token_s = j.value("first_token_s", 0.0);
    r.total_s = j.value("total_s", 0.0);
    r.remote_blocks_max = j.value("remote_blocks_max", std::int64_t{0});
    r.creditors = j.value("creditors", std::vector<std::int32_t>{});
    r.preemptions = j.value("preemptions", 0);
    if (j.contains("top_logprobs")) {
      for (const auto& per : j["top_logprobs"]) {
        std::vector<std::pair<std::int32_t, double>> top;
        for (const auto& e : per) top.emplace_back(e.at("token").get<std::int32_t>(), e.at("logprob").get<double>());
        r.top_logprobs.push_back(std::move(top));
      }
    }
    return r;
  } catch (const json::exception& e) {
    throw InputError(file, where, std::string("not a result record: ") + e.what());
  }
}

namespace {

// An append-only file of JSON lines, fsync'ed every `sync_every` records.
class JsonlLog {
 public:
  JsonlLog(const std::string& path, int sync_every) : path_(path), sync_every_(sync_every) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
    std::size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw InternalError(path_ + ": write failed: " + std::strerror(errno));
      done += static_cast<std::size_t>(n);
    }
    if (++unsynced_ >= sync_every_) sync();
  }

  void sync() {
    if (fd_ >= 0 && ::fsync(fd_) != 0) {
      throw InternalError(path_ + ": fsync failed: " + std::strerror(errno));
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
  JsonlSink(const std::string& path, int sync_every) : log_(path, sync_every) {}
  void append(const ResultRecord& r) override { log_.append(to_json(r)); }
  void close() override { log_.sync(); }

 private:
  JsonlLog log_;
};

class Hdf5Sink final : public ResultSink {
 public:
  Hdf5Sink(const std::string& path, int sync_every, json attributes)
      : path_(path), journal_(path + ".journal", sync_every), attributes_(std::move(attributes)) {}
  void append(const ResultRecord& r) override {
    journal_.append(to_json(r));
    records_.push_back(r);
  }
  void close() override {
    journal_.sync();
    write_hdf5_results(path_, records_, attributes_);
  }

 private:
  std::string path_;
  JsonlLog journal_;
  json attributes_;
  std::vector<ResultRecord> records_;
};

void check_writable(const std::string& path, const OutputOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "", "output is a directory");
  if (fs::exists(path, ec) && !options.overwrite) {
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

std::unique_ptr<ResultSink> open_result_sink(const std::string& path, const OutputOptions& options,
                                             const json& run_attributes) {
  const FileFormat format = format_from_path(path);
  check_writable(path, options);
  if (format == FileFormat::kJsonl) return std::make_unique<JsonlSink>(path, options.sync_every);
  const std::string journal = path + ".journal";
  std::error_code ec;
  if (std::filesystem::exists(journal, ec) && !options.overwrite) {
    throw InputError(journal, "", "journal of an earlier run exists (use --resume or --overwrite)");
  }
  // A stale HDF5 file from an earlier run must not survive next to the new journal.
  std::filesystem::remove(path, ec);
  return std::make_unique<Hdf5Sink>(path, options.sync_every, run_attributes);
}

}  // namespace infllm::io
