// kv_policy.hpp: placement, batching and preemption rules as pure functions.
//
// Kept apart from the managers so each rule is a value in, value out, unit-tested on its own,
// and the same rule serves the engine, the harness and the simulator.
//
//   choose_instance   which instance takes a new request: least expected work among those with
//                     room for all of it; a request longer than any one instance's free room
//                     goes where the most memory is (it needs room for its first blocks).
//   plan_batch        one step's batch under a token budget: decodes first (oldest first, one
//                     token each), then chunked prefill of the oldest prefilling requests.
//   choose_preemption which running requests to preempt to free `blocks`: youngest first, never
//                     the oldest running request.
//   fits_empty_cluster the admission rule: does the request fit the empty cluster under the
//                     policy (one pool for local; one pool plus every other lending cap for
//                     pooled)?
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

// Where a request's KV may live: only in its home's pool (a fleet of independent instances, the
// baseline) or in every instance's pool (DistKV). `--kv-policy local|pooled`.
enum class KvPolicy : std::uint8_t { kLocal, kPooled };
const char* kv_policy_name(KvPolicy policy);  // "local" | "pooled"

// How a home attends over the blocks a creditor holds for one of its requests: send the
// queries there and merge the partial states that come back (macro-attention), fetch the blocks
// and attend at home, or choose per (request, creditor) by bytes moved at the boundary.
// `--remote-attention push-query|pull-kv|auto`.
enum class RemoteAttention : std::uint8_t { kPushQuery, kPullKv, kAuto };
const char* remote_attention_name(RemoteAttention mode);  // "push-query" | "pull-kv" | "auto"

// Bytes push-query sends and receives per query row over all layers: the f32 query row out and
// the partial state (o, m, l) back, per query head. RemoteAttention::kAuto pulls a creditor's
// blocks when they weigh less than this times the step's query rows.
constexpr std::int64_t push_query_bytes_per_row(std::int64_t layers, std::int64_t q_heads,
                                                std::int64_t head_dim) {
  return layers * q_heads * (2 * head_dim + 2) * 4;
}

struct InstanceLoad {
  RankId rank;
  std::int64_t expected_work = 0;  // tokens still to process by requests placed there
  std::int32_t free_blocks = 0;    // free slots it can use for new requests
};

// The chosen instance, or empty when none has room for even `first_blocks`.
std::optional<RankId> choose_instance(const std::vector<InstanceLoad>& loads,
                                      std::int32_t first_blocks, std::int32_t total_blocks);

struct BatchCandidate {
  RequestId request;
  std::int64_t age = 0;                // smaller = older
  std::int64_t prefill_remaining = 0;  // prompt tokens not yet processed
  std::int64_t decode_remaining = 0;   // tokens still to generate
};

struct BatchItem {
  RequestId request;
  std::int64_t tokens = 0;
};

struct BatchLimits {
  std::int64_t max_batch_tokens = 512;  // tokens per step, prefill and decode together
  std::int32_t max_num_seqs = 64;       // requests per step
  std::int64_t max_chunk = 256;         // prefill tokens per request per step
};

// Throws InternalError when a limit is not positive.
std::vector<BatchItem> plan_batch(std::vector<BatchCandidate> candidates,
                                  const BatchLimits& limits);

struct RunningRequest {
  RequestId request;
  std::int64_t age = 0;
  std::int64_t blocks = 0;  // blocks it holds anywhere
};

// Youngest first until the victims hold at least `blocks`; never the oldest of `running`.
// May return fewer blocks than asked when only the oldest is left.
std::vector<RequestId> choose_preemption(std::vector<RunningRequest> running, std::int64_t blocks);

struct ClusterShape {
  std::vector<std::int32_t> capacity;  // slots per instance
  double max_lend_fraction = 0.5;
};

// Slots instance `rank` may lend at most: floor(fraction * capacity).
std::int32_t lend_cap(const ClusterShape& shape, std::int32_t rank);
// The most blocks one request can hold in an otherwise empty cluster under `policy`.
std::int64_t max_request_blocks(const ClusterShape& shape, KvPolicy policy);
bool fits_empty_cluster(const ClusterShape& shape, KvPolicy policy, std::int64_t blocks);

}  // namespace infllm
