// bench_cluster.cpp: the distributed engine's benchmarks, each a driver of real runs:
// `mpiexec -n N infllm generate` of this very executable, on a generated model and a generated
// workload, read back through the output and `--metrics` files, as users would measure it.
//
//   capacity          the longest document served with N ranks of equal pools, pooled vs
//                     local, N = 2, 4, 8: a ladder of documents (a quarter pool apart) in one
//                     run; the longest one done. Ratio against the ideal N and against the
//                     lending bound 1 + (N - 1) * max_lend_fraction.
//   mixed             a few long and many short documents on 4 ranks (--ranks N), pooled vs
//                     local (--fill-waits and --admission go to both runs), on
//                     a generated model or --model PATH: tokens/s of the whole job and its
//                     ratio (the paper's 1.35-3.4x on GPUs).
//   remote-attention  decode of one long document whose KV lives on 1..3 creditors: step time
//                     and bytes moved per decode step, push-query vs pull-KV vs all-local.
//
// The runs use Open MPI's settings for one machine (root consent, oversubscription, yielding
// idle ranks, one BLAS thread per rank). Every run must exit 0 (or 1 where a rejection is the
// point); the footer says OK or FAILED.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/bench.hpp"
#include "core/block_geometry.hpp"
#include "core/errors.hpp"
#include "model/formats/weights.hpp"
#include "model/maker/make_model.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Env {
  std::string self;  // this executable
  fs::path dir;      // scratch
  bool ok = true;
};

int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return status == -1 ? -1 : WEXITSTATUS(status);
}

Env make_env(const char* name) {
  Env e;
  e.self = fs::read_symlink("/proc/self/exe").string();
  e.dir = fs::temp_directory_path() /
          ("infllm_bench_" + std::string(name) + "_" + std::to_string(getpid()));
  fs::create_directories(e.dir);
  return e;
}

std::string mpiexec(int ranks) {
  std::string env =
      "OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1 "
      "OPENBLAS_NUM_THREADS=1 ";
  if (geteuid() == 0) env += "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ";
  return "env " + env + INFLLM_MPIEXEC + " -n " + std::to_string(ranks) + " --bind-to none ";
}

// A document of `n` token ids (deterministic, inside a 512-entry vocabulary).
std::string doc(const std::string& id, std::int64_t n, int max_new, int salt) {
  std::string t = "{\"id\": \"" + id + "\", \"tokens\": [";
  for (std::int64_t i = 0; i < n; ++i) {
    if (i > 0) t += ',';
    t += std::to_string(3 + (i * 37 + salt * 101 + i / 7) % 500);
  }
  return t + "], \"max_new_tokens\": " + std::to_string(max_new) + "}\n";
}

struct Run {
  int code = -1;
  json metrics;
  std::map<std::string, json> results;
};

Run generate(Env& e, int ranks, const std::string& model, const std::string& input,
             const std::string& args, const std::string& tag) {
  const fs::path out = e.dir / (tag + ".jsonl"), metrics = e.dir / (tag + ".metrics.json");
  Run r;
  r.code = shell(mpiexec(ranks) + e.self + " generate --quiet --temperature 0 --ignore-eos " +
                 "--overwrite --model " + model + " --input " + input + " --output " +
                 out.string() + " --metrics " + metrics.string() + " " + args + " >" +
                 (e.dir / (tag + ".log")).string() + " 2>&1");
  if (fs::exists(metrics)) {
    std::ifstream in(metrics);
    r.metrics = json::parse(in);
  }
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    r.results[j["id"].get<std::string>()] = j;
  }
  return r;
}

std::string make_model(Env& e, const std::string& preset) {
  const fs::path dir = e.dir / preset;
  if (shell(e.self + " make-model --preset " + preset + " --out " + dir.string() + " >/dev/null") !=
      0) {
    e.ok = false;
  }
  return dir.string();
}

int footer(const Env& e) {
  std::printf("# %s\n", e.ok ? "OK"
                             : "FAILED (a run did not exit as expected; logs in the "
                               "scratch folder)");
  // INFLLM_BENCH_KEEP=1 keeps the runs' inputs, outputs and --metrics files for a closer look.
  const char* keep = std::getenv("INFLLM_BENCH_KEEP");
  if (e.ok && !(keep != nullptr && std::string(keep) == "1"))
    fs::remove_all(e.dir);
  else
    std::printf("# scratch: %s\n", e.dir.c_str());
  return e.ok ? 0 : 1;
}

// The f32 rBlock of 16 tokens of a model config, in bytes.
double block_bytes_of(const infllm::model::ModelConfig& c) {
  return static_cast<double>(
      infllm::BlockGeometry{16, static_cast<int>(c.num_layers), static_cast<int>(c.num_kv_heads),
                            static_cast<int>(c.head_dim), infllm::KvDtype::kF32}
          .block_bytes());
}
double block_bytes_of(const std::string& preset) {
  return block_bytes_of(infllm::model::find_preset(preset).config);
}

