// dist_attention.hpp: per-layer attention over a request's blocks wherever they live.
//
// For one step, each request of this rank's batch has a SeqPlan: its blocks at home, the blocks
// it fetched (pull-KV), and per creditor the blocks that creditor holds and will attend over
// itself (push-query). plan() exchanges, once per step, the query headers (which slots and
// positions) through the AttentionExchange port (core/step_ports.hpp: MPI messages, or
// in-process mailboxes), so within a layer every receive is posted with its size known and
// only pairs that share loans talk. Then, in every layer (attend(), or serve_layer() on a rank
// with no batch):
//
//   post receives (queries from debtors, partial states from creditors)
//   send each creditor the query rows of its requests           home ----q----> creditor
//   MA over the local and pulled blocks -> partial states
//   answer every query addressed here: MA over the named slots  creditor --(o,m,l)--> home
//   wait for this rank's partial states, merge, normalize
//
// Remote blocks are always full and earlier than every query of the step (only full blocks
// leave home), so creditors attend without a causal mask; the kernel's mask is a no-op there.
// Each layer's exchange can only wait on ranks in the same layer, which answer before they wait
// themselves: no step deadlocks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.hpp"
#include "core/kv_block.hpp"
#include "core/step_ports.hpp"
#include "model/forward/forward.hpp"

namespace infllm::model {

struct AttentionTraffic {
  std::int64_t query_bytes = 0;
  std::int64_t partial_bytes = 0;
  double wait_s = 0;
};

class DistAttention final : public Attention {
 public:
  // `exchange`: this traffic's port. `backend`: computes every MA, merge and normalization.
  // `pool`: this rank's pool, which creditors read for the queries they serve. Queries and
  // partial states travel in host memory: with a backend whose memory is not (a device), they
  // are staged through its upload / download.
  DistAttention(AttentionExchange& exchange, Backend& backend, const KvPool& pool, int q_heads);

  // Every rank every step. `seqs[s]` is batch item s's plan; `tokens[s]` and `first_pos[s]`
  // its query rows this step. With `exchange` (the same on every rank) it is collective over
  // the exchange: ranks learn who sends them queries. Without, no rank may send any (checked).
  void plan(std::vector<SeqPlan> seqs, std::vector<std::int64_t> tokens,
            std::vector<std::int64_t> first_pos, const KvPool* pulled, bool exchange = true);
  // Whether any rank will send this rank a query this step.
  bool serving() const { return !in_.empty(); }
  // Whether this rank's batch reads anything beyond its own pool.
  bool remote() const { return remote_; }

  void attend(Backend& backend, const KvStore& store, int layer, int q_heads,
              std::span<const StepSequence> batch, std::span<const std::vector<KvBlock>> blocks,
              const float* q, float* out) override;
  // A layer's exchange for a rank with an empty batch: serve the queries addressed to it.
  void serve_layer(int layer);

  const AttentionTraffic& traffic() const { return traffic_; }
  void reset_traffic() { traffic_ = {}; }

 private:
  // Backend memory of at least the floats asked, kept and grown between steps.
  struct Scratch {
    std::unique_ptr<BackendMemory> memory;
    float* get(Backend& backend, std::size_t floats);
  };
  struct InSeq {
    std::int64_t tokens = 0;
    std::int64_t first_pos = 0;
    std::vector<KvBlock> blocks;
  };
  struct Peer {
    int rank = 0;
    std::int64_t rows = 0;                  // query rows (tokens * q_heads)
    std::vector<std::pair<int, int>> seqs;  // outgoing: (seq, part index)
    std::vector<InSeq> in;                  // incoming: the debtor's requests
    std::vector<float> send, recv;          // this layer's buffers, host memory
    Scratch stage;  // a device backend's copy of what came in, and what goes out
  };
  void layer(int layer, const float* q, float* out);
  // The pulled blocks' partial states, merged into each item's accumulator.
  void merge_pulled(const MaParams& params, std::span<const MaQuery> queries,
                    const std::function<MaOutput(std::size_t)>& acc_of);
  void serve_one(Peer& debtor, int layer);

  AttentionExchange& exchange_;
  Backend& backend_;
  KvPool pool_;
  const KvPool* pulled_ = nullptr;
  int q_heads_;
  int head_dim_;
  std::vector<SeqPlan> seqs_;
  std::vector<std::int64_t> tokens_, first_pos_, row0_;
  std::vector<Peer> out_;  // creditors this rank queries
  std::vector<Peer> in_;   // debtors that query this rank
  bool remote_ = false;
  AttentionTraffic traffic_;
  // Per-layer buffers in the backend's memory, sized once per step by plan(): this rank's
  // partial states (o, m, l) and those of its pulled blocks.
  Scratch acc_, pull_;
  float *acc_o_ = nullptr, *acc_m_ = nullptr, *acc_l_ = nullptr;
  float *pull_o_ = nullptr, *pull_m_ = nullptr, *pull_l_ = nullptr;
};

}  // namespace infllm::model
