// forward.hpp: the Llama-family transformer forward pass over a batch of requests whose KV
// cache lives in rBlocks of a pool.
//
// One call runs one engine step: any mix of prefill chunks and decode tokens of many requests.
// Each request brings the tokens of this step, their first absolute position, and its block
// table (the pool slot of each logical block). The pass writes the new tokens' K and V into
// their blocks, attends over everything up to each token (causal), and returns the logits of
// the last token of each request that asks for them.
//
//   x (T, H) = embed[tokens]                                  T = tokens of the whole batch
//   per layer:  h = rmsnorm(x) * attn_norm
//               q (T, Q), k (T, KV), v (T, KV) = h W^T (+ bias); rope(q, k)
//               K, V -> blocks;  a (T, Q) = attention(q, blocks);  x += a W_o^T
//               h = rmsnorm(x) * ffn_norm;  x += (silu(h W_gate^T) * h W_up^T) W_down^T
//   logits (R, vocab) = (rmsnorm(x[last rows]) * final_norm) W_out^T
//
// Attention goes through an Attention object so the distributed engine can add remote blocks
// (macro-attention on creditors, merged here) without touching this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/backend.hpp"
#include "core/block_geometry.hpp"
#include "model/formats/weights.hpp"

namespace infllm::model {

// One request's part of a step.
struct StepSequence {
  std::span<const std::int32_t> tokens;  // this step's tokens (a prefill chunk or one decode)
  std::int64_t first_pos = 0;            // absolute position of tokens[0]
  std::span<const SlotId> block_slots;   // slot of logical block i, covering every position
                                         // up to first_pos + tokens.size() - 1
  bool want_logits = false;              // logits of the last token of this step
};

// Per-layer attention of a batch. The default attends over the request's blocks in the local
// pool; the distributed engine derives from it.
class Attention {
 public:
  virtual ~Attention() = default;
  // q (T, q_heads, head_dim) rows in batch order; out (T, q_heads * head_dim), normalized.
  // blocks[s]: the blocks batch[s] reads (blocks_up_to), built once per step by Forward since
  // they are the same in every layer.
  virtual void attend(Backend& backend, const KvStore& store, int layer, int q_heads,
                      std::span<const StepSequence> batch,
                      std::span<const std::vector<KvBlock>> blocks, const float* q, float* out);
  // Asked before each layer's attention: false abandons the step (Forward::try_step returns
  // nothing). The distributed engine's fill steps stop this way once every rank has arrived.
  virtual bool keep_going(int layer) {
    (void)layer;
    return true;
  }
};

// The blocks a request's attention reads: logical blocks 0..ceil(end / block_tokens) - 1, the
// last one holding only the tokens before `end`.
std::vector<KvBlock> blocks_up_to(std::span<const SlotId> block_slots, std::int64_t end,
                                  int block_tokens);

// The rBlock geometry `config` needs for `block_tokens` and `dtype`.
BlockGeometry kv_geometry(const ModelConfig& config, int block_tokens, KvDtype dtype);

class Forward {
 public:
  // Keeps references to config and weights; inv_freq from config. The weights are made
  // resident in the backend's memory once, here: a host-memory backend reads them where they
  // are, a device backend gets its own copy of every tensor (matrices through resident_matrix,
  // so it may hold them in its weight dtype).
  Forward(const ModelConfig& config, const Weights& weights, Backend& backend);
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  // Runs one step; returns logits (R, vocab) for the R sequences with want_logits, in batch
  // order. Misuse (a position beyond the block table, a slot outside the store) throws
  // InternalError.
  std::vector<float> step(std::span<const StepSequence> batch, KvStore& store,
                          Attention& attention);
  // The same, for an Attention that may abandon the step (keep_going() false): then nothing is
  // returned. The K and V already written stay in the pool past what the caller committed.
  std::optional<std::vector<float>> try_step(std::span<const StepSequence> batch, KvStore& store,
                                             Attention& attention);
  std::vector<float> step(std::span<const StepSequence> batch, KvStore& store);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }
  // The rBlock geometry this model needs for `block_tokens` and `dtype`.
  BlockGeometry geometry(int block_tokens, KvDtype dtype) const;

 private:
  // Where each row of the batch stores its K and V (checked against the table and the store).
  static std::vector<KvRowDest> kv_rows(std::span<const StepSequence> batch, const KvStore& store);
  // y (m, n) (+)= x (m, k) . W^T: the quantized rows where the backend takes them, else f32.
  void linear(const float* x, const Tensor& w, float* y, std::size_t m, std::size_t n,
              std::size_t k, bool accumulate = false);
  // Where a tensor's values (and quantized rows) live in the backend's memory.
  struct Resident {
    const float* values = nullptr;
    const std::byte* quant = nullptr;
  };
  void make_resident(const Tensor& t);
  const float* values(const Tensor& t) const { return resident_.at(&t).values; }
  // A step's activations: one piece of backend memory, grown as steps need, carved per step.
  float* workspace(std::size_t floats);

  const ModelConfig& config_;
  const Weights& weights_;
  Backend& backend_;
  std::vector<float> inv_freq_;
  const float* inv_freq_resident_ = nullptr;
  std::unordered_map<const Tensor*, Resident> resident_;
  std::vector<std::unique_ptr<BackendMemory>> owned_;  // a device backend's copies
  std::unique_ptr<BackendMemory> work_;
};

}  // namespace infllm::model
