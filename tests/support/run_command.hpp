// run_command.hpp: tests run the built `infllm` (and tools such as h5dump) as users do, as a
// process, and look at its exit code and what it printed.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace infllm::testing {

struct CommandResult {
  int code;         // exit status, -1 when the process did not exit normally
  std::string out;  // stdout and stderr together
};

// Runs `command` with /bin/sh, stderr merged into stdout.
inline CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (pipe != nullptr && std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) {
    out += buf.data();
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  return {status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The executable of this build tree.
inline std::string infllm_binary() { return std::string(INFLLM_BINARY_DIR) + "/src/app/infllm"; }

// Runs `infllm <args>`.
inline CommandResult run_infllm(const std::string& args) {
  return run_command(infllm_binary() + " " + args);
}

}  // namespace infllm::testing
