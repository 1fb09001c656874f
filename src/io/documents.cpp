// documents.cpp: JSONL and HDF5 document readers (see documents.hpp).
#include "io/documents.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/errors.hpp"
#include "core/strict_json.hpp"
#include "io/fingerprint.hpp"
#include "io/hdf5_documents.hpp"

namespace infllm::io {

namespace {

using nlohmann::json;

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Reads one JSON record's fields, each failure naming file, record and field.
class RecordReader {
 public:
  RecordReader(const std::string& path, std::string where, const json& obj)
      : path_(path), where_(std::move(where)), obj_(obj) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw InputError(path_, where_ + (field.empty() ? "" : ", field " + field), problem);
  }

  bool has(const char* field) const { return obj_.contains(field) && !obj_[field].is_null(); }

  std::optional<double> number(const char* field, double lo, double hi) const {
    if (!has(field)) return std::nullopt;
    const json& v = obj_[field];
    if (!v.is_number()) fail(field, "must be a number, got " + std::string(v.type_name()));
    const double d = v.get<double>();
    if (!(d >= lo && d <= hi)) {
      fail(field, "value " + v.dump() + " out of range [" + json(lo).dump() + ", " +
                      json(hi).dump() + "]");
    }
    return d;
  }

  std::optional<std::int64_t> integer(const char* field, std::int64_t lo, std::int64_t hi) const {
    if (!has(field)) return std::nullopt;
    const json& v = obj_[field];
    if (!v.is_number_integer()) fail(field, "must be an integer, got " + v.dump());
    const auto i = v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(hi)
                       ? hi + 1
                       : v.get<std::int64_t>();
    if (i < lo || i > hi) {
      fail(field, "value " + v.dump() + " out of range [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
    }
    return i;
  }

  std::optional<bool> boolean(const char* field) const {
    if (!has(field)) return std::nullopt;
    if (!obj_[field].is_boolean()) fail(field, "must be true or false");
    return obj_[field].get<bool>();
  }

  std::optional<std::vector<std::string>> strings(const char* field) const {
    if (!has(field)) return std::nullopt;
    const json& v = obj_[field];
    if (v.is_string()) {
      // One rule with the command line's --stop: an empty stop string is refused.
      if (v.get<std::string>().empty()) fail(field, "must hold non-empty strings only");
      return std::vector<std::string>{v.get<std::string>()};
    }
    if (!v.is_array()) fail(field, "must be a string or an array of strings");
    std::vector<std::string> out;
    for (const auto& s : v) {
      if (!s.is_string() || s.get<std::string>().empty()) {
        fail(field, "must hold non-empty strings only");
      }
      out.push_back(s.get<std::string>());
    }
    return out;
  }

 private:
  const std::string& path_;
  std::string where_;
  const json& obj_;
};

const char* const kKnownFields[] = {
    "id",    "prompt", "tokens", "messages",       "max_new_tokens", "temperature", "top_p",
    "top_k", "min_p",  "seed",   "min_new_tokens", "ignore_eos",     "stop",
};

std::string id_of(const RecordReader& r, const json& obj) {
  if (!obj.contains("id")) r.fail("id", "missing");
  const json& id = obj["id"];
  if (id.is_string()) {
    if (id.get<std::string>().empty()) r.fail("id", "empty");
    return id.get<std::string>();
  }
  if (id.is_number_integer()) return id.dump();
  r.fail("id", "must be a string or an integer, got " + id.dump());
}

// The input as a stream of lines, read with POSIX calls so that a signal that interrupts a
// blocking open or read (a FIFO) can end the job instead of being retried forever, and hashed as
// it goes. A line longer than the limit is refused as soon as it passes it, so memory stays
// bounded by the limit whatever the input.
class LineReader {
 public:
  LineReader(const std::string& path, const ReadOptions& options)
      : path_(path), options_(options), buf_(64 * 1024) {
    for (;;) {
      // NOTE: a signal that lands between this check and the open() call is seen only when the
      // open returns; that window is a few instructions wide.
      check_stop();
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ >= 0) break;
      if (errno == EINTR) {
        check_stop();
        continue;
      }
      throw InputError(path, "", std::string("cannot open for reading: ") + std::strerror(errno));
    }
  }
  ~LineReader() { ::close(fd_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line (without its newline) into `line`; false at the end of the input.
  bool next(std::string& line, std::size_t number) {
    line.clear();
    for (;;) {
      if (pos_ == end_ && !fill()) return !line.empty();
      const char* begin = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(begin, '\n', end_ - pos_));
      const std::size_t take = nl != nullptr ? static_cast<std::size_t>(nl - begin) : end_ - pos_;
      if (static_cast<std::int64_t>(line.size() + take) > options_.max_record_bytes) {
        throw InputError(path_, "line " + std::to_string(number),
                         "longer than " + std::to_string(options_.max_record_bytes >> 20) +
                             " MiB (--max-record-mb); an input that never ends a line is refused "
                             "here rather than read without bound");
      }
      line.append(begin, take);
      pos_ += take;
      if (nl != nullptr) {
        ++pos_;
        return true;
      }
    }
  }

  std::string hash() const { return hash_.hex(); }

 private:
  bool fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) {
        check_stop();
        continue;
      }
      if (n < 0) throw InputError(path_, "", std::string("read error: ") + std::strerror(errno));
      hash_.add(buf_.data(), static_cast<std::size_t>(n));
      pos_ = 0;
      end_ = static_cast<std::size_t>(n);
      return n > 0;
    }
  }
  void check_stop() const {
    if (options_.stop_requested && options_.stop_requested()) {
      throw StopRequested("stopped by a signal while reading " + path_ + "; nothing was written");
    }
  }

  std::string path_;
  const ReadOptions& options_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
  int fd_ = -1;
  ContentHash hash_;
};

}  // namespace

