// bench.cpp: dispatch of `infllm bench NAME` (see bench.hpp).
#include "app/bench.hpp"

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

int run_bench(const std::vector<std::string>& args, int argc, char** argv) {
  const Parsed<BenchConfig> parsed = parse_bench(args);
  if (parsed.help) {
    std::cout << *parsed.help << "\nbenchmarks:\n";
    for (const auto& b : benchmarks()) {
      std::cout << "  " << b.name << std::string(18 - std::string(b.name).size(), ' ') << b.summary
                << (find_bench(b.name) ? "" : "  [not built yet]") << "\n";
    }
    return 0;
  }
  const BenchOptions& options = parsed.config;
  const std::string& name = options.name;
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
