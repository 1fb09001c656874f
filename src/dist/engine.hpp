// engine.hpp: the distributed engine: `mpiexec -n N infllm generate` over a pooled rBlock KV
// cache (docs/design.md, "The distributed engine").
//
// Every rank holds the same request list (every rank reads the input). Each rank runs the step
// loop of core/step_loop.hpp over MPI ports: its boundary through MpiControlPort (MPI_Gatherv
// of reports, MPI_Scatterv of decisions; rank 0 hosts the gManager and receives every result),
// rBlocks through its RmaPool (an MPI RMA window), and each step through a ModelExecutor (the
// forward pass with DistAttention, sampling). With KvPolicy::kLocal the same loop runs with a
// gManager that never lends: each request's KV stays in its home's pool.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/kv_policy.hpp"
#include "core/step_loop.hpp"
#include "dist/wire.hpp"
#include "io/results.hpp"
#include "model/engine/engine.hpp"
#include "model/forward/forward.hpp"
#include "model/sampling/generator.hpp"

namespace infllm::dist {

struct EngineHooks {
  std::function<bool()> stop;                         // every rank, every boundary
  std::function<void(io::ResultRecord&&)> on_result;  // rank 0
  std::function<void(const ClusterStep&)> on_step;    // rank 0
  std::function<void()> after_step;                   // every rank
  // Test: cut every fill step at its last layer as if the last rank had just arrived, so the
  // discarding of a cut step runs whenever a fill step starts.
  bool cut_every_fill_step = false;
};

// A finished request's result as the output records it.
io::ResultRecord to_record(model::GenResult&& result);

class Engine {
 public:
  // Collective over `comm` (it is duplicated). Allocates this rank's pool window.
  Engine(MPI_Comm comm, model::Forward& forward, const model::Tokenizer* tokenizer,
         const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Collective. `requests`: the same list on every rank; `to_run`: indices into it (read on
  // rank 0 only). Results reach hooks.on_result on rank 0. The summary is rank 0's.
  RunSummary run(const std::vector<model::GenRequest>& requests,
                 const std::vector<std::size_t>& to_run, const EngineHooks& hooks);

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm attn_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  model::Forward& forward_;
  const model::Tokenizer* tokenizer_;
  EngineOptions options_;
};

}  // namespace infllm::dist
