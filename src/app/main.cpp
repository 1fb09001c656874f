// main.cpp: the `infllm` executable: picks the subcommand, maps exceptions to exit codes.
//
// Exit codes (docs/design.md): 0 all done, 1 some request not done, 2 bad usage or input,
// 3 internal or MPI failure, 4 stopped by a signal.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "app/bench.hpp"
#include "app/cli.hpp"
#include "core/errors.hpp"

#if defined(INFLLM_HAVE_CUDA_BACKEND)
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_device.hpp"
#endif

// Subcommand runners, compiled into the executable from cmd_*.cpp.
namespace infllm::app {
int run_make_model(const MakeModelConfig& config);
int run_inspect(const InspectConfig& config);
int run_generate(const GenerateConfig& config);
int run_simulate(const SimulateConfig& config);
// SIGUSR1, SIGTERM and SIGINT ask `generate` to stop (cmd_generate.cpp); without SA_RESTART a
// signal also ends a blocking read of the input.
void install_stop_handlers(bool restart);
}  // namespace infllm::app

namespace {

using infllm::ExitCode;

int code(ExitCode c) { return static_cast<int>(c); }

int run(const std::string& command, const std::vector<std::string>& args, int argc, char** argv) {
  if (command == "generate") {
    auto parsed = infllm::app::parse_generate(args);
    if (parsed.help) {
      std::cout << *parsed.help;
      return 0;
    }
    return infllm::app::run_generate(parsed.config);
  }
  if (command == "bench") return infllm::app::run_bench(args, argc, argv);
  if (command == "make-model") {
    auto parsed = infllm::app::parse_make_model(args);
    if (parsed.help) {
      std::cout << *parsed.help;
      return 0;
    }
    return infllm::app::run_make_model(parsed.config);
  }
  if (command == "inspect") {
    auto parsed = infllm::app::parse_inspect(args);
    if (parsed.help) {
      std::cout << *parsed.help;
      return 0;
    }
    return infllm::app::run_inspect(parsed.config);
  }
  if (command == "simulate") {
    auto parsed = infllm::app::parse_simulate(args);
    if (parsed.help) {
      std::cout << *parsed.help;
      return 0;
    }
    return infllm::app::run_simulate(parsed.config);
  }
  throw infllm::UsageError(command, "unknown subcommand");
}

// The version and the paths this build takes: its backends, where rBlock pools live between
// ranks, how push-query's queries and partial states travel.
std::string version_text() {
  std::string t = std::string("infllm ") + INFLLM_VERSION + "\n";
#if defined(INFLLM_CUDA_ON_CPU)
  t += "backends: cpu; cuda over the CUDA-on-CPU layer (a test build: kernels on CPU threads)\n";
#elif defined(INFLLM_HAVE_CUDA_BACKEND)
  int runtime = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  t += "backends: cpu; cuda (CUDA runtime " + std::to_string(runtime / 1000) + "." +
       std::to_string(runtime % 1000 / 10) + ", cuBLAS; --backend auto takes it when a GPU is " +
       "visible: " + std::to_string(infllm::cuda::device_count()) + " here)\n";
#else
  t += "backends: cpu (this build has no CUDA backend: cmake --preset cuda)\n";
#endif
  t += "rBlocks between ranks: MPI one-sided RMA on windows in host memory";
#if defined(INFLLM_HAVE_CUDA_BACKEND)
  t += " (the CUDA backend registers its window with the GPU and reads it mapped)";
#endif
  t += "\npush-query queries and partial states: MPI point-to-point\n";
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << infllm::app::top_level_help();
    return code(ExitCode::kBadInput);
  }
  const std::string command = argv[1];
  // NOTE: as early as the program can: from here on a forwarded SIGUSR1 or SIGTERM is a clean
  // stop (exit 4). Before this line (the dynamic loader, static initialisers) the default
  // action still applies and kills the process (exit 128 + the signal).
  if (command == "generate") infllm::app::install_stop_handlers(false);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << infllm::app::top_level_help();
    return 0;
  }
  if (command == "--version") {
    std::cout << version_text();
    return 0;
  }
  bool known = false;
  for (const auto& c : infllm::app::subcommands()) known = known || command == c.name;
  if (!known) {
    std::cerr << "infllm: unknown command '" << command << "' (infllm --help lists them)\n";
    return code(ExitCode::kBadInput);
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return run(command, args, argc, argv);
  } catch (const infllm::UsageError& e) {
    std::cerr << "infllm " << command << ": " << e.what() << "\n";
    return code(ExitCode::kBadInput);
  } catch (const infllm::InputError& e) {
    std::cerr << "infllm " << command << ": " << e.what() << "\n";
    return code(ExitCode::kBadInput);
  } catch (const infllm::OutputError& e) {
    std::cerr << "infllm " << command << ": " << e.what() << "\n";
    return code(ExitCode::kWriteFailed);
  } catch (const std::exception& e) {
    std::cerr << "infllm " << command << ": internal error: " << e.what() << "\n";
    return code(ExitCode::kInternal);
  }
}
