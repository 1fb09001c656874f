// cli.cpp: option tables and validation of the `infllm` subcommands (see cli.hpp).
#include "app/cli.hpp"

#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "core/errors.hpp"

namespace po = boost::program_options;

namespace infllm::app {

const std::vector<SubcommandInfo>& subcommands() {
  static const std::vector<SubcommandInfo> kCommands = {
      {"generate", "batch generation for every document of an input (under mpiexec -n N)"},
      {"make-model", "write a Llama-architecture model with deterministic random weights"},
      {"inspect", "describe a model directory or GGUF file, an input or an output file"},
      {"bench", "run a benchmark of docs/benchmarks.md and print its table"},
      {"simulate", "the cluster simulator: core logic driven by a cost model"},
  };
  return kCommands;
}

std::string top_level_help() {
  std::ostringstream os;
  os << "infllm " << INFLLM_VERSION
     << ": batch generation over very long documents with a distributed KV cache\n\n"
        "usage: infllm <command> [options]     (infllm <command> --help for its options)\n"
        "       mpiexec -n N infllm generate --model PATH --input FILE --output FILE\n\n"
        "commands:\n";
  for (const auto& c : subcommands()) {
    os << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ') << c.summary << "\n";
  }
  os << "\nexit codes: 0 all done, 1 some request not done, 2 bad usage or input,\n"
        "            3 internal or MPI failure, 4 stopped by a signal (resumable)\n";
  return os.str();
}

const char* backend_choice_name(BackendChoice b) {
  switch (b) {
    case BackendChoice::kCpu:
      return "cpu";
    case BackendChoice::kCuda:
      return "cuda";
    case BackendChoice::kAuto:
      break;
  }
  return "auto";
}

const char* weight_dtype_name(WeightDtype w) {
  switch (w) {
    case WeightDtype::kBF16:
      return "bf16";
    case WeightDtype::kF16:
      return "f16";
    case WeightDtype::kF32:
      return "f32";
    case WeightDtype::kAuto:
      break;
  }
  return "auto";
}

namespace {

// Boost's messages name options as "--name"; keep the option name for UsageError.
[[noreturn]] void rethrow_as_usage(const po::error& e) {
  if (const auto* opt = dynamic_cast<const po::error_with_option_name*>(&e)) {
    std::string name = opt->get_option_name();
    while (!name.empty() && name.front() == '-') name.erase(0, 1);
    throw UsageError(name, e.what());
  }
  throw UsageError("?", e.what());
}

std::string help_text(const std::string& usage, const po::options_description& desc) {
  std::ostringstream os;
  os << "usage: " << usage << "\n\n" << desc;
  return os.str();
}

template <typename T>
void require_range(const char* name, T value, T lo, T hi) {
  if constexpr (std::is_floating_point_v<T>) {
    // NaN compares false with everything: without this, --temperature nan would pass.
    if (!std::isfinite(value)) {
      std::ostringstream os;
      os << "value " << value << " is not a finite number";
      throw UsageError(name, os.str());
    }
  }
  if (value < lo || value > hi) {
    std::ostringstream os;
    os << "value " << value << " out of range [" << lo << ", " << hi << "]";
    throw UsageError(name, os.str());
  }
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& desc,
                        const po::positional_options_description* positional = nullptr) {
  po::variables_map vm;
  try {
    auto parser = po::command_line_parser(args).options(desc);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("config") && !vm["config"].as<std::string>().empty()) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw UsageError("config", path + ": cannot open config file");
      po::store(po::parse_config_file(in, desc), vm);
    }
    if (!vm.count("help")) po::notify(vm);
  } catch (const po::error& e) {
    rethrow_as_usage(e);
  }
  return vm;
}

BackendChoice parse_backend(const std::string& v) {
  for (BackendChoice b : {BackendChoice::kAuto, BackendChoice::kCpu, BackendChoice::kCuda}) {
    if (v == backend_choice_name(b)) return b;
  }
  throw UsageError("backend", "'" + v + "' is not one of cpu, cuda, auto");
}

