// write_file.hpp: writing a whole small file (metrics, the output's fingerprint) with every step
// checked.
#pragma once

#include <string>
#include <string_view>

namespace infllm::io {

// Writes `content` to `path`. A regular (or absent) path goes through a temporary file beside
// it, fsync'd and renamed over it (and the folder fsync'd), so that a reader sees the old file
// or the whole new one; a special file (/dev/null, /dev/full, a FIFO) is written directly and
// never replaced. Throws OutputError naming the path and the OS error (ENOSPC, EIO, EACCES...);
// no temporary file is left behind.
void write_file(const std::string& path, std::string_view content);

// Writes all of `bytes` to `fd`, retrying after EINTR and short writes; false with errno set
// on failure.
bool write_all(int fd, std::string_view bytes);

}  // namespace infllm::io
