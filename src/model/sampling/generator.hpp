// generator.hpp: generation requests and results, and the rules every engine applies to them:
// admission refusals that need no scheduling, and sampling and stopping (accept_token). The
// engine itself is the step loop (engine/engine.hpp): continuous batching with chunked prefill
// over rBlock pools, preemption by recomputation, on one instance or many.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/forward/forward.hpp"
#include "model/sampling/sampler.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace infllm::model {

struct GenRequest {
  std::string id;
  std::vector<std::int32_t> prompt;
  int max_new_tokens = 256;
  int min_new_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  SamplingParams sampling;
  // Set when the request was refused before it could run (bad prompt); it is reported as
  // failed with this reason and never scheduled.
  std::string fail_reason;
};

enum class GenStatus { kDone, kRejected, kFailed };
const char* status_name(GenStatus status);

struct GenResult {
  std::string id;
  GenStatus status = GenStatus::kDone;
  std::string reason;                // why rejected or failed; "" when done
  std::string finish_reason;         // "stop" | "length" when done
  std::vector<std::int32_t> tokens;  // generated ids (a final EOS included)
  std::string text;                  // decoded generated text, cut before a stop string
  std::int64_t prompt_tokens = 0;
  std::vector<std::vector<std::pair<std::int32_t, double>>> top_logprobs;  // per token
  double queue_s = 0;        // arrival to first scheduled step
  double first_token_s = 0;  // arrival to first generated token
  double total_s = 0;        // arrival to finish
  int preemptions = 0;
  std::int64_t remote_blocks_max = 0;   // most blocks ever held on other ranks (distributed)
  std::vector<std::int32_t> creditors;  // the ranks that held them, ascending
};

// The refusals that need no scheduling: a request that failed before it ran, asks for no
// tokens, or has an empty or too long prompt. Returns (status, reason), or nothing when the
// request may run (its KV capacity is the scheduler's to judge).
std::optional<std::pair<GenStatus, std::string>> admission_verdict(const GenRequest& request,
                                                                   std::int64_t max_positions);

// Samples the next token of a request from its logits and applies the stopping rules
// (min_new_tokens masks EOS; EOS unless ignore_eos; stop strings; max_new_tokens; the model's
// last position). Appends the token to `sequence` (prompt + generated) and to `result`. Returns
// the finish reason ("stop" | "length"), or "" when the request goes on. `logits` is modified.
std::string accept_token(const GenRequest& request, std::span<float> logits,
                         const std::vector<std::int32_t>& eos_ids, const Tokenizer* tokenizer,
                         std::int64_t max_positions, std::vector<std::int32_t>& sequence,
                         GenResult& result);

}  // namespace infllm::model