WeightDtype parse_weight_dtype(const std::string& v) {
  for (WeightDtype w :
       {WeightDtype::kAuto, WeightDtype::kBF16, WeightDtype::kF16, WeightDtype::kF32}) {
    if (v == weight_dtype_name(w)) return w;
  }
  throw UsageError("weight-dtype", "'" + v + "' is not one of bf16, f16, f32, auto");
}

KvPolicy parse_kv_policy(const std::string& v) {
  for (KvPolicy p : {KvPolicy::kPooled, KvPolicy::kLocal}) {
    if (v == kv_policy_name(p)) return p;
  }
  throw UsageError("kv-policy", "'" + v + "' is not one of pooled, local");
}

RemoteAttention parse_remote_attention(const std::string& v) {
  for (RemoteAttention m :
       {RemoteAttention::kPushQuery, RemoteAttention::kPullKv, RemoteAttention::kAuto}) {
    if (v == remote_attention_name(m)) return m;
  }
  throw UsageError("remote-attention", "'" + v + "' is not one of push-query, pull-kv, auto");
}

bool parse_admission(const std::string& v) {
  if (v != "reserve" && v != "optimistic") {
    throw UsageError("admission", "'" + v + "' is not one of reserve, optimistic");
  }
  return v == "reserve";
}

bool parse_on_off(const char* name, const std::string& v) {
  if (v == "on") return true;
  if (v == "off") return false;
  throw UsageError(name, "'" + v + "' is not one of on, off");
}

}  // namespace

