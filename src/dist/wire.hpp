// wire.hpp: the control plane's messages as bytes (MessagePack through nlohmann::json).
//
// A step boundary moves one ReportPacket per rank to rank 0 (MPI_Gatherv) and one
// DecisionPacket per rank back (MPI_Scatterv). Packets are a few hundred bytes unless results
// ride along; field order and names are the protocol's (core/kv_messages.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster_check.hpp"
#include "core/kv_messages.hpp"
#include "core/step_stats.hpp"
#include "io/results.hpp"

namespace infllm::dist {

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
// An instance's side of the cross-rank rule (--check-invariants).
std::vector<std::uint8_t> encode(const InstanceView& view);
InstanceView decode_view(const std::uint8_t* data, std::size_t size);

}  // namespace infllm::dist
