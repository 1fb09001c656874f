// hdf5_isolated.cpp: see hdf5_isolated.hpp. The child replies with one tag byte and the rest:
// 'R' then the result's bytes; 'E' then an InputError's file, where and problem; 'S' or 'X'
// then a message (a stop, another error). Strings are an 8-byte little-endian length and bytes.
#include "io/hdf5_isolated.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/errors.hpp"
#include "io/hdf5_file.hpp"

// Built with a sanitizer: its signal handlers are what reports a crash (the fuzz target reads
// those reports), so the child keeps them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define INFLLM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define INFLLM_SANITIZED 1
#endif
#endif

namespace infllm::io {

namespace {

void (*g_child_hook)() = nullptr;

void put_string(std::string& out, const std::string& s) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((s.size() >> (8 * i)) & 0xff));
  out += s;
}

bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// The child: works, replies, and ends with _exit, so that none of the parent's exit handlers
// (MPI, open outputs) run in it.
[[noreturn]] void child_main(int fd, const std::function<std::string()>& work) {
  if (g_child_hook != nullptr) g_child_hook();
  std::string out;
  try {
    out = "R" + work();
  } catch (const InputError& e) {
    out = "E";
    put_string(out, e.file());
    put_string(out, e.where());
    put_string(out, e.problem());
  } catch (const StopRequested& e) {
    out = "S";
    put_string(out, e.what());
  } catch (const std::exception& e) {
    out = "X";
    put_string(out, e.what());
  }
  ::_exit(write_all(fd, out) ? 0 : 1);
}

std::string describe_end(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "signal " + std::to_string(sig) + (name != nullptr ? std::string(", ") + name : "");
  }
  return "exit code " + std::to_string(WEXITSTATUS(status));
}

class ReplyReader {
 public:
  ReplyReader(const std::string& path, const std::string& bytes) : path_(path), bytes_(bytes) {}
  std::string string() {
    if (bytes_.size() - pos_ < 8) garbled();
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes_[pos_ + i]);
    pos_ += 8;
    if (n > bytes_.size() - pos_) garbled();
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  [[noreturn]] void garbled() const {
    throw InternalError("reading " + path_ + ": the HDF5 reader's reply is garbled");
  }
  const std::string& path_;
  const std::string& bytes_;
  std::size_t pos_ = 1;  // after the tag
};

}  // namespace

void set_isolated_child_hook(void (*hook)()) { g_child_hook = hook; }

std::string run_isolated(const std::string& path, const std::function<std::string()>& work,
                         const std::function<bool()>& stop_requested) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw InternalError(std::string("a pipe for the HDF5 reader: ") + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw InternalError(std::string("fork for the HDF5 reader: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::close(fds[0]);
#ifndef INFLLM_SANITIZED
    // A crash in the child ends it at once. The handlers it inherited (Open MPI's print a
    // backtrace) are not async-signal-safe: after libhdf5 corrupts the heap, one of them
    // blocked forever on malloc's lock, and the parent with it. The stop signals keep their
    // handlers (they only set a flag; the parent asks stop_requested).
    for (const int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
#endif
    child_main(fds[1], work);
  }
  ::close(fds[1]);
  std::string reply;
  bool stopped = false;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      reply.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      if (stop_requested && stop_requested()) {
        stopped = true;
        ::kill(pid, SIGKILL);
        break;
      }
    } else {
      break;  // the end of the reply; how the child ended tells whether it is whole
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // A stop signal that reached the child as well (a terminal's Ctrl-C, Slurm signalling the
  // whole step) is a stop, not a crash.
  if (!stopped && stop_requested && stop_requested()) stopped = true;
  if (stopped) {
    throw StopRequested("stopped by a signal while reading " + path + "; nothing was written");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
    throw InputError(path, "",
                     std::string(kHdf5ReaderCrashed) + " (" + describe_end(status) +
                         "): it is corrupt in a way libhdf5 does not check");
  }
  ReplyReader in(path, reply);
  switch (reply[0]) {
    case 'R':
      return reply.substr(1);
    case 'E': {
      std::string file = in.string();
      std::string where = in.string();
      throw InputError(std::move(file), std::move(where), in.string());
    }
    case 'S':
      throw StopRequested(in.string());
    case 'X':
      throw InternalError(in.string());
    default:
      throw InternalError("reading " + path + ": the HDF5 reader's reply is garbled");
  }
}

bool hdf5_has_link(const std::string& path, const std::string& name) {
  return run_isolated(path, [&] {
           silence_hdf5_errors();
           const Hdf5Handle file = open_hdf5_read(path);
           return std::string(H5Lexists(file.get(), name.c_str(), H5P_DEFAULT) > 0 ? "1" : "0");
         }) == "1";
}

}  // namespace infllm::io
