// write_file.cpp: see write_file.hpp.
#include "io/write_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/errors.hpp"

namespace infllm::io {
namespace {

std::string os_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void write_file(const std::string& path, std::string_view content) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw OutputError(path, os_error("cannot open"));
    const bool ok = write_all(fd, content);
    const std::string error = ok ? "" : os_error("write failed");
    ::close(fd);
    if (!ok) throw OutputError(path, error);
    return;
  }
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw OutputError(path, os_error(("cannot create " + tmp).c_str()));
  std::string error;
  if (!write_all(fd, content)) {
    error = os_error("write failed");
  } else if (::fsync(fd) != 0) {
    error = os_error("fsync failed");
  }
  if (::close(fd) != 0 && error.empty()) error = os_error("close failed");
  if (error.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = os_error("rename failed");
  }
  if (!error.empty()) {
    ::unlink(tmp.c_str());
    throw OutputError(path, error);
  }
  const auto dir = std::filesystem::absolute(path).parent_path();
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);  // best effort: the file itself is already durable
    ::close(d);
  }
}

}  // namespace infllm::io
