// generator.hpp: the single-instance engine: continuous batching with chunked prefill over one
// local rBlock pool, sampling and stopping, preemption by recomputation.
//
// Each step builds one batch under a token budget (max_batch_tokens) and a sequence cap
// (max_num_seqs): first one decode token for every running request that has finished its
// prefill, then prefill chunks (continuing ones first, then new requests in arrival order).
// Blocks come from the pool's SlotAllocator as positions need them. When the pool runs dry the
// youngest running request is preempted (its blocks freed, its tokens so far recomputed later);
// the oldest is never preempted, and a request that cannot grow even alone fails with reason
// kv_capacity. A request whose prompt + max_new_tokens cannot fit the empty pool is rejected
// (kv_capacity) at admission. The distributed engine (src/dist) generalizes this loop across
// ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/forward.hpp"
#include "model/sampler.hpp"
#include "model/tokenizer.hpp"

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

struct GeneratorOptions {
  int block_tokens = 16;
  std::int32_t pool_slots = 0;  // rBlocks in the local pool
  KvDtype kv_dtype = KvDtype::kF32;
  int max_batch_tokens = 512;
  int max_num_seqs = 16;
  std::vector<std::int32_t> eos_ids;  // any ends a request (unless ignore_eos)
};

struct GeneratorStats {
  std::int64_t steps = 0;
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int64_t preemptions = 0;
  std::int32_t pool_used_hwm = 0;
  bool stopped = false;  // RunHooks::stop ended the run early
};

// The engine's state at a step boundary, for progress lines.
struct StepProgress {
  std::int64_t steps = 0;
  std::int64_t prefill_tokens = 0;  // computed so far (recomputation included)
  std::int64_t decode_tokens = 0;
  std::int32_t pool_used = 0;  // rBlocks in use now
  std::int32_t pool_slots = 0;
  std::size_t running = 0;
  std::size_t waiting = 0;
};

// Optional callbacks of Generator::run, both called at step boundaries.
struct RunHooks {
  // True stops the run at this boundary: no new step starts, and the requests not finished are
  // not reported (a resumed job runs them again). Called before every step.
  std::function<bool()> stop;
  // Called after every step.
  std::function<void(const StepProgress&)> on_step;
};

class Generator {
 public:
  // `tokenizer` decodes results and checks stop strings; it may be null (tokens only).
  Generator(Forward& forward, const Tokenizer* tokenizer, const GeneratorOptions& options);

  // Runs every request to completion (or until hooks.stop says so); calls on_result once per
  // finished request, in completion order.
  GeneratorStats run(std::vector<GenRequest> requests,
                     const std::function<void(GenResult&&)>& on_result, const RunHooks& hooks = {});

 private:
  Forward& forward_;
  const Tokenizer* tokenizer_;
  GeneratorOptions options_;
};

}  // namespace infllm::model
