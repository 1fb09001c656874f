// bench.cpp: dispatch of `infllm bench NAME` (see bench.hpp).
#include "app/bench.hpp"

#include <iostream>

#include "app/cli.hpp"
#include "core/errors.hpp"

namespace infllm::app {

const std::vector<BenchInfo>& benchmarks() {
  // NOTE: the names are docs/benchmarks.md's sections; each issue that builds one fills `run`.
  static const std::vector<BenchInfo> kBenchmarks = {
      {"attention", "micro-attention GB/s vs the machine's read bandwidth; merge cost", nullptr},
      {"forward", "prefill and decode tokens/s vs sgemm FLOP rate and bandwidth", nullptr},
      {"core", "gManager decisions/s and DGFM planning time per boundary", nullptr},
      {"capacity", "longest document served, pooled vs local, 2..8 ranks", nullptr},
      {"mixed", "throughput of a mixed workload, pooled vs local", nullptr},
      {"remote-attention", "decode step time, push-query vs pull-KV vs all-local", nullptr},
      {"rma", "rBlock move bandwidth vs raw MPI_Put bandwidth", nullptr},
  };
  return kBenchmarks;
}

int run_bench(const std::vector<std::string>& args, int argc, char** argv) {
  if (auto help = parse_help_only("bench", args)) {
    std::cout << *help << "\nbenchmarks:\n";
    for (const auto& b : benchmarks()) {
      std::cout << "  " << b.name << std::string(18 - std::string(b.name).size(), ' ')
                << b.summary << (b.run ? "" : "  [not built yet]") << "\n";
    }
    return 0;
  }
  std::string name;
  BenchOptions options;
  for (const auto& a : args) {
    if (a == "--full") {
      options.full = true;
    } else if (name.empty()) {
      name = a;
    }
  }
  if (name.empty()) throw UsageError("name", "which benchmark? (infllm bench --help lists them)");
  for (const auto& b : benchmarks()) {
    if (name != b.name) continue;
    if (b.run == nullptr) {
      std::cerr << "infllm bench " << name << ": not built yet in infllm " << INFLLM_VERSION
                << "\n";
      return static_cast<int>(ExitCode::kBadInput);
    }
    return b.run(argc, argv, options);
  }
  throw UsageError("name", "unknown benchmark '" + name + "' (infllm bench --help lists them)");
}

}  // namespace infllm::app