Parsed<GenerateConfig> parse_generate(const std::vector<std::string>& args) {
  Parsed<GenerateConfig> out;
  GenerateConfig& c = out.config;
  std::string kv_policy = "pooled", remote = "auto", dgfm = "on", fill_waits = "on",
              admission = "reserve", backend = "auto", weight_dtype = "auto";
  po::options_description job("job");
  // clang-format off
  job.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>()->default_value(""), "read options from this file (key = value lines)")
      ("model", po::value(&c.model)->required(), "model: Hugging Face directory, .gguf file, or ORG/NAME[@REV] already in the Hugging Face cache")
      ("input", po::value(&c.input)->required(), "input documents: .jsonl or .h5/.hdf5")
      ("output", po::value(&c.output)->required(), "output results: .jsonl or .h5/.hdf5")
      ("resume", po::bool_switch(&c.resume), "continue an interrupted run's output")
      ("overwrite", po::bool_switch(&c.overwrite), "replace an existing output")
      ("metrics", po::value(&c.metrics)->default_value(""), "write a JSON summary of the run here")
      ("max-record-mb", po::value(&c.max_record_mb)->default_value(c.max_record_mb), "longest JSONL input line read, MiB (longer: refused, so that memory stays bounded on any input)")
      ("quiet", po::bool_switch(&c.quiet), "no progress lines");
  // clang-format on
  po::options_description sampling("sampling and stopping");
  // clang-format off
  sampling.add_options()
      ("max-new-tokens", po::value(&c.max_new_tokens)->default_value(c.max_new_tokens), "tokens to generate per request")
      ("min-new-tokens", po::value(&c.min_new_tokens)->default_value(c.min_new_tokens), "no stop before this many")
      ("ignore-eos", po::bool_switch(&c.ignore_eos), "do not stop at end-of-sequence tokens")
      ("stop", po::value(&c.stop)->composing(), "stop string (repeatable)")
      ("temperature", po::value(&c.temperature)->default_value(c.temperature), "0 = greedy")
      ("top-p", po::value(&c.top_p)->default_value(c.top_p), "nucleus sampling mass")
      ("top-k", po::value(&c.top_k)->default_value(c.top_k), "0 = off")
      ("min-p", po::value(&c.min_p)->default_value(c.min_p), "minimum probability relative to the top token")
      ("seed", po::value(&c.seed)->default_value(c.seed), "sampling seed (per request: seed, id, position)")
      ("logprobs", po::value(&c.logprobs)->default_value(c.logprobs), "record the top-N log-probabilities");
  // clang-format on
  po::options_description kv("KV cache and batching");
  // clang-format off
  kv.add_options()
      ("threads", po::value(&c.threads)->default_value(c.threads), "threads per rank (0 = its cores / the ranks on the node sharing them)")
      ("backend", po::value(&backend)->default_value(backend), "cpu | cuda | auto: where the forward pass runs (cuda: the GPU of the rank's index on its node, in a build with the CUDA backend; auto: cuda when such a build sees a GPU)")
      ("weight-dtype", po::value(&weight_dtype)->default_value(weight_dtype), "bf16 | f16 | f32 | auto: how the CUDA backend holds weight matrices (auto: bf16); the CPU backend computes in f32 from the weights as stored")
      ("kv-pool-mb", po::value(&c.kv_pool_mb)->default_value(c.kv_pool_mb), "rBlock pool per rank in MiB, fractional allowed (0 = automatic)")
      ("block-tokens", po::value(&c.engine.instance.block_tokens)->default_value(c.engine.instance.block_tokens), "tokens per rBlock")
      ("max-lend-fraction", po::value(&c.engine.max_lend_fraction)->default_value(c.engine.max_lend_fraction), "most of a pool lent to other ranks")
      ("max-batch-tokens", po::value(&c.engine.instance.max_batch_tokens)->default_value(c.engine.instance.max_batch_tokens), "token budget of one step per rank")
      ("max-num-seqs", po::value(&c.engine.instance.max_num_seqs)->default_value(c.engine.instance.max_num_seqs), "running requests per rank")
      ("kv-policy", po::value(&kv_policy)->default_value(kv_policy), "pooled | local")
      ("remote-attention", po::value(&remote)->default_value(remote), "push-query | pull-kv | auto")
      ("dgfm", po::value(&dgfm)->default_value(dgfm), "on | off: pay debts back between steps")
      ("dgfm-budget-mb", po::value(&c.dgfm_budget_mb)->default_value(c.dgfm_budget_mb), "most KV the DGFM moves per step boundary, MiB")
      ("fill-waits", po::value(&fill_waits)->default_value(fill_waits), "on | off: a rank done with its step before the others runs extra steps of its requests whose KV is all at home (pooled)")
      ("admission", po::value(&admission)->default_value(admission), "reserve | optimistic: place a request only where the cluster's room (lending caps included) covers it after the running requests' remaining growth, or against the free slots alone, preempting when growth meets (pooled)")
      ("check-invariants", po::bool_switch(&c.engine.check_invariants)->default_value(c.engine.check_invariants), "check every rManager, the gManager, the ledger and the cross-rank rule at every step boundary (pooled; always on in debug builds)");
  // clang-format on
  po::options_description all;
  all.add(job).add(sampling).add(kv);

  const auto vm = parse(args, all);
  if (vm.count("help")) {
    out.help = help_text("infllm generate --model PATH --input FILE --output FILE [options]", all);
    return out;
  }
  c.engine.policy = parse_kv_policy(kv_policy);
  c.engine.remote = parse_remote_attention(remote);
  c.backend = parse_backend(backend);
  c.weight_dtype = parse_weight_dtype(weight_dtype);
  if (c.backend == BackendChoice::kCpu && c.weight_dtype != WeightDtype::kAuto &&
      c.weight_dtype != WeightDtype::kF32) {
    throw UsageError("weight-dtype", std::string(weight_dtype_name(c.weight_dtype)) +
                                         " applies to --backend cuda; the CPU backend computes "
                                         "in f32 from the weights as stored");
  }
  c.engine.dgfm = parse_on_off("dgfm", dgfm);
  c.engine.fill_waits = parse_on_off("fill-waits", fill_waits);
  c.engine.reserve_growth = parse_admission(admission);
  require_range("max-new-tokens", c.max_new_tokens, 0, 1 << 24);
  require_range("min-new-tokens", c.min_new_tokens, 0, c.max_new_tokens);
  require_range("temperature", c.temperature, 0.0, 100.0);
  require_range("top-p", c.top_p, 0.0, 1.0);
  if (c.top_p == 0.0) throw UsageError("top-p", "must be greater than 0");
  require_range("top-k", c.top_k, 0, 1 << 24);
  require_range("min-p", c.min_p, 0.0, 1.0);
  require_range("logprobs", c.logprobs, 0, 20);
  require_range("threads", c.threads, 0, 4096);
  require_range("kv-pool-mb", c.kv_pool_mb, 0.0, 1e9);
  require_range("block-tokens", c.engine.instance.block_tokens, 1, 65536);
  require_range("max-lend-fraction", c.engine.max_lend_fraction, 0.0, 1.0);
  require_range("max-batch-tokens", c.engine.instance.max_batch_tokens, 1, 1 << 24);
  require_range("max-num-seqs", c.engine.instance.max_num_seqs, 1, 1 << 20);
  require_range("dgfm-budget-mb", c.dgfm_budget_mb, 0.0, 1e9);
  require_range("max-record-mb", c.max_record_mb, 1, 1 << 20);
  // The same rules as a JSONL record's fields: a seed in [0, 2^63 - 1], no empty stop string.
  require_range("seed", c.seed, std::int64_t{0}, std::numeric_limits<std::int64_t>::max());
  for (const auto& s : c.stop) {
    if (s.empty()) throw UsageError("stop", "must be a non-empty string");
  }
  if (c.resume && c.overwrite) throw UsageError("resume", "cannot be combined with --overwrite");
  return out;
}

