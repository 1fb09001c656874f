// cli.hpp: the `infllm` command line as pure functions from arguments to validated configs.
//
// STYLE.md habit 11: parsing is separate from running so it can be unit-tested; every option
// has a default shown in --help; an out-of-range value is a UsageError naming the option.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/engine_options.hpp"
#include "core/kv_policy.hpp"

namespace infllm::app {

#ifdef NDEBUG
inline constexpr bool kDebugBuild = false;
#else
inline constexpr bool kDebugBuild = true;
#endif

// The subcommands of docs/design.md, in --help order.
struct SubcommandInfo {
  const char* name;
  const char* summary;
};
const std::vector<SubcommandInfo>& subcommands();

// Top-level usage text (`infllm --help`).
std::string top_level_help();

// Where the forward pass runs (--backend): the CPU; the CUDA backend on the GPU of the rank's
// node-local index (builds with it only); or auto, which is cuda when that build sees a device.
enum class BackendChoice { kAuto, kCpu, kCuda };
// How the CUDA backend holds weight matrices (--weight-dtype); auto is bf16 there. The CPU
// backend computes in f32 from the weights as stored.
enum class WeightDtype { kAuto, kBF16, kF16, kF32 };

const char* backend_choice_name(BackendChoice b);
const char* weight_dtype_name(WeightDtype w);

struct GenerateConfig {
  std::string model;
  std::string input;
  std::string output;
  // Sampling and stopping.
  int max_new_tokens = 256;
  int min_new_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  int top_k = 0;  // 0 = off
  double min_p = 0.0;
  // Signed, so that "-1" is refused as -1 (an unsigned option reads it as 2^64 - 1).
  std::int64_t seed = 0;
  int logprobs = 0;
  // Resources.
  int threads = 0;               // 0 = node cores / ranks on the node
  double kv_pool_mb = 0.0;       // 0 = automatic
  double dgfm_budget_mb = 64.0;  // per boundary (engine.dgfm_budget_bytes); < 1 rBlock moves none
  // The engine's own options, parsed in place (--block-tokens, --max-lend-fraction,
  // --max-batch-tokens, --max-num-seqs, --kv-policy, --remote-attention, --dgfm, --fill-waits,
  // --admission, --check-invariants); the pool's slots and the EOS ids come from the model.
  EngineOptions engine = [] {
    EngineOptions e;
    e.check_invariants = kDebugBuild;  // on by default in debug builds
    return e;
  }();
  BackendChoice backend = BackendChoice::kAuto;
  WeightDtype weight_dtype = WeightDtype::kAuto;
  // The longest JSONL input line read, in MiB: memory stays bounded on any input.
  int max_record_mb = 64;
  // The job.
  bool resume = false;
  bool overwrite = false;
  std::string metrics;
  bool quiet = false;
};

// Result of parsing one subcommand's arguments: either a help text to print or a config.
template <typename Config>
struct Parsed {
  std::optional<std::string> help;
  Config config;
};

// `args` are the arguments after the subcommand name. Throws UsageError on any problem
// (unknown option, bad value, missing required option, out-of-range value, bad --config file).
Parsed<GenerateConfig> parse_generate(const std::vector<std::string>& args);

// `infllm make-model`: write a generated model (src/model/maker/make_model.hpp). The preset name is
// checked where the presets live (make_model throws UsageError("preset")); dtype is checked here.
struct MakeModelConfig {
  std::string preset = "micro";
  std::string out;
  unsigned long long seed = 0;
  std::string dtype = "f32";  // f32 | f16 | bf16
};
Parsed<MakeModelConfig> parse_make_model(const std::vector<std::string>& args);

// `infllm inspect PATH`: describe a model directory or GGUF file, an input or an output.
struct InspectConfig {
  std::string path;
};
Parsed<InspectConfig> parse_inspect(const std::vector<std::string>& args);

// `infllm bench NAME`: the benchmarks of docs/benchmarks.md (app/bench.hpp). The options are
// the benchmarks' own; each benchmark reads those it uses and says which in --help.
struct BenchConfig {
  std::string name;
  bool full = false;              // the sizes docs/benchmarks.md records
  std::string model;              // "" = the benchmark's default model
  int threads = 0;                // `forward`: threads (0 = every core this process may run on)
  int ranks = 4;                  // `mixed`: ranks of both runs
  bool fill_waits = true;         // `mixed`: --fill-waits of the pooled run
  bool admission_reserve = true;  // `mixed`: --admission of the pooled run
  RemoteAttention remote_attention = RemoteAttention::kAuto;  // `mixed`: both runs
  BackendChoice backend = BackendChoice::kCpu;                // `attention`, `forward`: cpu or cuda
};
// Throws UsageError naming the option on any problem; an unknown benchmark name is the
// caller's to refuse (the registry lives with the benchmarks).
Parsed<BenchConfig> parse_bench(const std::vector<std::string>& args);

// `infllm simulate`: the cluster simulator (sim/simulator.hpp, docs/simulate.md).
struct SimulateConfig {
  // Profiles: a name under sim/devices, sim/links, sim/models, or a path to a .json file.
  std::string device = "a100-80gb";
  std::string node_link = "nvlink3";  // between instances of one node
  std::string net_link = "ib-hdr";    // between nodes
  std::string model = "llama2-7b";
  int tp = 1;                     // devices per instance (tensor parallel)
  std::vector<int> instances{8};  // one run per count (--instances 2,4,8)
  int per_node = 8;
  std::int64_t pool_blocks = 0;  // rBlocks per instance; 0 = what the device memory holds
  double memory_fraction = 0.9;  // of the device memory, for the weights and the pool
  std::vector<KvPolicy> policies{KvPolicy::kLocal, KvPolicy::kPooled};
  // The workload: --input (JSONL: prompt_tokens, max_new_tokens per line), or generated.
  std::string input;
  std::int64_t short_count = 64, short_prompt = 512, short_new = 128;
  std::int64_t long_count = 8, long_min = 8000, long_max = 200000, long_new = 64;
  double rate = 0;  // requests per second (Poisson); 0 = all at once
  std::uint64_t seed = 0;
  std::string csv;  // also write the table here
  // The engine's options (block tokens, batch limits, lending, remote attention, DGFM, fill
  // waits, admission); the batch limits default to GPU-sized ones (2048 tokens, 64 sequences).
  EngineOptions engine = [] {
    EngineOptions e;
    e.instance.max_batch_tokens = 2048;
    e.instance.max_num_seqs = 64;
    e.check_invariants = kDebugBuild;
    return e;
  }();
};
Parsed<SimulateConfig> parse_simulate(const std::vector<std::string>& args);

}  // namespace infllm::app
