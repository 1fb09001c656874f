// hf_cache_test.cpp: `--model ORG/NAME[@REV]` resolved to a snapshot in a Hugging Face cache laid
// out as huggingface_hub lays it out (refs/, snapshots/<commit>/ of relative links into blobs/),
// with the cache found through HF_HUB_CACHE, HF_HOME or the default folder; and the executable
// (inspect, generate) taking a repository id.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "core/errors.hpp"
#include "model/formats/hf_cache.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;
using infllm::testing::run_infllm;
using infllm::testing::TempDir;

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  void set(const char* name, const std::optional<std::string>& value) {
    if (!saved_.count(name)) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// Puts `files` (name -> source path) into <cache>/models--ORG--NAME/snapshots/<commit>/ as
// huggingface_hub does: the bytes in blobs/, relative symbolic links in the snapshot.
fs::path add_snapshot(const fs::path& cache, const std::string& repo, const std::string& commit,
                      const std::map<std::string, fs::path>& files) {
  const auto slash = repo.find('/');
  const fs::path root =
      cache / ("models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1));
  const fs::path snapshot = root / "snapshots" / commit;
  fs::create_directories(snapshot);
  fs::create_directories(root / "blobs");
  int n = 0;
  for (const auto& [name, source] : files) {
    const std::string blob = commit + "-" + std::to_string(n++);
    fs::copy_file(source, root / "blobs" / blob, fs::copy_options::overwrite_existing);
    fs::create_symlink(fs::path("..") / ".." / "blobs" / blob, snapshot / name);
  }
  return snapshot;
}

void set_ref(const fs::path& cache, const std::string& folder, const std::string& ref,
             const std::string& commit) {
  fs::create_directories(cache / folder / "refs");
  std::ofstream(cache / folder / "refs" / ref) << commit;  // no newline, as huggingface_hub
}

const fs::path kSaved =
    fs::path(INFLLM_SOURCE_DIR) / "tests" / "data" / "golden" / "hf_llama_rope_theta";
const fs::path kGguf = fs::path(INFLLM_SOURCE_DIR) / "tests" / "data" / "model" / "tiny_llama.gguf";

std::map<std::string, fs::path> hf_files() {
  return {{"config.json", kSaved / "config.json"},
          {"model.safetensors", kSaved / "model.safetensors"}};
}

std::string error_of(const std::string& given) {
  try {
    resolve_model_path(given);
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), given);
    return e.what();
  }
  return "";
}

TEST(HfCache, RepositoryIdResolvesThroughRefsMain) {
  const TempDir dir("infllm-hf-cache");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", dir.path().string());
  const fs::path snapshot = add_snapshot(dir.path(), "acme/tiny", "c0ffee", hf_files());
  set_ref(dir.path(), "models--acme--tiny", "main", "c0ffee");
  EXPECT_EQ(resolve_model_path("acme/tiny"), snapshot.string());
  // Another revision, by ref name or by commit.
  const fs::path old = add_snapshot(dir.path(), "acme/tiny", "0ld", hf_files());
  set_ref(dir.path(), "models--acme--tiny", "v1", "0ld");
  EXPECT_EQ(resolve_model_path("acme/tiny@v1"), old.string());
  EXPECT_EQ(resolve_model_path("acme/tiny@0ld"), old.string());
  EXPECT_NE(error_of("acme/tiny@v2").find("no revision 'v2'"), std::string::npos);
}

TEST(HfCache, HfHomeAndTheDefaultFolderAreSearchedAndNamed) {
  const TempDir dir("infllm-hf-cache");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", (dir.path() / "hub-cache").string());
  env.set("HF_HOME", (dir.path() / "hf-home").string());
  env.set("XDG_CACHE_HOME", std::nullopt);
  env.set("HOME", (dir.path() / "home").string());
  const std::string message = error_of("acme/absent");
  for (const auto& folder : {dir.path() / "hub-cache", dir.path() / "hf-home" / "hub",
                             dir.path() / "home" / ".cache" / "huggingface" / "hub"}) {
    EXPECT_NE(message.find(folder.string()), std::string::npos) << message;
  }
  EXPECT_NE(message.find("models--acme--absent"), std::string::npos) << message;
  EXPECT_NE(message.find("does not download"), std::string::npos) << message;

  // Found under HF_HOME/hub, and under the default folder.
  const fs::path home_hub = dir.path() / "hf-home" / "hub";
  const fs::path a = add_snapshot(home_hub, "acme/a", "1", hf_files());
  set_ref(home_hub, "models--acme--a", "main", "1");
  EXPECT_EQ(resolve_model_path("acme/a"), a.string());
  const fs::path def = dir.path() / "home" / ".cache" / "huggingface" / "hub";
  const fs::path b = add_snapshot(def, "acme/b", "2", hf_files());
  set_ref(def, "models--acme--b", "main", "2");
  EXPECT_EQ(resolve_model_path("acme/b"), b.string());
}

