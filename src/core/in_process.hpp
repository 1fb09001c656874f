// in_process.hpp: the step loop's ports for several instances in one process, one thread each
// (tests, and engines that need no MPI). The boundary is a rendezvous under one mutex:
// every instance deposits its report, instance 0 decides, every instance takes its decision.
// rBlocks are copies between the instances' pools, complete when put_block / get_block return;
// push-query's messages are copies into mailboxes.
//
// The loop's ordering rules make these copies race-free without further locking: a slot is
// written and read by different instances only across a boundary (a pushed block is read after
// the boundary that reports the push; a DGFM copy lands before the boundary that commits it),
// and the boundary's mutex orders them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "core/step_ports.hpp"

namespace infllm {

class InProcessCluster {
 public:
  // Where instance `rank`'s pool of `bytes` lives: memory the caller keeps until the cluster is
  // gone (a backend's). Blocks move between pools by memcpy, so it must be host-accessible.
  using PoolMemory = std::function<std::span<std::byte>(std::int32_t rank, std::size_t bytes)>;

  // `instances` pools of `slots` slots of `slot_bytes` each (the cluster's own memory unless
  // `memory` gives it); instances r and s share a node when r / per_node == s / per_node.
  InProcessCluster(std::int32_t instances, std::size_t slot_bytes, std::int32_t slots,
                   std::int32_t per_node = 1, const PoolMemory& memory = {});
  ~InProcessCluster();
  InProcessCluster(const InProcessCluster&) = delete;
  InProcessCluster& operator=(const InProcessCluster&) = delete;

  std::int32_t instances() const { return static_cast<std::int32_t>(pools_.size()); }
  ControlPort& control(std::int32_t rank);
  BlockTransport& blocks(std::int32_t rank);
  AttentionExchange& exchange(std::int32_t rank);
  // A pool's memory as a reader sees it (tests).
  const std::byte* pool(std::int32_t rank) const;

  // An instance failed: every instance waiting at a rendezvous (and every later one) throws
  // InternalError instead of waiting for it.
  void abort();

  // Runs `body(rank)` on one thread per instance and joins them. The first exception thrown
  // aborts the cluster (so no instance waits for a dead one) and is rethrown here.
  void run(const std::function<void(std::int32_t rank)>& body);

 private:
  class Control;
  class Blocks;
  class Exchange;
  friend class Control;
  friend class Blocks;
  friend class Exchange;

  // Blocks until `done()` holds (under mu_) or the cluster aborts (then throws).
  void wait(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done);

  const std::size_t slot_bytes_;
  const std::int32_t slots_;
  const std::int32_t per_node_;
  std::vector<std::vector<std::byte>> own_;  // without PoolMemory
  std::vector<std::span<std::byte>> pools_;
  std::vector<std::unique_ptr<Control>> controls_;
  std::vector<std::unique_ptr<Blocks>> blocks_;
  std::vector<std::unique_ptr<Exchange>> exchanges_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  // The boundary and the invariant check: deposits, then instance 0's answers.
  std::vector<std::optional<InstanceReport>> reports_;
  std::vector<std::optional<InstanceView>> views_;
  std::vector<std::optional<InstanceDecision>> decisions_;
  std::int32_t deposited_ = 0;
  std::int64_t round_ = 0;  // rendezvous completed
  // Fill steps: arrivals of the step under way; arrival_round_ counts completed steps.
  std::int32_t arrived_ = 0;
  std::atomic<std::int64_t> arrival_round_{0};
  // Attention traffic: each instance's headers for the step, and buffered float messages keyed
  // by (from, to, tag), in the order sent.
  std::vector<AttentionExchange::Headers> headers_;
  std::int32_t headers_in_ = 0;
  std::int64_t headers_round_ = 0;
  std::map<std::tuple<std::int32_t, std::int32_t, int>, std::deque<std::vector<float>>> mail_;
};

}  // namespace infllm
