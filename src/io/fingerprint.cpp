// fingerprint.cpp: see fingerprint.hpp.
#include "io/fingerprint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/errors.hpp"
#include "io/write_file.hpp"

namespace infllm::io {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::uint64_t kFnvOffset = 1469598103934665603ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;
constexpr std::size_t kEdgeBytes = std::size_t{1} << 20;  // first and last MiB of weight files

void fnv(std::uint64_t& h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
}

void fnv(std::uint64_t& h, const std::string& s) { fnv(h, s.data(), s.size()); }

std::string hex(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Hashes [offset, offset + n) of `in` into h.
void hash_range(std::uint64_t& h, std::ifstream& in, std::uint64_t offset, std::uint64_t n,
                const std::string& path) {
  std::vector<char> buf(64 * 1024);
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  while (n > 0) {
    const auto want = static_cast<std::streamsize>(std::min<std::uint64_t>(n, buf.size()));
    in.read(buf.data(), want);
    if (in.gcount() != want) throw InputError(path, "", "cannot read (for its fingerprint)");
    fnv(h, buf.data(), static_cast<std::size_t>(want));
    n -= static_cast<std::uint64_t>(want);
  }
}

// Size, first and last MiB of a (weights) file.
void hash_edges(std::uint64_t& h, const std::string& path) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) throw InputError(path, "", "cannot read (for its fingerprint): " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open (for its fingerprint)");
  fnv(h, &size, sizeof size);
  const std::uint64_t head = std::min<std::uint64_t>(size, kEdgeBytes);
  hash_range(h, in, 0, head, path);
  if (size > head) {
    const std::uint64_t tail_start = std::max(head, size - kEdgeBytes);
    hash_range(h, in, tail_start, size - tail_start, path);
  }
}

}  // namespace

void ContentHash::add(const void* data, std::size_t n) { fnv(h_, data, n); }

std::string ContentHash::hex() const { return io::hex(h_); }

std::string file_content_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open (for its fingerprint)");
  ContentHash h;
  std::vector<char> buf(256 * 1024);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.add(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  return h.hex();
}

std::string model_identity(const std::string& path) {
  std::uint64_t h = kFnvOffset;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    hash_edges(h, path);
    return hex(h);
  }
  const fs::path config = fs::path(path) / "config.json";
  fnv(h, file_content_hash(config.string()));
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (e.path().extension() == ".safetensors") weights.push_back(e.path());
  }
  std::sort(weights.begin(), weights.end());
  for (const auto& w : weights) {
    fnv(h, w.filename().string());
    hash_edges(h, w.string());
  }
  return hex(h);
}

json make_fingerprint(const std::string& model_path, const std::string& input_path,
                      const json& options, std::int64_t requests, const std::string& input_hash) {
  return {{"version", 1},
          {"model", {{"path", model_path}, {"identity", model_identity(model_path)}}},
          {"input",
           {{"path", input_path},
            {"hash", input_hash.empty() ? file_content_hash(input_path) : input_hash}}},
          {"options", options},
          {"requests", requests}};
}

std::string meta_path(const std::string& output) { return output + ".meta.json"; }

void write_meta(const std::string& output, const json& fingerprint) {
  write_file(meta_path(output), fingerprint.dump(2) + "\n");
}

std::optional<json> read_meta(const std::string& output) {
  const std::string path = meta_path(output);
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(path, "", std::string("fingerprint file is not JSON: ") + e.what());
  }
}

void check_fingerprint(const std::string& output, const json& stored, const json& current) {
  auto refuse = [&](const std::string& part, const json& was, const json& now) {
    throw InputError(output, "",
                     "cannot resume: made with a different " + part + " (output has " + was.dump() +
                         ", this run " + now.dump() + "; fingerprint in " + meta_path(output) +
                         ")");
  };
  if (!stored.is_object() || !stored.value("options", json::object()).is_object()) {
    throw InputError(meta_path(output), "", "not a fingerprint (expected an object with options)");
  }
  const json none;
  auto at = [&](const json& j, const char* a, const char* b) -> const json& {
    if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b)) return none;
    return j[a][b];
  };
  if (at(stored, "model", "identity") != at(current, "model", "identity")) {
    refuse("model", stored.value("model", json()), current.value("model", json()));
  }
  if (at(stored, "input", "hash") != at(current, "input", "hash")) {
    refuse("input", stored.value("input", json()), current.value("input", json()));
  }
  const json stored_options = stored.value("options", json::object());
  const json current_options = current.value("options", json::object());
  for (const auto& [name, value] : current_options.items()) {
    const json was = stored_options.value(name, json());
    if (was != value) refuse("option --" + name, was, value);
  }
  for (const auto& [name, value] : stored_options.items()) {
    if (!current_options.contains(name)) refuse("option --" + name, value, json());
  }
}

}  // namespace infllm::io
