// engine.hpp: generation on the step loop (core/step_loop.hpp): the set-up of its managers from
// the engine's options (core/engine_options.hpp), and the loop's in-process run: N instances of
// the model on N threads of one process (the in-process ports of core/in_process.hpp), one
// instance being the plain single-instance engine. `mpiexec` runs the same loop over MPI ports
// (dist/engine.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/engine_options.hpp"
#include "core/g_manager.hpp"
#include "core/kv_policy.hpp"
#include "core/r_manager.hpp"
#include "core/step_loop.hpp"
#include "model/sampling/generator.hpp"

namespace infllm::model {

// The result of a request that ended without a step.
GenResult ended(const GenRequest& request, GenStatus status, std::string reason);
// Instance 0: every request of `to_run` (indices into `requests`) goes to the gManager, or to
// `on_ended` when it can never run (admission_verdict, or the gManager's verdict).
void submit_requests(ManagerLoop& manager, const std::vector<GenRequest>& requests,
                     const std::vector<std::size_t>& to_run, std::int64_t max_positions,
                     const std::function<void(GenResult&&)>& on_ended);

struct InProcessHooks {
  std::function<void(GenResult&&)> on_result;       // every result, on instance 0's thread
  std::function<void(const ClusterStep&)> on_step;  // instance 0
  std::function<bool()> stop;                       // every instance, every boundary
};

// Runs `requests` (all of them) on `instances` instances of the model, `per_node` to a node,
// through the in-process ports. Every instance has its own Forward over the shared weights and
// backend (whose calls may come from several threads at once). `loop`: its test hooks
// (after_step, cut_every_fill_step); the rest comes from `options`. The summary is instance
// 0's.
RunSummary run_in_process(const ModelConfig& config, const Weights& weights, Backend& backend,
                          const Tokenizer* tokenizer, const std::vector<GenRequest>& requests,
                          const EngineOptions& options, std::int32_t instances,
                          std::int32_t per_node, const InProcessHooks& hooks,
                          const LoopOptions& loop = {});

}  // namespace infllm::model
