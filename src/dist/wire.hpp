// wire.hpp: the control plane's messages as bytes (MessagePack through nlohmann::json).
//
// A step boundary moves one InstanceReport per rank to rank 0 (MPI_Gatherv) and one
// InstanceDecision per rank back (MPI_Scatterv) (core/step_ports.hpp). Packets are a few hundred
// bytes unless results ride along (each a record encoded as below, carried as bytes); field
// order and names are the protocol's (core/kv_messages.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster_check.hpp"
#include "core/kv_messages.hpp"
#include "core/step_ports.hpp"
#include "io/results.hpp"

namespace infllm::dist {

// A result record travels in the output's own JSON form (io::to_json / io::record_from_json).
std::vector<std::uint8_t> encode(const io::ResultRecord& record);
io::ResultRecord decode_record(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode(const InstanceReport& packet);
InstanceReport decode_report(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode(const InstanceDecision& packet);
InstanceDecision decode_decision(const std::uint8_t* data, std::size_t size);
// An instance's side of the cross-rank rule (--check-invariants).
std::vector<std::uint8_t> encode(const InstanceView& view);
InstanceView decode_view(const std::uint8_t* data, std::size_t size);

}  // namespace infllm::dist
