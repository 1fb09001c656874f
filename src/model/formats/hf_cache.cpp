// hf_cache.cpp: see hf_cache.hpp.
#include "model/formats/hf_cache.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/errors.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i > 0 ? sep : "") + items[i];
  return out;
}

// The commit a revision names in one repository folder: refs/<revision>, or the revision
// itself when it is a snapshot folder's name. Empty when neither exists.
std::string commit_of(const fs::path& repo, const std::string& revision) {
  std::ifstream ref(repo / "refs" / revision);
  std::string commit;
  if (ref && std::getline(ref, commit) && !commit.empty()) return commit;
  std::error_code ec;
  if (fs::is_directory(repo / "snapshots" / revision, ec)) return revision;
  return "";
}

// The model inside a snapshot folder: the folder (Hugging Face layout) or its one .gguf file.
std::string model_in(const fs::path& snapshot, const std::string& given) {
  std::error_code ec;
  if (fs::exists(snapshot / "config.json", ec)) return snapshot.string();
  std::vector<std::string> ggufs;
  for (const auto& e : fs::directory_iterator(snapshot, ec)) {
    if (e.path().extension() == ".gguf") ggufs.push_back(e.path().filename().string());
  }
  std::sort(ggufs.begin(), ggufs.end());
  if (ggufs.size() == 1) return (snapshot / ggufs[0]).string();
  if (ggufs.empty()) {
    throw InputError(
        given, "",
        "the snapshot " + snapshot.string() + " has neither config.json nor a .gguf file");
  }
  throw InputError(given, "",
                   "the snapshot " + snapshot.string() + " has several .gguf files (" +
                       join(ggufs, ", ") + "); give --model the path of one");
}

}  // namespace

std::vector<std::string> hf_cache_folders() {
  std::vector<std::string> out;
  const auto add = [&](const fs::path& p) {
    const std::string s = p.lexically_normal().string();
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  if (const auto hub = env("HF_HUB_CACHE"); !hub.empty()) add(hub);
  if (const auto home = env("HF_HOME"); !home.empty()) add(fs::path(home) / "hub");
  if (const auto xdg = env("XDG_CACHE_HOME"); !xdg.empty()) {
    add(fs::path(xdg) / "huggingface" / "hub");
  } else if (const auto home = env("HOME"); !home.empty()) {
    add(fs::path(home) / ".cache" / "huggingface" / "hub");
  }
  return out;
}

bool looks_like_repo_id(const std::string& given) {
  static const std::regex id(
      R"([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?)");
  return std::regex_match(given, id) && given.find("..") == std::string::npos;
}

std::string resolve_model_path(const std::string& given) {
  std::error_code ec;
  if (fs::exists(given, ec) || !looks_like_repo_id(given)) return given;
  const auto at = given.find('@');
  const std::string repo_id = given.substr(0, at);
  const std::string revision = at == std::string::npos ? "main" : given.substr(at + 1);
  const auto slash = repo_id.find('/');
  const std::string folder =
      "models--" + repo_id.substr(0, slash) + "--" + repo_id.substr(slash + 1);
  const auto caches = hf_cache_folders();
  for (const auto& cache : caches) {
    const fs::path repo = fs::path(cache) / folder;
    if (!fs::is_directory(repo, ec)) continue;
    const std::string commit = commit_of(repo, revision);
    if (commit.empty()) {
      throw InputError(given, "",
                       "no revision '" + revision + "' in " + repo.string() + " (neither refs/" +
                           revision + " nor snapshots/" + revision + ")");
    }
    const fs::path snapshot = repo / "snapshots" / commit;
    if (!fs::is_directory(snapshot, ec)) {
      throw InputError(
          given, "",
          "refs/" + revision + " names snapshot " + commit + ", which is not in " + repo.string());
    }
    return model_in(snapshot, given);
  }
  throw InputError(
      given, "",
      "is not a file or directory, nor a repository in the Hugging Face cache "
      "(searched " +
          (caches.empty() ? std::string("no folder: HOME is unset") : join(caches, ", ")) +
          " for " + folder + "; infllm does not download)");
}

}  // namespace infllm::model