TEST(HfCache, GgufRepositoryGivesItsOneGgufFile) {
  const TempDir dir("infllm-hf-cache");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", dir.path().string());
  const fs::path s = add_snapshot(dir.path(), "acme/tiny-GGUF", "9", {{"tiny.Q8_0.gguf", kGguf}});
  set_ref(dir.path(), "models--acme--tiny-GGUF", "main", "9");
  EXPECT_EQ(resolve_model_path("acme/tiny-GGUF"), (s / "tiny.Q8_0.gguf").string());
  add_snapshot(dir.path(), "acme/two-GGUF", "9", {{"a.gguf", kGguf}, {"b.gguf", kGguf}});
  set_ref(dir.path(), "models--acme--two-GGUF", "main", "9");
  EXPECT_NE(error_of("acme/two-GGUF").find("several .gguf files (a.gguf, b.gguf)"),
            std::string::npos);
}

TEST(HfCache, PathsAreNotRepositoryIds) {
  EXPECT_TRUE(looks_like_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
  EXPECT_TRUE(looks_like_repo_id("acme/tiny@v1.0"));
  EXPECT_FALSE(looks_like_repo_id("model.gguf"));
  EXPECT_FALSE(looks_like_repo_id("/abs/model"));
  EXPECT_FALSE(looks_like_repo_id("a/b/c"));
  EXPECT_FALSE(looks_like_repo_id("../x"));
  // An existing path is used as it is, even when it looks like an id.
  EXPECT_EQ(resolve_model_path(kGguf.string()), kGguf.string());
  EXPECT_EQ(resolve_model_path("no-such.gguf"), "no-such.gguf");
}

TEST(HfCache, ExecutableTakesARepositoryId) {
  const TempDir dir("infllm-hf-cache");
  const fs::path made = dir.path() / "made";
  ASSERT_EQ(run_infllm("make-model --preset micro --seed 3 --out " + made.string()).code, 0);
  add_snapshot(dir.path() / "hub", "acme/micro", "abc",
               {{"config.json", made / "config.json"},
                {"model.safetensors", made / "model.safetensors"},
                {"tokenizer.json", made / "tokenizer.json"}});
  set_ref(dir.path() / "hub", "models--acme--micro", "main", "abc");
  const std::string env = "HF_HOME=" + dir.path().string() + " ";
  const auto inspect =
      infllm::testing::run_command(env + infllm::testing::infllm_env() +
                                   infllm::testing::infllm_binary() + " inspect acme/micro");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("snapshots/abc"), std::string::npos) << inspect.out;

  const fs::path input = dir.path() / "in.jsonl";
  std::ofstream(input) << R"({"id": "a", "tokens": [1, 2, 3], "max_new_tokens": 4})"
                       << "\n";
  const fs::path output = dir.path() / "out.jsonl";
  const auto generate = infllm::testing::run_command(
      env + infllm::testing::infllm_env() + infllm::testing::infllm_binary() +
      " generate --quiet --temperature 0 --model acme/micro --input " + input.string() +
      " --output " + output.string());
  ASSERT_EQ(generate.code, 0) << generate.out;
  std::ifstream in(output);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_NE(line.find(R"("status":"done")"), std::string::npos) << line;

  const auto missing = infllm::testing::run_command(
      env + infllm::testing::infllm_env() + infllm::testing::infllm_binary() +
      " generate --model acme/absent --input " + input.string() + " --output " +
      (dir.path() / "none.jsonl").string());
  EXPECT_EQ(missing.code, 2) << missing.out;
  EXPECT_NE(missing.out.find("models--acme--absent"), std::string::npos) << missing.out;
  EXPECT_FALSE(fs::exists(dir.path() / "none.jsonl"));
}

}  // namespace
}  // namespace infllm::model
