// bench.hpp: the table of `infllm bench NAME` benchmarks.
//
// Each benchmark prints a table with units and the ratio it exists to show (STYLE.md habit 10)
// and returns an exit code. A name whose benchmark is not built yet says so and exits 2.
#pragma once

#include <string>
#include <vector>

namespace infllm::app {

struct BenchOptions {
  bool full = false;  // the sizes docs/benchmarks.md records
};

using BenchFn = int (*)(int argc, char** argv, const BenchOptions& options);

struct BenchInfo {
  const char* name;
  const char* summary;
  BenchFn run;  // nullptr: not built yet
};

const std::vector<BenchInfo>& benchmarks();

// Runs `infllm bench <args>`; argc/argv are the process's own (MPI benchmarks need them).
int run_bench(const std::vector<std::string>& args, int argc, char** argv);

}  // namespace infllm::app
