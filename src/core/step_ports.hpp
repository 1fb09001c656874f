// step_ports.hpp: what the step loop (step_loop.hpp) needs from the world, as ports.
//
//   ControlPort     the boundary: every instance's report to the gManager's instance (0), one
//                   decision back to each; the arrival mark of fill steps; the invariant views.
//                   Adapters: MPI (dist/control_mpi.hpp: Gatherv/Scatterv, Ibarrier) and
//                   in-process (core/in_process.hpp: threads of one process).
//   BlockTransport  whole rBlocks between pools: put, get, flush, and this pool's own memory.
//                   Adapters: an MPI RMA window (dist/rma_pool.hpp), in-process copies.
//   AttentionExchange  push-query's headers, query rows and partial states between instances
//                   (for DistAttention). Adapters: MPI point-to-point, in-process mailboxes.
//   StepExecutor    what a step computes over the batch the loop planned: the forward pass and
//                   sampling (dist/model_executor.hpp), or a synthetic one (tests, the
//                   simulator's cost model).
//
// The loop itself speaks only to these, so it is written once for `mpiexec`, for one process
// with many instances, and for every policy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "core/cluster_check.hpp"
#include "core/kv_block.hpp"
#include "core/kv_messages.hpp"
#include "core/r_manager.hpp"
#include "core/step_stats.hpp"

namespace infllm {

// A request that ended at its home, with its result as the executor encoded it.
struct FinishedRequest {
  RequestId id;
  std::vector<std::uint8_t> record;
};

// One instance -> the gManager, at a boundary.
struct InstanceReport {
  StepReport report;
  StepStats stats;                       // the step just run
  std::vector<FinishedRequest> results;  // ended here since the last boundary
};

// The gManager -> one instance, at a boundary.
struct InstanceDecision {
  RankDecision decision;
  bool end = false;  // nothing left anywhere: leave the step loop
  // Some rBlock lives away from its home this step (the ledger is not empty), so instances may
  // send each other queries: the executor's attention plan exchanges its headers. When false,
  // no instance reads a remote block and that exchange is skipped.
  bool exchange = true;
};

class ControlPort {
 public:
  using Decide = std::function<std::vector<InstanceDecision>(std::vector<InstanceReport>&&)>;
  using CheckViews = std::function<void(std::vector<InstanceView>&&)>;

  virtual ~ControlPort() = default;
  virtual std::int32_t rank() const = 0;
  virtual std::int32_t size() const = 0;
  // The node of every instance (instances that share memory share a node), in rank order.
  // Collective; the list on instance 0 (the others may get an empty one).
  virtual std::vector<std::int32_t> nodes() = 0;
  // Collective, every boundary. On instance 0, `decide` turns every report (rank order) into one
  // decision per instance; every instance gets its own decision back.
  virtual InstanceDecision boundary(InstanceReport&& mine, const Decide& decide) = 0;
  // Collective. On instance 0, `check` gets every instance's view (rank order).
  virtual void check_views(InstanceView&& mine, const CheckViews& check) = 0;
  // Fill steps: arrive() marks this instance's step done without waiting; all_arrived() tests
  // whether every instance has; wait_all() blocks until they have. One arrival per step.
  virtual void arrive() = 0;
  virtual bool all_arrived() = 0;
  virtual void wait_all() = 0;
};

class BlockTransport {
 public:
  virtual ~BlockTransport() = default;
  virtual std::size_t slot_bytes() const = 0;
  virtual std::int32_t slots() const = 0;
  // This instance's own slot, for the KV pool the executor computes on.
  virtual std::span<std::byte> local(SlotId slot) = 0;
  // False for a transport that counts blocks instead of moving bytes (the simulator's): the
  // loop then hands it null buffers and allocates none.
  virtual bool carries_bytes() const { return true; }
  // One slot's bytes to (rank, slot) / from (rank, slot); complete at flush_all().
  virtual void put_block(const void* src, BlockRef dst) = 0;
  virtual void get_block(void* dst, BlockRef src) = 0;
  virtual void flush_all() = 0;
  // Makes what others wrote into this pool (and this instance's own stores) visible to both.
  virtual void sync() = 0;
};

// The attention traffic of push-query between instances, for DistAttention: once per step the
// query headers (who asks whom about which blocks), then per layer the query rows and the
// partial states, as float messages matched by (peer, tag). Sends are buffered: the caller's
// buffer may be reused once wait_sends() returns.
class AttentionExchange {
 public:
  using Headers = std::map<std::int32_t, std::vector<std::int64_t>>;  // peer -> its header
  virtual ~AttentionExchange() = default;
  virtual std::int32_t rank() const = 0;
  virtual std::int32_t size() const = 0;
  // Collective: `out` holds what this instance sends each peer it asks (none to the others);
  // returns what each peer that asks this instance sent it.
  virtual Headers exchange_headers(const Headers& out) = 0;
  // Nonblocking. A receive's ticket is its index among the receives posted since the last
  // wait_sends().
  virtual std::size_t post_recv(std::int32_t peer, int tag, std::span<float> into) = 0;
  virtual void post_send(std::int32_t peer, int tag, std::span<const float> data) = 0;
  // Blocks until one receive of `tickets` not yet returned completes; returns its ticket.
  virtual std::size_t wait_any(std::span<const std::size_t> tickets) = 0;
  virtual void wait_all(std::span<const std::size_t> tickets) = 0;
  // Completes every send and forgets every receive posted so far.
  virtual void wait_sends() = 0;
};

// One batch item of a step, as the loop planned it.
struct StepItem {
  Growth growth;
  // The home slot of each logical block up to the step's last position; a block that lives
  // elsewhere has slot 0 here (only tails are written, and tails are at home).
  std::vector<SlotId> slots;
  SeqPlan plan;
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // A request placed at this instance starts; one preempted or failed here is dropped.
  virtual void start(const RequestSpec& spec) = 0;
  virtual void drop(RequestId request) = 0;
  // Bytes that push-query sends and receives per query row, over all layers (queries out,
  // partial states back): RemoteAttention::kAuto pulls a creditor's blocks when they weigh less.
  virtual std::int64_t push_bytes_per_row() const = 0;
  // One step over `items` (possibly none: then it only serves the queries others send here).
  // `pulled`: the blocks fetched for pull-KV, one slot each, in plan order. `exchange`: as in
  // InstanceDecision. Fills the step's compute, wait, query and partial fields of `stats`.
  // Returns the requests that ended with this step.
  virtual std::vector<RequestId> step(std::span<const StepItem> items,
                                      std::span<const std::byte> pulled, bool exchange,
                                      StepStats& stats) = 0;
  // A fill step (every block at home, no exchange). `keep_going(layer)` is asked before each
  // layer; false abandons the step, and nothing comes back. Fills compute-time fields of
  // `stats` either way.
  virtual std::optional<std::vector<RequestId>> fill_step(
      std::span<const StepItem> items, const std::function<bool(int layer)>& keep_going,
      StepStats& stats) = 0;
  // The layers of a step (a fill step is cut before one of them).
  virtual int layers() const = 0;
  // The result of a request that ended here: `remote_max` blocks were at most away from home,
  // on `creditors` (ascending).
  virtual std::vector<std::uint8_t> result(RequestId request, std::int64_t remote_max,
                                           const std::vector<std::int32_t>& creditors) = 0;
};

}  // namespace infllm