FileFormat format_from_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".jsonl") return FileFormat::kJsonl;
  if (ext == ".h5" || ext == ".hdf5") return FileFormat::kHdf5;
  throw InputError(path, "", "unknown format '" + ext + "' (use .jsonl, .h5 or .hdf5)");
}

Document parse_document_json(const std::string& path, const std::string& where,
                             const std::string& line, const ReadOptions& options) {
  const json obj = parse_strict_json(line, path, where);
  if (!obj.is_object()) {
    throw InputError(path, where, std::string("not a JSON object (got ") + obj.type_name() + ")");
  }
  RecordReader r(path, where, obj);
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (const char* f : kKnownFields) known = known || key == f;
    if (!known) r.fail(key, "unknown field");
  }
  Document doc;
  doc.id = id_of(r, obj);
  doc.where = where + " (id " + doc.id + ")";
  RecordReader rec(path, doc.where, obj);

  const int sources = int(rec.has("prompt")) + int(rec.has("tokens")) + int(rec.has("messages"));
  if (sources == 0) rec.fail("prompt", "missing (give prompt, tokens or messages)");
  if (sources > 1) rec.fail("prompt", "give only one of prompt, tokens and messages");
  if (rec.has("prompt")) {
    if (!obj["prompt"].is_string()) rec.fail("prompt", "must be a string");
    doc.prompt = obj["prompt"].get<std::string>();
    if (doc.prompt->empty()) rec.fail("prompt", "empty prompt");
  } else if (rec.has("tokens")) {
    const json& t = obj["tokens"];
    if (!t.is_array()) rec.fail("tokens", "must be an array of token ids");
    if (t.empty()) rec.fail("tokens", "empty prompt");
    std::vector<std::int32_t> ids;
    ids.reserve(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
      const std::string at = "tokens[" + std::to_string(i) + "]";
      if (!t[i].is_number_integer()) rec.fail(at, "must be an integer token id");
      const auto v = t[i].get<std::int64_t>();
      const std::int64_t hi = options.vocab_size > 0 ? options.vocab_size - 1
                                                     : std::numeric_limits<std::int32_t>::max();
      if (v < 0 || v > hi) {
        rec.fail(at, "token id " + std::to_string(v) + " outside the vocabulary [0, " +
                         std::to_string(hi) + "]");
      }
      ids.push_back(static_cast<std::int32_t>(v));
    }
    doc.tokens = std::move(ids);
  } else {
    const json& m = obj["messages"];
    if (!m.is_array() || m.empty()) rec.fail("messages", "must be a non-empty array");
    std::vector<ChatMessage> msgs;
    for (std::size_t i = 0; i < m.size(); ++i) {
      const std::string at = "messages[" + std::to_string(i) + "]";
      if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() ||
          !m[i].contains("content") || !m[i]["content"].is_string()) {
        rec.fail(at, "must be an object with string fields role and content");
      }
      const std::string role = m[i]["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant") {
        rec.fail(at + ".role", "'" + role + "' is not a chat role (system, user, assistant)");
      }
      msgs.push_back({m[i]["role"].get<std::string>(), m[i]["content"].get<std::string>()});
    }
    doc.messages = std::move(msgs);
  }
  if (auto v = rec.integer("max_new_tokens", 0, 1 << 24)) doc.max_new_tokens = int(*v);
  auto& o = doc.overrides;
  o.temperature = rec.number("temperature", 0.0, 100.0);
  o.top_p = rec.number("top_p", 0.0, 1.0);
  if (o.top_p && *o.top_p == 0.0) rec.fail("top_p", "must be greater than 0");
  if (auto v = rec.integer("top_k", 0, 1 << 24)) o.top_k = int(*v);
  o.min_p = rec.number("min_p", 0.0, 1.0);
  if (auto v = rec.integer("seed", 0, std::numeric_limits<std::int64_t>::max())) {
    o.seed = static_cast<std::uint64_t>(*v);
  }
  if (auto v = rec.integer("min_new_tokens", 0, 1 << 24)) o.min_new_tokens = int(*v);
  o.ignore_eos = rec.boolean("ignore_eos");
  o.stop = rec.strings("stop");
  return doc;
}

std::vector<Document> read_documents(const std::string& path, const ReadOptions& options) {
  const FileFormat format = format_from_path(path);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path, "", "no such file");
  if (std::filesystem::is_directory(path, ec)) throw InputError(path, "", "is a directory");
  std::vector<Document> docs;
  if (format == FileFormat::kHdf5) {
    docs = read_hdf5_documents(path, options);
  } else {
    LineReader in(path, options);
    std::string line;
    for (std::size_t n = 1; in.next(line, n); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      docs.push_back(parse_document_json(path, "line " + std::to_string(n), line, options));
    }
    if (options.content_hash != nullptr) *options.content_hash = in.hash();
  }
  if (docs.empty()) throw InputError(path, "", "no documents");
  std::unordered_map<std::string, std::string> seen;
  for (const auto& d : docs) {
    const auto [it, fresh] = seen.emplace(d.id, d.where);
    if (!fresh) throw InputError(path, d.where, "duplicate id (first at " + it->second + ")");
  }
  return docs;
}

}  // namespace infllm::io
