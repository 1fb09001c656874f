// bench.hpp: `infllm bench NAME`: the benchmarks of docs/benchmarks.md.
//
// Each benchmark prints a table with units and the ratio it exists to show (STYLE.md habit 10)
// and returns an exit code. A benchmark lives in src/app/bench_<name>.cpp, compiled into the
// executable itself, and registers its function with a file-scope BenchRegistration. A listed
// name with no registered function says "not built yet" and exits 2.
#pragma once

#include <string>
#include <vector>

#include "app/cli.hpp"

namespace infllm::app {

// A benchmark's options: parse_bench's (app/cli.hpp), validated before it starts.
using BenchOptions = BenchConfig;

// argc/argv are the process's own (MPI benchmarks need them for MPI_Init).
using BenchFn = int (*)(int argc, char** argv, const BenchOptions& options);

struct BenchInfo {
  const char* name;
  const char* summary;
};

// The benchmarks docs/benchmarks.md describes, in order.
const std::vector<BenchInfo>& benchmarks();

// At file scope in bench_<name>.cpp: `const BenchRegistration kReg{"attention", &run};`
struct BenchRegistration {
  BenchRegistration(const char* name, BenchFn fn);
};

// The registered function of `name`, or nullptr.
BenchFn find_bench(const std::string& name);

// Runs `infllm bench <args>`.
int run_bench(const std::vector<std::string>& args, int argc, char** argv);

}  // namespace infllm::app
