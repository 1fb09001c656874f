// model_executor.hpp: the step loop's StepExecutor for real generation: the forward pass over
// the batch the loop planned, with DistAttention for the blocks on other ranks, then sampling
// and the stopping rules (generator.hpp's accept_token), one Seq per request at home. It runs
// under every adapter of the loop's ports: MPI ranks and in-process instances.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/step_ports.hpp"
#include "model/forward/dist_attention.hpp"
#include "model/forward/forward.hpp"
#include "model/sampling/generator.hpp"

namespace infllm::model {

class ModelExecutor final : public StepExecutor {
 public:
  // A finished request's result as the bytes that travel to the gManager's instance.
  using Encode = std::function<std::vector<std::uint8_t>(RequestId, GenResult&&)>;

  // `requests`: the run's list (RequestId = index into it). `store`: this instance's KV pool,
  // the memory `blocks` exposes. `attention` attends over every step's plan.
  ModelExecutor(Forward& forward, const Tokenizer* tokenizer,
                const std::vector<GenRequest>& requests, const std::vector<std::int32_t>& eos_ids,
                KvStore store, DistAttention& attention, BlockTransport& blocks, Encode encode);

  void start(const RequestSpec& spec) override;
  void drop(RequestId request) override;
  std::int64_t push_bytes_per_row() const override;
  std::vector<RequestId> step(std::span<const StepItem> items, std::span<const std::byte> pulled,
                              bool exchange, StepStats& stats) override;
  std::optional<std::vector<RequestId>> fill_step(std::span<const StepItem> items,
                                                  const std::function<bool(int)>& keep_going,
                                                  StepStats& stats) override;
  int layers() const override;
  std::vector<std::uint8_t> result(RequestId request, std::int64_t remote_max,
                                   const std::vector<std::int32_t>& creditors) override;

 private:
  // One request at home.
  struct Seq {
    const GenRequest* req = nullptr;
    std::vector<std::int32_t> all;  // prompt + generated
    GenResult result;
    bool first_token = false;
  };
  std::vector<StepSequence> batch_of(std::span<const StepItem> items);
  // Sampling and stopping after a forward pass; the requests that ended.
  std::vector<RequestId> accept(std::span<const StepItem> items,
                                std::span<const StepSequence> batch, std::vector<float>& logits);
  double since_start() const;

  Forward& forward_;
  const Tokenizer* tokenizer_;
  const std::vector<GenRequest>& requests_;
  const std::vector<std::int32_t>& eos_ids_;
  KvStore store_;
  DistAttention& attention_;
  BlockTransport& blocks_;
  Encode encode_;
  const std::int64_t max_pos_;
  std::map<RequestId, Seq> seqs_;
  std::unique_ptr<BackendMemory> pulled_stage_;  // a device backend's copy of the pulled blocks
  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace infllm::model