int capacity(int, char**, const infllm::app::BenchOptions& o) {
  Env e = make_env("capacity");
  const std::string model = make_model(e, "micro");
  const int slots = o.full ? 64 : 32;  // per rank
  const double pool_mb = slots * block_bytes_of("micro") / 1048576.0;
  const double lend = 0.5;
  const std::vector<int> ranks_list = {2, 4, 8};
  std::printf(
      "# capacity: the longest document served (prompt tokens + 4 new), micro model, "
      "%d-rBlock pools of 16 tokens (%.3f MiB), max-lend-fraction %.1f\n",
      slots, pool_mb, lend);
  std::printf("%6s %14s %14s %8s %8s %14s\n", "ranks", "local tokens", "pooled tokens", "ratio",
              "ideal N", "lending bound");
  for (int n : ranks_list) {
    // The ladder: a quarter pool apart, up to N pools.
    const std::int64_t step = slots * 16 / 4;
    std::string text;
    std::vector<std::int64_t> lengths;
    for (std::int64_t len = step; len <= static_cast<std::int64_t>(n) * slots * 16; len += step) {
      lengths.push_back(len - 4);
      text += doc("len" + std::to_string(len - 4), len - 4, 4, static_cast<int>(len % 97));
    }
    const fs::path input = e.dir / ("ladder" + std::to_string(n) + ".jsonl");
    std::ofstream(input) << text;
    std::int64_t longest[2] = {0, 0};
    for (int p = 0; p < 2; ++p) {
      const std::string policy = p == 0 ? "local" : "pooled";
      char args[128];
      std::snprintf(args, sizeof args, "--kv-pool-mb %.6f --max-lend-fraction %.2f --kv-policy %s",
                    pool_mb, lend, policy.c_str());
      const Run r = generate(e, n, model, input.string(), args, policy + std::to_string(n));
      if (r.code != 1 || r.results.size() != lengths.size()) e.ok = false;
      for (std::int64_t len : lengths) {
        const auto it = r.results.find("len" + std::to_string(len));
        if (it != r.results.end() && it->second["status"] == "done") {
          longest[p] = std::max(longest[p], len);
        }
      }
    }
    const double ratio = longest[0] > 0 ? double(longest[1]) / double(longest[0]) : 0.0;
    std::printf("%6d %14lld %14lld %7.2fx %7dx %13.2fx\n", n, static_cast<long long>(longest[0]),
                static_cast<long long>(longest[1]), ratio, n, 1.0 + (n - 1) * lend);
    std::fflush(stdout);
  }
  return footer(e);
}

int mixed(int, char**, const infllm::app::BenchOptions& o) {
  Env e = make_env("mixed");
  // --model PATH: a real model instead of a generated one (its rBlocks size the pools).
  const std::string& given = o.model;
  const std::string preset = o.full ? "small" : "micro";
  const std::string model = given.empty() ? make_model(e, preset) : given;
  const double block_bytes =
      given.empty()
          ? block_bytes_of(preset)
          : block_bytes_of(
                infllm::model::load_model(given, infllm::model::LoadOptions{false}).config);
  const int ranks = o.ranks;  // 2..64, checked by parse_bench
  const std::string fill = o.fill_waits ? "on" : "off";
  const std::string admission = o.admission_reserve ? "reserve" : "optimistic";
  const std::string remote = infllm::remote_attention_name(o.remote_attention);
  // Long documents that each take 60-95% of one pool (long prompts, short answers: the
  // long-document summarization case) among many short chat-sized requests.
  const int slots = 64;
  const int longs = o.full ? 12 : 6, shorts = o.full ? 128 : 64;
  const int long_new = 16, short_len = 64, short_new = 64;
  std::int64_t long_len = 0;
  std::string text;
  for (int i = 0; i < longs; ++i) {
    const std::int64_t len = slots * 16 * (60 + (i * 7) % 36) / 100 - long_new;
    long_len = std::max(long_len, len);
    text += doc("long" + std::to_string(i), len, long_new, i);
    for (int k = 0; k < shorts / longs; ++k) {
      const int j = i * (shorts / longs) + k;
      text += doc("short" + std::to_string(j), short_len, short_new, 100 + j);
    }
  }
  const fs::path input = e.dir / "mixed.jsonl";
  std::ofstream(input) << text;
  // The pool holds `slots` rBlocks of the model used.
  const double pool_mb = slots * block_bytes / 1048576.0;
  std::printf(
      "# mixed: %d ranks, %s model, %d long documents of up to %lld tokens (+%d new) and "
      "%d short ones of %d (+%d new), interleaved; %d-rBlock pools (%.3f MiB); --fill-waits %s "
      "--admission %s --remote-attention %s\n",
      ranks, given.empty() ? preset.c_str() : given.c_str(), longs,
      static_cast<long long>(long_len), long_new, shorts, short_len, short_new, slots, pool_mb,
      fill.c_str(), admission.c_str(), remote.c_str());
  std::printf("%8s %6s %10s %12s %10s %10s %8s\n", "policy", "done", "wall s", "tokens", "tok/s",
              "loans", "preempt");
  double tps[2] = {0, 0};
  for (int p = 0; p < 2; ++p) {
    const std::string policy = p == 0 ? "local" : "pooled";
    char args[256];
    std::snprintf(args, sizeof args,
                  "--kv-pool-mb %.6f --kv-policy %s --max-num-seqs 32 --fill-waits %s --admission "
                  "%s --remote-attention %s",
                  pool_mb, policy.c_str(), fill.c_str(), admission.c_str(), remote.c_str());
    const Run r = generate(e, ranks, model, input.string(), args, policy);
    if (r.code != 0) e.ok = false;
    std::int64_t tokens = 0, done = 0;
    for (const auto& [id, j] : r.results) {
      if (j["status"] != "done") continue;
      ++done;
      tokens += j["prompt_tokens"].get<std::int64_t>() + j["generated_tokens"].get<std::int64_t>();
    }
    const double wall = r.metrics.value("wall_s", 0.0);
    tps[p] = wall > 0 ? double(tokens) / wall : 0.0;
    std::printf("%8s %6lld %10.2f %12lld %10.0f %10lld %8lld\n", policy.c_str(),
                static_cast<long long>(done), wall, static_cast<long long>(tokens), tps[p],
                static_cast<long long>(r.metrics.value("loans_total", 0)),
                static_cast<long long>(r.metrics.value("preemptions", 0)));
  }
  std::printf("# throughput pooled / local: %.2fx (goal >= 2x; the paper: 1.35-3.4x on GPUs)\n",
              tps[0] > 0 ? tps[1] / tps[0] : 0.0);
  return footer(e);
}

