// errors.cpp: message formatting of the typed exceptions (see errors.hpp).
#include "core/errors.hpp"

#include <utility>

namespace infllm {

UsageError::UsageError(std::string option, const std::string& problem)
    : std::runtime_error("option --" + option + ": " + problem), option_(std::move(option)) {}

namespace {
std::string input_message(const std::string& file, const std::string& where,
                          const std::string& problem) {
  std::string msg = file;
  if (!where.empty()) msg += ": " + where;
  return msg + ": " + problem;
}
}  // namespace

InputError::InputError(std::string file, std::string where, const std::string& problem)
    : std::runtime_error(input_message(file, where, problem)),
      file_(std::move(file)),
      where_(std::move(where)),
      problem_(problem) {}

OutputError::OutputError(std::string file, const std::string& problem)
    : std::runtime_error(file + ": " + problem), file_(std::move(file)) {}

}  // namespace infllm
