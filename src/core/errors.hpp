// errors.hpp: the typed exceptions of infllm and the exit codes they map to.
//
// STYLE.md habit 4: capacity outcomes are values, misuse and bad input are typed exceptions that
// carry the file or field at fault, MPI/CUDA failures go through one checking macro. The exit
// codes are the user-facing contract of docs/design.md:
//   0 every request done, 1 some request not done, 2 bad usage or input,
//   3 internal or MPI failure, 4 stopped by a signal (resumable).
#pragma once

#include <stdexcept>
#include <string>

namespace infllm {

enum class ExitCode : int {
  kOk = 0,
  kSomeNotDone = 1,
  kBadInput = 2,
  kInternal = 3,
  kStopped = 4,
  kWriteFailed = 5,
};

// Bad command-line usage: an unknown option, a value out of range. `option` names it.
class UsageError : public std::runtime_error {
 public:
  UsageError(std::string option, const std::string& problem);
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

// Bad input data: a file that is missing, malformed or inconsistent. The message names the file
// and, where there is one, the record or field ("line 7, field prompt").
class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::string where, const std::string& problem);
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string file_;
  std::string where_;
  std::string problem_;
};

// An output (results, journal, fingerprint, metrics) could not be written: disk full, an I/O
// error, a read-only or special file. `file` names it; the message carries the OS error. What
// was written before stays resumable.
class OutputError : public std::runtime_error {
 public:
  OutputError(std::string file, const std::string& problem);
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// A stop signal (SIGTERM, SIGUSR1, SIGINT) arrived while the job was blocked before its first
// step (reading an input from a FIFO that has no writer yet): the job ends with exit 4 and
// nothing written.
class StopRequested : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A broken internal invariant or a failed system/MPI/CUDA call: a bug or a sick machine.
class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace infllm
