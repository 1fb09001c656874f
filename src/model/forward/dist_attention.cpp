// dist_attention.cpp: see dist_attention.hpp.
#include "model/forward/dist_attention.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>

#include "core/errors.hpp"

namespace infllm::model {

namespace {

int query_tag(int layer) { return 2 * layer; }
int partial_tag(int layer) { return 2 * layer + 1; }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

MaParams partial_params(int layer, int q_heads, int head_dim) {
  MaParams p;
  p.layer = layer;
  p.q_heads = q_heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  p.result = MaResult::kPartial;
  return p;
}

}  // namespace

DistAttention::DistAttention(AttentionExchange& exchange, Backend& backend, const KvPool& pool,
                             int q_heads)
    : exchange_(exchange),
      backend_(backend),
      pool_(pool),
      q_heads_(q_heads),
      head_dim_(pool.geometry.head_dim) {}

float* DistAttention::Scratch::get(Backend& backend, std::size_t floats) {
  const std::size_t bytes = std::max<std::size_t>(1, floats) * sizeof(float);
  if (!memory || memory->bytes() < bytes) {
    memory.reset();
    memory = backend.allocate(bytes + bytes / 4, MemoryUse::kWorkspace);
  }
  return reinterpret_cast<float*>(memory->data());
}

void DistAttention::plan(std::vector<SeqPlan> seqs, std::vector<std::int64_t> tokens,
                         std::vector<std::int64_t> first_pos, const KvPool* pulled, bool exchange) {
  seqs_ = std::move(seqs);
  tokens_ = std::move(tokens);
  first_pos_ = std::move(first_pos);
  pulled_ = pulled;
  row0_.assign(seqs_.size() + 1, 0);
  for (std::size_t s = 0; s < seqs_.size(); ++s) row0_[s + 1] = row0_[s] + tokens_[s];
  const auto rows = static_cast<std::size_t>(row0_.back() * q_heads_);
  const auto hd = static_cast<std::size_t>(head_dim_);
  acc_o_ = acc_.get(backend_, rows * (hd + 2));
  acc_m_ = acc_o_ + rows * hd;
  acc_l_ = acc_m_ + rows;
  if (pulled_ != nullptr) {
    pull_o_ = pull_.get(backend_, rows * (hd + 2));
    pull_m_ = pull_o_ + rows * hd;
    pull_l_ = pull_m_ + rows;
  }
  out_.clear();
  in_.clear();
  remote_ = false;

  const int size = exchange_.size(), me = exchange_.rank();
  // Outgoing: per creditor, its requests' headers.
  std::map<int, Peer> out;
  AttentionExchange::Headers headers;
  for (std::size_t s = 0; s < seqs_.size(); ++s) {
    if (!seqs_[s].pulled.empty()) remote_ = true;
    for (std::size_t k = 0; k < seqs_[s].pushed.size(); ++k) {
      const RemotePart& part = seqs_[s].pushed[k];
      const int c = part.creditor.value();
      if (c == me || c < 0 || c >= size) throw InternalError("DistAttention: bad creditor");
      remote_ = true;
      Peer& p = out[c];
      p.rank = c;
      p.rows += tokens_[s] * q_heads_;
      p.seqs.emplace_back(static_cast<int>(s), static_cast<int>(k));
      auto& h = headers[c];
      h.push_back(tokens_[s]);
      h.push_back(first_pos_[s]);
      h.push_back(static_cast<std::int64_t>(part.blocks.size()));
      for (const KvBlock& b : part.blocks) {
        h.push_back(b.slot.value());
        h.push_back(b.first_pos);
        h.push_back(b.tokens);
      }
    }
  }
  if (size == 1) return;
  if (!exchange) {
    if (!headers.empty()) {
      throw InternalError("DistAttention: a query to send in a step planned without exchange");
    }
    return;
  }
  const AttentionExchange::Headers in_headers = exchange_.exchange_headers(headers);
  for (auto& [c, p] : out) out_.push_back(std::move(p));
  for (const auto& [d, h] : in_headers) {
    Peer p;
    p.rank = d;
    std::size_t i = 0;
    while (i < h.size()) {
      InSeq q;
      q.tokens = h.at(i++);
      q.first_pos = h.at(i++);
      const auto nb = h.at(i++);
      for (std::int64_t b = 0; b < nb; ++b) {
        const auto slot = static_cast<std::int32_t>(h.at(i++));
        const auto first = h.at(i++);
        const auto toks = static_cast<std::int32_t>(h.at(i++));
        q.blocks.push_back(KvBlock{SlotId{slot}, first, toks});
      }
      p.rows += q.tokens * q_heads_;
      p.in.push_back(std::move(q));
    }
    in_.push_back(std::move(p));
  }
}

void DistAttention::attend(Backend& backend, const KvStore& store, int layer_index, int q_heads,
                           std::span<const StepSequence> batch,
                           std::span<const std::vector<KvBlock>> blocks, const float* q,
                           float* out) {
  if (!remote_ && in_.empty()) {
    // Everything this step is at home: the plain local attention over this rank's plan.
    Attention::attend(backend, store, layer_index, q_heads, batch, blocks, q, out);
    return;
  }
  if (batch.size() != seqs_.size()) throw InternalError("DistAttention: batch differs from plan");
  layer(layer_index, q, out);
}

void DistAttention::serve_layer(int layer_index) { layer(layer_index, nullptr, nullptr); }

void DistAttention::serve_one(Peer& d, int layer_index) {
  const std::int64_t rows = d.rows;
  const int hd = head_dim_;
  const auto out_floats = static_cast<std::size_t>(rows * (hd + 2));
  d.send.assign(out_floats, 0.0f);
  // A host-memory backend reads the queries and writes the states where they travel; a device
  // backend gets the queries uploaded and its states downloaded.
  const bool host = backend_.host_memory();
  float* staged = host ? nullptr : d.stage.get(backend_, d.recv.size() + out_floats);
  const float* qin = d.recv.data();
  float* o = d.send.data();
  if (!host) {
    backend_.upload(staged, d.recv.data(), d.recv.size() * sizeof(float));
    qin = staged;
    o = staged + d.recv.size();
  }
  float* m = o + rows * hd;
  float* l = m + rows;
  std::vector<MaQuery> queries;
  std::vector<MaOutput> outputs;
  std::int64_t r = 0;  // query-head rows so far
  for (const InSeq& s : d.in) {
    queries.push_back(MaQuery{qin + r * hd, static_cast<int>(s.tokens), s.first_pos, s.blocks});
    outputs.push_back(MaOutput{o + r * hd, m + r, l + r});
    r += s.tokens * q_heads_;
  }
  backend_.attention(pool_, partial_params(layer_index, q_heads_, hd), queries, outputs);
  if (!host) backend_.download(d.send.data(), o, out_floats * sizeof(float));
  exchange_.post_send(d.rank, partial_tag(layer_index), d.send);
  traffic_.partial_bytes += static_cast<std::int64_t>(d.send.size() * sizeof(float));
}

void DistAttention::layer(int layer_index, const float* q, float* out) {
  const int hd = head_dim_;
  const std::size_t row = static_cast<std::size_t>(q_heads_) * hd;  // floats per token
  std::vector<std::size_t> recv_q(in_.size()), recv_p(out_.size());
  for (std::size_t i = 0; i < in_.size(); ++i) {
    in_[i].recv.resize(static_cast<std::size_t>(in_[i].rows * hd));
    recv_q[i] = exchange_.post_recv(in_[i].rank, query_tag(layer_index), in_[i].recv);
  }
  for (std::size_t i = 0; i < out_.size(); ++i) {
    Peer& c = out_[i];
    c.recv.resize(static_cast<std::size_t>(c.rows * (hd + 2)));
    recv_p[i] = exchange_.post_recv(c.rank, partial_tag(layer_index), c.recv);
    c.send.resize(static_cast<std::size_t>(c.rows * hd));
    std::size_t at = 0;
    for (const auto& [s, k] : c.seqs) {
      const std::size_t n = static_cast<std::size_t>(tokens_[s]) * row;
      backend_.download(c.send.data() + at, q + static_cast<std::size_t>(row0_[s]) * row,
                        n * sizeof(float));
      at += n;
    }
    exchange_.post_send(c.rank, query_tag(layer_index), c.send);
    traffic_.query_bytes += static_cast<std::int64_t>(c.send.size() * sizeof(float));
  }

  // This rank's own requests: partial states over the blocks at hand.
  const std::int64_t rows = row0_.back() * q_heads_;
  const auto acc_of = [&](std::size_t s) {
    const std::int64_t r = row0_[s] * q_heads_;
    return MaOutput{acc_o_ + r * hd, acc_m_ + r, acc_l_ + r};
  };
  if (!seqs_.empty()) {
    const MaParams params = partial_params(layer_index, q_heads_, hd);
    std::vector<MaQuery> queries(seqs_.size());
    std::vector<MaOutput> outputs(seqs_.size());
    for (std::size_t s = 0; s < seqs_.size(); ++s) {
      queries[s] = MaQuery{q + static_cast<std::size_t>(row0_[s]) * row,
                           static_cast<int>(tokens_[s]), first_pos_[s], seqs_[s].local};
      outputs[s] = acc_of(s);
    }
    backend_.attention(pool_, params, queries, outputs);
    if (pulled_ != nullptr) merge_pulled(params, queries, acc_of);
  }

  // Serve every query addressed here, as it arrives.
  for (std::size_t served = 0; served < in_.size(); ++served) {
    const double t0 = now_s();
    const std::size_t ticket = exchange_.wait_any(recv_q);
    traffic_.wait_s += now_s() - t0;
    const auto at = std::find(recv_q.begin(), recv_q.end(), ticket) - recv_q.begin();
    serve_one(in_[static_cast<std::size_t>(at)], layer_index);
  }

  // This rank's partial states from its creditors.
  {
    const double t0 = now_s();
    exchange_.wait_all(recv_p);
    traffic_.wait_s += now_s() - t0;
  }
  for (Peer& c : out_) {
    const float* o = c.recv.data();
    if (!backend_.host_memory()) {
      float* staged = c.stage.get(backend_, c.recv.size());
      backend_.upload(staged, c.recv.data(), c.recv.size() * sizeof(float));
      o = staged;
    }
    const float* m = o + c.rows * hd;
    const float* l = m + c.rows;
    std::int64_t r = 0;
    for (const auto& [s, k] : c.seqs) {
      const std::int64_t n = tokens_[static_cast<std::size_t>(s)] * q_heads_;
      backend_.merge_partials_into(acc_of(static_cast<std::size_t>(s)),
                                   PartialsView{o + r * hd, m + r, l + r}, n, hd);
      r += n;
    }
  }
  if (out != nullptr && rows > 0) {
    backend_.normalize_partials(PartialsView{acc_o_, acc_m_, acc_l_}, rows, hd, out);
  }
  const double t0 = now_s();
  exchange_.wait_sends();
  traffic_.wait_s += now_s() - t0;
}

void DistAttention::merge_pulled(const MaParams& params, std::span<const MaQuery> queries,
                                 const std::function<MaOutput(std::size_t)>& acc_of) {
  const int hd = head_dim_;
  std::vector<MaQuery> pq;
  std::vector<std::size_t> which;
  for (std::size_t s = 0; s < seqs_.size(); ++s) {
    if (seqs_[s].pulled.empty()) continue;
    pq.push_back(queries[s]);
    pq.back().blocks = seqs_[s].pulled;
    which.push_back(s);
  }
  if (pq.empty()) return;
  std::vector<MaOutput> pout;
  for (std::size_t s : which) {
    const std::int64_t r = row0_[s] * q_heads_;
    pout.push_back(MaOutput{pull_o_ + r * hd, pull_m_ + r, pull_l_ + r});
  }
  backend_.attention(*pulled_, params, pq, pout);
  for (std::size_t i = 0; i < which.size(); ++i) {
    const std::size_t s = which[i];
    backend_.merge_partials_into(acc_of(s), PartialsView{pout[i].o, pout[i].m, pout[i].l},
                                 tokens_[s] * q_heads_, hd);
  }
}

}  // namespace infllm::model