int remote_attention(int, char**, const infllm::app::BenchOptions& o) {
  Env e = make_env("remote");
  const std::string preset = o.full ? "small" : "micro";
  const std::string model = make_model(e, preset);
  const double block_bytes = block_bytes_of(o.full ? "small" : "micro");
  const std::int64_t len = o.full ? 8000 : 4000;
  const int decode = 64;
  const fs::path input = e.dir / "one.jsonl";
  std::ofstream(input) << doc("long", len, decode, 1);
  const std::int64_t blocks = (len + decode + 15) / 16;
  std::printf(
      "# remote-attention: decode of one %lld-token document (%s model, %lld rBlocks of "
      "%.0f KiB), 4 ranks; pools of a third of its blocks: the home borrows the rest\n",
      static_cast<long long>(len), preset.c_str(), static_cast<long long>(blocks),
      block_bytes / 1024);
  std::printf("%12s %10s %14s %16s %16s %10s\n", "mode", "creditors", "remote blocks",
              "decode step ms", "KB moved/step", "vs local");
  double local_ms = 0;
  for (const std::string mode : {"all-local", "push-query", "pull-kv"}) {
    const bool local = mode == "all-local";
    const double pool_mb =
        (local ? double(blocks + 8) : double(blocks) / 3.0 + 4.0) * block_bytes / 1048576.0;
    char args[160];
    std::snprintf(args, sizeof args,
                  "--kv-pool-mb %.6f --max-lend-fraction 0.9 --dgfm off --remote-attention %s",
                  pool_mb, local ? "auto" : mode.c_str());
    const Run r = generate(e, 4, model, input.string(), args, mode);
    if (r.code != 0) e.ok = false;
    // Decode steps: those that processed one token (after the prefill).
    double ms = 0, bytes = 0;
    int n = 0;
    double prev_wall = 0;
    std::int64_t remote = 0;
    for (const auto& s : r.metrics.value("per_step", json::array())) {
      const double wall = s["wall_s"].get<double>();
      if (s["decode_tokens"].get<std::int64_t>() == 1 && s["prefill_tokens"] == 0) {
        ms += (wall - prev_wall) * 1e3;
        const auto& b = s["bytes"];
        bytes += double(b["query"].get<std::int64_t>() + b["partial"].get<std::int64_t>() +
                        b["pull"].get<std::int64_t>());
        remote = std::max<std::int64_t>(remote, s["remote_blocks"].get<std::int64_t>());
        ++n;
      }
      prev_wall = wall;
    }
    const double step_ms = n > 0 ? ms / n : 0.0;
    if (local) local_ms = step_ms;
    std::size_t creditors = 0;
    if (const auto it = r.results.find("long"); it != r.results.end()) {
      creditors = it->second["creditors"].size();
    }
    std::printf("%12s %10zu %14lld %16.3f %16.1f %9.2fx\n", mode.c_str(), creditors,
                static_cast<long long>(remote), step_ms, n > 0 ? bytes / n / 1024 : 0.0,
                local_ms > 0 ? step_ms / local_ms : 0.0);
  }
  return footer(e);
}

const infllm::app::BenchRegistration kCapacity{"capacity", &capacity};
const infllm::app::BenchRegistration kMixed{"mixed", &mixed};
const infllm::app::BenchRegistration kRemote{"remote-attention", &remote_attention};

}  // namespace
