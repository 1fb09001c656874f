// generator.cpp: see generator.hpp.
#include "model/generator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>

#include "core/errors.hpp"
#include "core/slot_allocator.hpp"

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

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One request in flight. Its sequence is prompt + generated; KV exists for positions
// [0, computed). Tokens [computed, size) are fed at the next steps; when a step feeds the last
// one, the model's logits sample the next token.
struct Seq {
  GenRequest req;
  std::size_t order = 0;  // arrival index: lower is older
  std::vector<std::int32_t> all;
  std::int64_t computed = 0;
  std::vector<SlotId> slots;
  GenResult result;
  bool started = false;
  bool first_token = false;
};

struct Scheduled {
  Seq* seq;
  std::int64_t n;
};

}  // namespace

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

Generator::Generator(Forward& forward, const Tokenizer* tokenizer, const GeneratorOptions& options)
    : forward_(forward), tokenizer_(tokenizer), options_(options) {
  if (options_.pool_slots <= 0 || options_.block_tokens <= 0 || options_.max_batch_tokens <= 0 ||
      options_.max_num_seqs <= 0) {
    throw InternalError("Generator: pool, block, batch and sequence sizes must be positive");
  }
}

GeneratorStats Generator::run(std::vector<GenRequest> requests,
                              const std::function<void(GenResult&&)>& on_result,
                              const RunHooks& hooks) {
  const auto t0 = Clock::now();
  const int bt = options_.block_tokens;
  const std::int64_t max_pos = forward_.config().max_position_embeddings;
  const std::size_t vocab = static_cast<std::size_t>(forward_.config().vocab_size);
  const BlockGeometry geometry = forward_.geometry(bt, options_.kv_dtype);
  // The backend's memory (the CPU's: 2 MiB pages where the OS allows, since decode attention
  // reads the blocks in any order).
  const std::unique_ptr<KvMemory> pool_bytes = forward_.backend().allocate_kv(
      geometry.block_bytes() * static_cast<std::size_t>(options_.pool_slots));
  KvStore store{pool_bytes->data(), geometry.block_bytes(), options_.pool_slots, geometry};
  SlotAllocator slots(options_.pool_slots);
  GeneratorStats stats;

  auto finish = [&](Seq& s, GenStatus status, std::string reason, std::string finish_reason) {
    for (SlotId slot : s.slots) slots.free(slot);
    s.slots.clear();
    GenResult& r = s.result;
    r.id = s.req.id;
    r.status = status;
    r.reason = std::move(reason);
    r.finish_reason = std::move(finish_reason);
    r.prompt_tokens = static_cast<std::int64_t>(s.req.prompt.size());
    r.total_s = seconds_since(t0);
    if (tokenizer_ != nullptr && r.text.empty()) {
      r.text = tokenizer_->decode_text(r.tokens, /*skip_special=*/true);
    }
    on_result(std::move(r));
  };

  // Admission: refusals that need no scheduling.
  std::deque<std::unique_ptr<Seq>> waiting;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto s = std::make_unique<Seq>();
    s->req = std::move(requests[i]);
    s->order = i;
    s->all = s->req.prompt;
    const auto need = static_cast<std::int64_t>(s->req.prompt.size()) + s->req.max_new_tokens;
    if (const auto verdict = admission_verdict(s->req, max_pos)) {
      finish(*s, verdict->first, verdict->second,
             verdict->first == GenStatus::kDone ? "length" : "");
    } else if ((std::min(need, max_pos) + bt - 1) / bt > options_.pool_slots) {
      finish(*s, GenStatus::kRejected, "kv_capacity", "");
    } else {
      waiting.push_back(std::move(s));
    }
  }
  std::vector<std::unique_ptr<Seq>> running;  // sorted by arrival (order)

  // Preempts `victim`: frees its blocks; it recomputes from position 0 later.
  auto preempt = [&](Seq* victim) {
    for (SlotId slot : victim->slots) slots.free(slot);
    victim->slots.clear();
    victim->computed = 0;
    ++victim->result.preemptions;
    ++stats.preemptions;
    auto it = std::find_if(running.begin(), running.end(),
                           [&](const auto& p) { return p.get() == victim; });
    waiting.push_front(std::move(*it));
    running.erase(it);
  };

  // Gives `s` the blocks for positions [0, end); false if the pool ran dry.
  auto grow = [&](Seq& s, std::int64_t end) {
    while (static_cast<std::int64_t>(s.slots.size()) * bt < end) {
      const auto slot = slots.allocate();
      if (!slot) return false;
      s.slots.push_back(*slot);
    }
    return true;
  };
  // Tokens `s` can take at `end` without new blocks beyond what is free.
  auto room = [&](const Seq& s) {
    return static_cast<std::int64_t>(s.slots.size() + slots.free_count()) * bt - s.computed;
  };

  while (!waiting.empty() || !running.empty()) {
    if (hooks.stop && hooks.stop()) {
      stats.stopped = true;
      break;
    }
    std::vector<Scheduled> batch;
    std::int64_t budget = options_.max_batch_tokens;
    // Decodes first, then continuing prefills, oldest first.
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t i = 0; i < running.size() && budget > 0; ++i) {
        Seq* s = running[i].get();
        const std::int64_t pending = static_cast<std::int64_t>(s->all.size()) - s->computed;
        if ((pass == 0) != (pending == 1)) continue;
        std::int64_t n = std::min(pending, budget);
        while (room(*s) < 1) {
          // The youngest running request other than s gives way; never the oldest.
          Seq* victim = running.back().get();
          if (victim == s) break;
          std::erase_if(batch, [&](const Scheduled& b) { return b.seq == victim; });
          preempt(victim);
        }
        if (room(*s) < 1) {
          if (running.size() == 1) {
            Seq owned = std::move(*running.front());
            running.clear();
            finish(owned, GenStatus::kFailed, "kv_capacity", "");
          } else {
            preempt(s);  // s is the youngest: it waits until the older ones finish
          }
          --i;
          continue;
        }
        n = std::min(n, room(*s));
        grow(*s, s->computed + n);
        batch.push_back({s, n});
        budget -= n;
      }
    }
    // Admit new requests while there is budget, room and a sequence slot. Room means free
    // blocks for the request's whole sequence so far plus its next token (as vLLM admits), so
    // a request is not admitted only to be preempted by the growth of older ones; with nothing
    // running, the oldest waiting request is admitted whatever its size.
    while (!waiting.empty() && budget > 0 &&
           static_cast<int>(running.size()) < options_.max_num_seqs && slots.free_count() > 0) {
      // Running stays sorted by arrival, so its back is always the youngest (a preempted
      // request that comes back takes its old place, and the oldest is never a victim).
      Seq* s = waiting.front().get();
      const auto blocks = (static_cast<std::int64_t>(s->all.size()) + 1 + bt - 1) / bt;
      if (!running.empty() && blocks > static_cast<std::int64_t>(slots.free_count())) break;
      const auto at = std::upper_bound(running.begin(), running.end(), s->order,
                                       [](std::size_t o, const auto& p) { return o < p->order; });
      running.insert(at, std::move(waiting.front()));
      waiting.pop_front();
      const std::int64_t n =
          std::min({static_cast<std::int64_t>(s->all.size()) - s->computed, budget, room(*s)});
      grow(*s, s->computed + n);
      batch.push_back({s, n});
      budget -= n;
    }
    if (batch.empty()) {
      if (running.empty() && !waiting.empty()) {
        throw InternalError("Generator: nothing schedulable with an empty pool");
      }
      continue;
    }

    std::vector<StepSequence> step(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Seq& s = *batch[i].seq;
      if (!s.started) {
        s.started = true;
        s.result.queue_s = seconds_since(t0);
      }
      const bool last = s.computed + batch[i].n == static_cast<std::int64_t>(s.all.size());
      step[i] = StepSequence{std::span(s.all).subspan(static_cast<std::size_t>(s.computed),
                                                      static_cast<std::size_t>(batch[i].n)),
                             s.computed, s.slots, last};
      (s.all.size() - s.computed > 1 ? stats.prefill_tokens : stats.decode_tokens) += batch[i].n;
    }
    const std::vector<float> logits = forward_.step(step, store);
    ++stats.steps;
    stats.pool_used_hwm = std::max(stats.pool_used_hwm, slots.stats().used);
    if (hooks.on_step) {
      // Reported before this step's finished requests leave, so pool use is the step's peak.
      hooks.on_step(StepProgress{stats.steps, stats.prefill_tokens, stats.decode_tokens,
                                 slots.stats().used, options_.pool_slots, running.size(),
                                 waiting.size()});
    }

    std::size_t row = 0;
    std::vector<Seq*> done;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Seq& s = *batch[i].seq;
      s.computed += batch[i].n;
      if (!step[i].want_logits) continue;
      std::vector<float> l(logits.begin() + static_cast<std::ptrdiff_t>(row * vocab),
                           logits.begin() + static_cast<std::ptrdiff_t>((row + 1) * vocab));
      ++row;
      if (!s.first_token) {
        s.first_token = true;
        s.result.first_token_s = seconds_since(t0);
      }
      const std::string finish_reason =
          accept_token(s.req, l, options_.eos_ids, tokenizer_, max_pos, s.all, s.result);
      if (!finish_reason.empty()) {
        s.result.finish_reason = finish_reason;
        done.push_back(&s);
      }
    }
    for (Seq* s : done) {
      auto it =
          std::find_if(running.begin(), running.end(), [&](const auto& p) { return p.get() == s; });
      std::unique_ptr<Seq> owned = std::move(*it);
      running.erase(it);
      const std::string reason = owned->result.finish_reason;
      finish(*owned, GenStatus::kDone, "", reason);
    }
  }
  return stats;
}

}  // namespace infllm::model
