// fuzz_input.hpp: what every fuzz target shares. The parsers read files, as users hand them
// over, so each input is written to a file of this process first (one private folder, removed
// at exit). A parser may refuse an input only the documented way: InputError (or UsageError)
// naming the file. Anything else that escapes (another exception, a crash, a sanitizer report)
// is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/errors.hpp"

namespace infllm::fuzz {

// The folder of this process's input files, created on first use and removed at exit.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d =
        std::filesystem::temp_directory_path() / ("infllm-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

// Writes the input to scratch()/name and returns the path.
inline std::string write_input(const std::string& name, const std::uint8_t* data,
                               std::size_t size) {
  const std::string path = (scratch() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Runs fn; the documented refusals are fine, anything else escapes to the fuzzer.
template <class Fn>
void refusals_allowed(Fn fn) {
  try {
    fn();
  } catch (const InputError&) {
  } catch (const UsageError&) {
  }
}

}  // namespace infllm::fuzz
