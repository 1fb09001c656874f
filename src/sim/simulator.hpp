// simulator.hpp: the cluster simulator (docs/simulate.md). It runs the engine's own step loop
// (core/step_loop.hpp: every instance's InstanceLoop and the gManager's ManagerLoop, with the
// rManagers, the ledger, DGFM and kv_policy), one thread driving every instance's phases, with
// a step executor that takes its time from a cost model (cost_model.hpp) instead of computing,
// and a block transport that counts bytes instead of moving them. Time is simulated:
//
//   boundary  every instance waits for the slowest (bulk-synchronous), then the gather and the
//             scatter cross the network: all clocks meet at max(clock) + 2 * latency * log2(N)
//   data ops  an instance's pushes and DGFM copies cost their bytes on the link to each peer
//   step      the executor's cost-model time for the batch, plus push-query's messages; a
//             creditor's clock also pays for the queries it answers; pulls cost their bytes
//   fill      with fill waits, an instance whose clock is behind the slowest runs fill steps,
//             layer by layer, until it catches up (a step cut part-way costs its layers)
//   arrivals  a request reaches the gManager at the first boundary at or after its arrival;
//             an idle cluster waits for the next one
//
// No second implementation of any scheduling rule exists here: placement, admission, batching,
// preemption, loans and DGFM are the loop's and the managers' own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/engine_options.hpp"
#include "core/step_loop.hpp"
#include "sim/cost_model.hpp"

namespace infllm::sim {

struct SimRequest {
  std::int64_t prompt_tokens = 0;
  std::int64_t max_new_tokens = 0;
  double arrival_s = 0;  // when it reaches the gManager (0: offline batch, all at once)
};

struct SimOptions {
  std::int32_t instances = 2;
  std::int32_t per_node = 8;  // instances r and s share a node when r / per_node == s / per_node
  // engine.instance.pool_slots: the pool of each instance, rBlocks; engine.check_invariants:
  // every rManager, the gManager, the ledger and the cross-instance rule at every boundary.
  EngineOptions engine;
};

struct RequestOutcome {
  std::int64_t id = 0;
  std::string status;  // done | rejected | failed
  std::int64_t prompt_tokens = 0;
  std::int64_t generated = 0;
  double arrival_s = 0;
  double first_token_s = 0;
  double finish_s = 0;
  int preemptions = 0;
  std::int64_t remote_blocks_max = 0;
};

struct SimResult {
  RunSummary summary;
  std::vector<RequestOutcome> requests;  // in request order
  double makespan_s = 0;                 // simulated time of the whole run
  std::int64_t done_tokens = 0;          // prompt + generated tokens of the done requests
  double tokens_per_s() const { return makespan_s > 0 ? double(done_tokens) / makespan_s : 0; }
  std::int64_t longest_done = 0;  // prompt + generated of the longest done request
  double median_finish_s = 0;     // of the done requests: finish - arrival (completion time)
};

SimResult simulate(const CostModel& cost, const std::vector<SimRequest>& requests,
                   const SimOptions& options);

// Seeded workload of the paper's shape: `short_count` chat-like requests and `long_count` long
// documents (prompts uniform in [long_min, long_max]), interleaved in a seeded order; all at
// once, or at `rate` requests per second (Poisson arrivals).
struct WorkloadSpec {
  std::int64_t short_count = 0, short_prompt = 512, short_new = 128;
  std::int64_t long_count = 0, long_min = 1000, long_max = 100000, long_new = 64;
  double rate = 0;  // requests per second; 0 = all at time 0
  std::uint64_t seed = 0;
};
std::vector<SimRequest> make_workload(const WorkloadSpec& spec);

}  // namespace infllm::sim
