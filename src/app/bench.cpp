// bench.cpp: dispatch of `infllm bench NAME` (see bench.hpp).
#include "app/bench.hpp"

#include <cstring>
#include <iostream>
#include <map>

#include "app/cli.hpp"
#include "core/errors.hpp"

namespace infllm::app {

namespace {
// Function-local so registrations from other translation units never see it uninitialized.
std::map<std::string, BenchFn>& registry() {
  static std::map<std::string, BenchFn> fns;
  return fns;
}
}  // namespace

const std::vector<BenchInfo>& benchmarks() {
  // NOTE: the names are docs/benchmarks.md's sections.
  static const std::vector<BenchInfo> kBenchmarks = {
      {"attention", "micro-attention GB/s vs the machine's read bandwidth; merge cost"},
      {"forward", "prefill and decode tokens/s vs sgemm FLOP rate and bandwidth"},
      {"core", "gManager decisions/s and DGFM planning time per boundary"},
      {"capacity", "longest document served, pooled vs local, 2..8 ranks"},
      {"mixed", "throughput of a mixed workload, pooled vs local"},
      {"remote-attention", "decode step time, push-query vs pull-KV vs all-local"},
      {"rma", "rBlock move bandwidth vs raw MPI_Put bandwidth"},
  };
  return kBenchmarks;
}

BenchRegistration::BenchRegistration(const char* name, BenchFn fn) { registry()[name] = fn; }

BenchFn find_bench(const std::string& name) {
  const auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second;
}

std::string bench_arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

int run_bench(const std::vector<std::string>& args, int argc, char** argv) {
  if (auto help = parse_help_only("bench", args)) {
    std::cout << *help << "\nbenchmarks:\n";
    for (const auto& b : benchmarks()) {
      std::cout << "  " << b.name << std::string(18 - std::string(b.name).size(), ' ') << b.summary
                << (find_bench(b.name) ? "" : "  [not built yet]") << "\n";
    }
    return 0;
  }
  std::string name;
  BenchOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--full") {
      options.full = true;
    } else if (a == "--model" || a == "--threads" || a == "--ranks" || a == "--fill-waits" ||
               a == "--admission" || a == "--remote-attention") {
      ++i;  // a benchmark's own option with its value: the benchmark reads it from argv
    } else if (name.empty() && a.rfind("--", 0) != 0) {
      name = a;
    }
  }
  if (name.empty()) throw UsageError("name", "which benchmark? (infllm bench --help lists them)");
  for (const auto& b : benchmarks()) {
    if (name != b.name) continue;
    const BenchFn run = find_bench(name);
    if (run == nullptr) {
      std::cerr << "infllm bench " << name << ": not built yet in infllm " << INFLLM_VERSION
                << "\n";
      return static_cast<int>(ExitCode::kBadInput);
    }
    return run(argc, argv, options);
  }
  throw UsageError("name", "unknown benchmark '" + name + "' (infllm bench --help lists them)");
}

}  // namespace infllm::app