Parsed<MakeModelConfig> parse_make_model(const std::vector<std::string>& args) {
  Parsed<MakeModelConfig> out;
  MakeModelConfig& c = out.config;
  po::options_description desc("make-model");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>()->default_value(""), "read options from this file (key = value lines)")
      ("preset", po::value(&c.preset)->default_value(c.preset), "model shape: micro | small | 1b")
      ("out", po::value(&c.out)->required(), "output directory (Hugging Face layout)")
      ("seed", po::value(&c.seed)->default_value(c.seed), "weight seed")
      ("dtype", po::value(&c.dtype)->default_value(c.dtype), "f32 | f16 | bf16");
  // clang-format on
  const auto vm = parse(args, desc);
  if (vm.count("help")) {
    out.help = help_text(
        "infllm make-model --preset NAME --out DIR [--seed S] [--dtype f32|f16|bf16]\n\n"
        "presets: micro (tests: hidden 128, 2 layers, 4/2 heads, vocab 512), small (GQA 3,\n"
        "llama3 rope scaling, untied), 1b (Llama-3.2-1B body, for GPUs)",
        desc);
    return out;
  }
  if (c.dtype != "f32" && c.dtype != "f16" && c.dtype != "bf16") {
    throw UsageError("dtype", "'" + c.dtype + "' is not one of f32, f16, bf16");
  }
  return out;
}

Parsed<BenchConfig> parse_bench(const std::vector<std::string>& args) {
  Parsed<BenchConfig> out;
  BenchConfig& c = out.config;
  std::string fill_waits = "on", admission = "reserve", remote = "auto", backend = "cpu";
  po::options_description desc("bench");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("name", po::value(&c.name), "benchmark name")
      ("full", po::bool_switch(&c.full), "the sizes docs/benchmarks.md records (slow)")
      ("model", po::value(&c.model)->default_value(""), "model for `forward` (default: the cached SmolLM2) and `mixed` (default: generated)")
      ("threads", po::value(&c.threads)->default_value(c.threads), "threads for `forward` (0 = every core this process may run on)")
      ("ranks", po::value(&c.ranks)->default_value(c.ranks), "ranks of both runs of `mixed`, 2..64")
      ("fill-waits", po::value(&fill_waits)->default_value(fill_waits), "--fill-waits of both runs of `mixed`: on | off")
      ("admission", po::value(&admission)->default_value(admission), "--admission of both runs of `mixed`: reserve | optimistic")
      ("remote-attention", po::value(&remote)->default_value(remote), "--remote-attention of both runs of `mixed`: push-query | pull-kv | auto")
      ("backend", po::value(&backend)->default_value(backend), "`attention` and `forward`: cpu | cuda (the CUDA backend on GPU 0, in a build that has it)");
  // clang-format on
  po::positional_options_description positional;
  positional.add("name", 1);
  const auto vm = parse(args, desc, &positional);
  if (vm.count("help")) {
    out.help = help_text("infllm bench NAME [--full] [options]", desc);
    return out;
  }
  if (c.name.empty()) throw UsageError("name", "which benchmark? (infllm bench --help lists them)");
  c.fill_waits = parse_on_off("fill-waits", fill_waits);
  c.admission_reserve = parse_admission(admission);
  c.remote_attention = parse_remote_attention(remote);
  c.backend = parse_backend(backend);
  if (c.backend == BackendChoice::kAuto) {
    throw UsageError("backend", "a benchmark measures one backend: cpu or cuda");
  }
  if (c.backend == BackendChoice::kCuda && c.name != "attention" && c.name != "forward") {
    throw UsageError("backend", "cuda: only `attention` and `forward` run on the CUDA backend");
  }
  require_range("threads", c.threads, 0, 4096);
  require_range("ranks", c.ranks, 2, 64);
  return out;
}

