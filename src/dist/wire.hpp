// wire.hpp: the control plane's messages as bytes (MessagePack through nlohmann::json).
//
// A step boundary moves one ReportPacket per rank to rank 0 (MPI_Gatherv) and one
// DecisionPacket per rank back (MPI_Scatterv). Packets are a few hundred bytes unless results
// ride along; field order and names are the protocol's (core/kv_messages.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/kv_messages.hpp"
#include "io/results.hpp"

namespace infllm::dist {

// What one rank measured in the step it just ran (rank 0 sums them per step).
struct StepStats {
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int32_t batch = 0;          // sequences in the batch
  std::int64_t local_blocks = 0;   // blocks its batch read at home
  std::int64_t remote_blocks = 0;  // blocks its batch read on creditors (or pulled)
  std::int64_t push_bytes = 0;     // KV pushed to creditors (MPI_Put)
  std::int64_t pull_bytes = 0;     // KV fetched for pull-KV (MPI_Get)
  std::int64_t query_bytes = 0;    // queries sent (push-query)
  std::int64_t partial_bytes = 0;  // partial states sent back (as a creditor)
  std::int64_t dgfm_bytes = 0;     // DGFM block moves it carried out
  std::int32_t pool_used = 0;      // slots in use at the end of the step
  std::int32_t pool_slots = 0;
  double compute_s = 0;         // the forward pass minus the waits inside it
  double wait_s = 0;            // blocked on queries and partial states of others
  double comm_s = 0;            // the boundary exchange, plan exchange and RMA of the step
  std::int32_t fill_steps = 0;  // extra all-local steps run while slower ranks finished theirs
  std::int32_t fill_cuts = 0;   // fill steps discarded part-way because the last rank arrived
};

struct ReportPacket {
  StepReport report;
  StepStats stats;
  // Requests that ended here since the last boundary, with their results.
  std::vector<std::pair<RequestId, io::ResultRecord>> results;
};

struct DecisionPacket {
  RankDecision decision;
  bool end = false;  // nothing left anywhere: leave the step loop
  // Some rBlock lives away from its home this step (the ledger is not empty), so ranks may
  // send each other queries: DistAttention::plan exchanges its headers. When false, no rank
  // reads a remote block and the plan's collective is skipped.
  bool exchange = true;
};

// A result record travels in the output's own JSON form (io::to_json / io::record_from_json).
std::vector<std::uint8_t> encode(const io::ResultRecord& record);
io::ResultRecord decode_record(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode(const ReportPacket& packet);
ReportPacket decode_report(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode(const DecisionPacket& packet);
DecisionPacket decode_decision(const std::uint8_t* data, std::size_t size);

}  // namespace infllm::dist
