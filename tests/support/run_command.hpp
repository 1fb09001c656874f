// run_command.hpp: tests run the built `infllm` (and tools such as h5dump) as users do, as a
// process, and look at its exit code and what it printed.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

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

// Starts `command` with /bin/sh in the background (for signals), stdout and stderr into `log`.
// The shell execs the command, so the pid is the command's own.
inline pid_t spawn_command(const std::string& command, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = "exec " + command + " >" + log + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// The exit code of `pid` within `seconds` (128 + signal when a signal ended it), or nullopt
// (the process is then killed).
inline std::optional<int> wait_exit(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return std::nullopt;
}

// The executable of this build tree.
inline std::string infllm_binary() { return std::string(INFLLM_BINARY_DIR) + "/src/app/infllm"; }

// The environment prefix for running `infllm` from a test. `generate` initializes MPI, and in
// sanitizer builds Open MPI's allocations that outlive MPI_Finalize (in components it has
// already unloaded, so LeakSanitizer can neither attribute nor suppress them) would fail every
// run: infllm processes run without leak detection (ASan's memory errors and UBSan stay on; the
// libraries' own unit tests check leaks). Ignored by non-sanitizer builds.
inline std::string infllm_env() {
  return "env ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" ";
}

// Runs `infllm <args>`.
inline CommandResult run_infllm(const std::string& args) {
  return run_command(infllm_env() + infllm_binary() + " " + args);
}

}  // namespace infllm::testing