Parsed<InspectConfig> parse_inspect(const std::vector<std::string>& args) {
  Parsed<InspectConfig> out;
  po::options_description desc("inspect");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("file", po::value(&out.config.path)->required(), "model directory, .gguf file, or .jsonl/.h5 input or output");
  // clang-format on
  po::positional_options_description positional;
  positional.add("file", 1);
  const auto vm = parse(args, desc, &positional);
  if (vm.count("help")) out.help = help_text("infllm inspect PATH", desc);
  return out;
}

Parsed<SimulateConfig> parse_simulate(const std::vector<std::string>& args) {
  Parsed<SimulateConfig> out;
  SimulateConfig& c = out.config;
  EngineOptions& e = c.engine;
  std::string instances = "8", policy = "both", remote = "auto", dgfm = "on", fill_waits = "on",
              admission = "reserve";
  double dgfm_budget_mb = 64.0;
  po::options_description desc("simulate");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("device", po::value(&c.device)->default_value(c.device), "device profile: a name in sim/devices (a100-40gb, a100-80gb, h100, h200) or a .json file")
      ("node-link", po::value(&c.node_link)->default_value(c.node_link), "link between instances of a node: a name in sim/links (nvlink3, nvlink4, pcie4, ...) or a .json file")
      ("net-link", po::value(&c.net_link)->default_value(c.net_link), "link between nodes: a name in sim/links (ib-hdr, ib-ndr, ...) or a .json file")
      ("model", po::value(&c.model)->default_value(c.model), "model shape: a name in sim/models (llama2-7b, llama2-13b, llama2-70b, llama3-8b, llama3-70b, smollm2-135m) or a .json file")
      ("tp", po::value(&c.tp)->default_value(c.tp), "devices per instance (tensor parallel within a node)")
      ("instances", po::value(&instances)->default_value(instances), "instances: one count, or a comma list for a scaling table (2,4,8,16,32)")
      ("per-node", po::value(&c.per_node)->default_value(c.per_node), "instances per node")
      ("pool-blocks", po::value(&c.pool_blocks)->default_value(c.pool_blocks), "rBlocks per instance (0 = what the device memory holds after the weights)")
      ("memory-fraction", po::value(&c.memory_fraction)->default_value(c.memory_fraction), "of each device's memory, for the weights and the pool")
      ("policy", po::value(&policy)->default_value(policy), "local | pooled | both (one run each, the same scheduler)")
      ("input", po::value(&c.input)->default_value(""), "workload: JSONL with prompt_tokens and max_new_tokens per line, and arrival_s if not all at once (instead of the generated one)")
      ("short", po::value(&c.short_count)->default_value(c.short_count), "generated workload: chat-like requests")
      ("short-prompt", po::value(&c.short_prompt)->default_value(c.short_prompt), "their prompt tokens")
      ("short-new", po::value(&c.short_new)->default_value(c.short_new), "their new tokens")
      ("long", po::value(&c.long_count)->default_value(c.long_count), "generated workload: long documents")
      ("long-min", po::value(&c.long_min)->default_value(c.long_min), "their shortest prompt")
      ("long-max", po::value(&c.long_max)->default_value(c.long_max), "their longest prompt (uniform in between)")
      ("long-new", po::value(&c.long_new)->default_value(c.long_new), "their new tokens")
      ("rate", po::value(&c.rate)->default_value(c.rate), "generated workload: arrivals per second (Poisson); 0 = all at once (offline batch)")
      ("seed", po::value(&c.seed)->default_value(c.seed), "seed of the generated workload's lengths, order and arrivals")
      ("csv", po::value(&c.csv)->default_value(""), "also write the table as CSV here")
      ("block-tokens", po::value(&e.instance.block_tokens)->default_value(e.instance.block_tokens), "tokens per rBlock")
      ("max-batch-tokens", po::value(&e.instance.max_batch_tokens)->default_value(e.instance.max_batch_tokens), "token budget of one step per instance")
      ("max-num-seqs", po::value(&e.instance.max_num_seqs)->default_value(e.instance.max_num_seqs), "running requests per instance")
      ("max-lend-fraction", po::value(&e.max_lend_fraction)->default_value(e.max_lend_fraction), "most of a pool lent to other instances")
      ("remote-attention", po::value(&remote)->default_value(remote), "push-query | pull-kv | auto")
      ("dgfm", po::value(&dgfm)->default_value(dgfm), "on | off")
      ("dgfm-budget-mb", po::value(&dgfm_budget_mb)->default_value(dgfm_budget_mb), "most KV the DGFM moves per boundary, MiB")
      ("fill-waits", po::value(&fill_waits)->default_value(fill_waits), "on | off")
      ("admission", po::value(&admission)->default_value(admission), "reserve | optimistic")
      ("check-invariants", po::bool_switch(&e.check_invariants)->default_value(e.check_invariants), "check every rManager, the gManager, the ledger and the cross-instance rule at every boundary");
  // clang-format on
  const auto vm = parse(args, desc, nullptr);
  if (vm.count("help")) {
    out.help = help_text("infllm simulate [options]", desc);
    return out;
  }
  c.instances.clear();
  for (std::size_t at = 0; at <= instances.size();) {
    const std::size_t comma = std::min(instances.find(',', at), instances.size());
    const std::string item = instances.substr(at, comma - at);
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) {
      throw UsageError("instances", "'" + instances + "' is not a count or a comma list of counts");
    }
    require_range("instances", n, 1, 100000);
    c.instances.push_back(n);
    at = comma + 1;
  }
  if (policy == "both") {
    c.policies = {KvPolicy::kLocal, KvPolicy::kPooled};
  } else if (policy == "local" || policy == "pooled") {
    c.policies = {parse_kv_policy(policy)};
  } else {
    throw UsageError("policy", "'" + policy + "' is not one of local, pooled, both");
  }
  e.remote = parse_remote_attention(remote);
  e.dgfm = parse_on_off("dgfm", dgfm);
  e.fill_waits = parse_on_off("fill-waits", fill_waits);
  e.reserve_growth = parse_admission(admission);
  require_range("dgfm-budget-mb", dgfm_budget_mb, 0.0, 1e9);
  e.dgfm_budget_bytes = static_cast<std::int64_t>(dgfm_budget_mb * 1048576.0);
  require_range("tp", c.tp, 1, 64);
  require_range("per-node", c.per_node, 1, 4096);
  require_range("pool-blocks", c.pool_blocks, std::int64_t{0}, std::int64_t{1} << 31);
  require_range("memory-fraction", c.memory_fraction, 0.01, 1.0);
  require_range("rate", c.rate, 0.0, 1e9);
  require_range("short", c.short_count, std::int64_t{0}, std::int64_t{1} << 30);
  require_range("long", c.long_count, std::int64_t{0}, std::int64_t{1} << 30);
  require_range("short-prompt", c.short_prompt, std::int64_t{1}, std::int64_t{1} << 30);
  require_range("long-min", c.long_min, std::int64_t{1}, std::int64_t{1} << 30);
  require_range("long-max", c.long_max, c.long_min, std::int64_t{1} << 30);
  require_range("short-new", c.short_new, std::int64_t{1}, std::int64_t{1} << 24);
  require_range("long-new", c.long_new, std::int64_t{1}, std::int64_t{1} << 24);
  require_range("block-tokens", e.instance.block_tokens, 1, 65536);
  require_range("max-batch-tokens", e.instance.max_batch_tokens, 1, 1 << 24);
  require_range("max-num-seqs", e.instance.max_num_seqs, 1, 1 << 20);
  require_range("max-lend-fraction", e.max_lend_fraction, 0.0, 1.0);
  return out;
}

}  // namespace infllm::app
