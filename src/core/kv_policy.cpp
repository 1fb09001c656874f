// kv_policy.cpp: placement, batching and preemption rules (see header).
#include "core/kv_policy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/errors.hpp"

namespace infllm {

const char* kv_policy_name(KvPolicy policy) {
  return policy == KvPolicy::kLocal ? "local" : "pooled";
}

const char* remote_attention_name(RemoteAttention mode) {
  switch (mode) {
    case RemoteAttention::kPushQuery:
      return "push-query";
    case RemoteAttention::kPullKv:
      return "pull-kv";
    case RemoteAttention::kAuto:
      return "auto";
  }
  return "?";
}

std::optional<RankId> choose_instance(const std::vector<InstanceLoad>& loads,
                                      std::int32_t first_blocks, std::int32_t total_blocks) {
  const InstanceLoad* best = nullptr;
  std::int32_t most_free = 0;
  for (const auto& l : loads) most_free = std::max(most_free, l.free_blocks);
  // NOTE: a request longer than every instance's free room goes where the memory is (it will
  // borrow least); otherwise least expected work, ties to more free room, then lower rank.
  const bool long_request = total_blocks > most_free;
  for (const auto& l : loads) {
    if (l.free_blocks < first_blocks) continue;
    // A request that fits some instance whole goes only where it fits whole: placed where
    // just its first blocks fit, it borrows the rest at once and spends the lending room that
    // growing requests need (measured: more preemptions, more recomputation).
    if (!long_request && l.free_blocks < total_blocks) continue;
    if (best == nullptr) {
      best = &l;
      continue;
    }
    const bool better =
        long_request
            ? (l.free_blocks > best->free_blocks ||
               (l.free_blocks == best->free_blocks && l.expected_work < best->expected_work))
            : (l.expected_work < best->expected_work ||
               (l.expected_work == best->expected_work && l.free_blocks > best->free_blocks));
    if (better) best = &l;
  }
  if (best == nullptr) return std::nullopt;
  return best->rank;
}

std::vector<BatchItem> plan_batch(std::vector<BatchCandidate> candidates,
                                  const BatchLimits& limits) {
  if (limits.max_batch_tokens <= 0 || limits.max_num_seqs <= 0 || limits.max_chunk <= 0) {
    throw InternalError("plan_batch: limits must be positive");
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const BatchCandidate& a, const BatchCandidate& b) { return a.age < b.age; });
  std::vector<BatchItem> out;
  std::int64_t budget = limits.max_batch_tokens;
  // Decodes first: one token each keeps every running generation moving (low latency).
  for (const auto& c : candidates) {
    if (budget == 0 || static_cast<std::int32_t>(out.size()) == limits.max_num_seqs) break;
    if (c.prefill_remaining == 0 && c.decode_remaining > 0) {
      out.push_back(BatchItem{c.request, 1});
      --budget;
    }
  }
  // Then prefill chunks, oldest first, into what is left of the budget.
  for (const auto& c : candidates) {
    if (budget == 0 || static_cast<std::int32_t>(out.size()) == limits.max_num_seqs) break;
    if (c.prefill_remaining > 0) {
      const std::int64_t n = std::min({c.prefill_remaining, limits.max_chunk, budget});
      out.push_back(BatchItem{c.request, n});
      budget -= n;
    }
  }
  return out;
}

std::vector<RequestId> choose_preemption(std::vector<RunningRequest> running, std::int64_t blocks) {
  std::vector<RequestId> out;
  if (running.size() <= 1 || blocks <= 0) return out;
  std::sort(running.begin(), running.end(),
            [](const RunningRequest& a, const RunningRequest& b) { return a.age > b.age; });
  std::int64_t freed = 0;
  // running.back() is the oldest: never a victim.
  for (std::size_t i = 0; i + 1 < running.size() && freed < blocks; ++i) {
    out.push_back(running[i].request);
    freed += running[i].blocks;
  }
  return out;
}

std::int32_t lend_cap(const ClusterShape& shape, std::int32_t rank) {
  const double cap = shape.max_lend_fraction * shape.capacity.at(static_cast<std::size_t>(rank));
  return static_cast<std::int32_t>(std::floor(cap));
}

std::int64_t max_request_blocks(const ClusterShape& shape, KvPolicy policy) {
  std::int64_t lendable = 0;
  const auto n = static_cast<std::int32_t>(shape.capacity.size());
  for (std::int32_t r = 0; r < n; ++r) lendable += lend_cap(shape, r);
  std::int64_t best = 0;
  for (std::int32_t h = 0; h < n; ++h) {
    const std::int64_t own = shape.capacity[static_cast<std::size_t>(h)];
    best = std::max(best, policy == KvPolicy::kLocal ? own : own + lendable - lend_cap(shape, h));
  }
  return best;
}

bool fits_empty_cluster(const ClusterShape& shape, KvPolicy policy, std::int64_t blocks) {
  return blocks <= max_request_blocks(shape, policy);
}

}  // namespace infllm
