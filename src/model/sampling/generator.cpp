// generator.cpp: see generator.hpp.
#include "model/sampling/generator.hpp"

#include <algorithm>
#include <cmath>

namespace infllm::model {

const char* status_name(GenStatus status) {
  switch (status) {
    case GenStatus::kDone:
      return "done";
    case GenStatus::kRejected:
      return "rejected";
    case GenStatus::kFailed:
      return "failed";
  }
  return "?";
}

std::optional<std::pair<GenStatus, std::string>> admission_verdict(const GenRequest& request,
                                                                   std::int64_t max_positions) {
  if (!request.fail_reason.empty()) return std::pair{GenStatus::kFailed, request.fail_reason};
  if (request.max_new_tokens <= 0) return std::pair{GenStatus::kDone, std::string()};
  if (request.prompt.empty()) return std::pair{GenStatus::kFailed, std::string("empty_prompt")};
  if (static_cast<std::int64_t>(request.prompt.size()) > max_positions) {
    return std::pair{GenStatus::kFailed, std::string("prompt_too_long")};
  }
  return std::nullopt;
}

std::string accept_token(const GenRequest& request, std::span<float> logits,
                         const std::vector<std::int32_t>& eos_ids, const Tokenizer* tokenizer,
                         std::int64_t max_positions, std::vector<std::int32_t>& sequence,
                         GenResult& result) {
  const auto generated = static_cast<int>(result.tokens.size());
  if (generated < request.min_new_tokens) {
    for (std::int32_t e : eos_ids) logits[static_cast<std::size_t>(e)] = -INFINITY;
  }
  const auto position = static_cast<std::int64_t>(sequence.size());
  const Sample pick = sample_token(logits, request.sampling, request.id, position);
  sequence.push_back(pick.token);
  result.tokens.push_back(pick.token);
  if (request.sampling.logprobs > 0) result.top_logprobs.push_back(pick.top);
  const bool eos = std::find(eos_ids.begin(), eos_ids.end(), pick.token) != eos_ids.end();
  if (eos && !request.ignore_eos) return "stop";
  if (!request.stop.empty() && tokenizer != nullptr) {
    const std::string text = tokenizer->decode_text(result.tokens, /*skip_special=*/true);
    std::size_t cut = std::string::npos;
    for (const auto& stop : request.stop) cut = std::min(cut, text.find(stop));
    if (cut != std::string::npos) {
      result.text = text.substr(0, cut);
      return "stop";
    }
  }
  if (generated + 1 >= request.max_new_tokens ||
      static_cast<std::int64_t>(sequence.size()) >= max_positions) {
    return "length";
  }
  return "";
}

}  // namespace infllm::model
