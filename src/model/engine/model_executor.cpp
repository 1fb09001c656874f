// model_executor.cpp: see model_executor.hpp.
#include "model/engine/model_executor.hpp"

namespace infllm::model {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A fill step's attention: the local one, abandoning the step once keep_going says so.
class FillAttention final : public Attention {
 public:
  explicit FillAttention(const std::function<bool(int)>& keep_going) : keep_going_(keep_going) {}
  bool keep_going(int layer) override { return keep_going_(layer); }

 private:
  const std::function<bool(int)>& keep_going_;
};

}  // namespace

ModelExecutor::ModelExecutor(Forward& forward, const Tokenizer* tokenizer,
                             const std::vector<GenRequest>& requests,
                             const std::vector<std::int32_t>& eos_ids, KvStore store,
                             DistAttention& attention, BlockTransport& blocks, Encode encode)
    : forward_(forward),
      tokenizer_(tokenizer),
      requests_(requests),
      eos_ids_(eos_ids),
      store_(store),
      attention_(attention),
      blocks_(blocks),
      encode_(std::move(encode)),
      max_pos_(forward.config().max_position_embeddings) {}

double ModelExecutor::since_start() const { return since(t0_); }

void ModelExecutor::start(const RequestSpec& spec) {
  Seq s;
  s.req = &requests_.at(static_cast<std::size_t>(spec.id.value()));
  s.all = s.req->prompt;
  s.result.id = s.req->id;
  s.result.prompt_tokens = static_cast<std::int64_t>(s.req->prompt.size());
  s.result.queue_s = since_start();
  seqs_.insert_or_assign(spec.id, std::move(s));
}

void ModelExecutor::drop(RequestId request) { seqs_.erase(request); }

std::int64_t ModelExecutor::push_bytes_per_row() const {
  const ModelConfig& mc = forward_.config();
  return push_query_bytes_per_row(mc.num_layers, mc.num_heads, mc.head_dim);
}

int ModelExecutor::layers() const { return static_cast<int>(forward_.config().num_layers); }

std::vector<StepSequence> ModelExecutor::batch_of(std::span<const StepItem> items) {
  std::vector<StepSequence> batch(items.size());
  for (std::size_t s = 0; s < items.size(); ++s) {
    const Growth& g = items[s].growth;
    Seq& q = seqs_.at(g.request);
    const bool last = g.first_pos + g.tokens == static_cast<std::int64_t>(q.all.size());
    batch[s] = StepSequence{std::span(q.all).subspan(static_cast<std::size_t>(g.first_pos),
                                                     static_cast<std::size_t>(g.tokens)),
                            g.first_pos, items[s].slots, last};
  }
  return batch;
}

std::vector<RequestId> ModelExecutor::step(std::span<const StepItem> items,
                                           std::span<const std::byte> pulled, bool exchange,
                                           StepStats& stats) {
  const auto tp = Clock::now();
  const std::vector<StepSequence> batch = batch_of(items);
  std::vector<SeqPlan> plans;
  std::vector<std::int64_t> tokens, first_pos;
  for (const StepItem& item : items) {
    plans.push_back(item.plan);
    tokens.push_back(item.growth.tokens);
    first_pos.push_back(item.growth.first_pos);
  }
  const std::size_t block_bytes = store_.geometry.block_bytes();
  // The pulled blocks arrive in host memory; a device backend reads its own copy.
  const std::byte* pulled_at = pulled.data();
  Backend& backend = forward_.backend();
  if (!pulled.empty() && !backend.host_memory()) {
    if (!pulled_stage_ || pulled_stage_->bytes() < pulled.size()) {
      pulled_stage_.reset();
      pulled_stage_ = backend.allocate(pulled.size(), MemoryUse::kWorkspace);
    }
    backend.upload(pulled_stage_->data(), pulled.data(), pulled.size());
    pulled_at = pulled_stage_->data();
  }
  const KvPool pulled_pool{pulled_at, block_bytes,
                           static_cast<std::int32_t>(pulled.size() / block_bytes), store_.geometry};
  attention_.reset_traffic();
  attention_.plan(std::move(plans), std::move(tokens), std::move(first_pos),
                  pulled.empty() ? nullptr : &pulled_pool, exchange);
  // A home that wrote a committed move's block into this pool flushed it before sending its
  // query headers, which plan() has just received: make what landed visible before serving.
  blocks_.sync();
  stats.comm_s += since(tp);
  const auto tf = Clock::now();
  std::vector<float> logits;
  if (!items.empty()) {
    logits = forward_.step(batch, store_, attention_);
  } else if (attention_.serving()) {
    for (int layer = 0; layer < layers(); ++layer) attention_.serve_layer(layer);
  }
  const double forward_s = since(tf);
  stats.wait_s = attention_.traffic().wait_s;
  stats.compute_s = forward_s - stats.wait_s;
  stats.query_bytes = attention_.traffic().query_bytes;
  stats.partial_bytes = attention_.traffic().partial_bytes;
  return accept(items, batch, logits);
}

std::optional<std::vector<RequestId>> ModelExecutor::fill_step(
    std::span<const StepItem> items, const std::function<bool(int)>& keep_going, StepStats& stats) {
  const auto tf = Clock::now();
  const std::vector<StepSequence> batch = batch_of(items);
  FillAttention attention(keep_going);
  std::optional<std::vector<float>> logits = forward_.try_step(batch, store_, attention);
  std::optional<std::vector<RequestId>> ended;
  if (logits) ended = accept(items, batch, *logits);
  stats.compute_s += since(tf);
  return ended;
}

std::vector<RequestId> ModelExecutor::accept(std::span<const StepItem> items,
                                             std::span<const StepSequence> batch,
                                             std::vector<float>& logits) {
  const auto vocab = static_cast<std::size_t>(forward_.config().vocab_size);
  std::vector<RequestId> ended;
  std::size_t row = 0;
  for (std::size_t s = 0; s < items.size(); ++s) {
    if (!batch[s].want_logits) continue;
    const RequestId id = items[s].growth.request;
    Seq& q = seqs_.at(id);
    std::span<float> l(logits.data() + row * vocab, vocab);
    ++row;
    if (!q.first_token) {
      q.first_token = true;
      q.result.first_token_s = since_start();
    }
    const std::string finish_reason =
        accept_token(*q.req, l, eos_ids_, tokenizer_, max_pos_, q.all, q.result);
    if (finish_reason.empty()) continue;
    q.result.status = GenStatus::kDone;
    q.result.finish_reason = finish_reason;
    q.result.total_s = since_start();
    ended.push_back(id);
  }
  return ended;
}

std::vector<std::uint8_t> ModelExecutor::result(RequestId request, std::int64_t remote_max,
                                                const std::vector<std::int32_t>& creditors) {
  const auto it = seqs_.find(request);
  GenResult r = std::move(it->second.result);
  seqs_.erase(it);
  if (tokenizer_ != nullptr && r.text.empty()) {
    r.text = tokenizer_->decode_text(r.tokens, /*skip_special=*/true);
  }
  r.remote_blocks_max = remote_max;
  r.creditors = creditors;
  return encode_(request, std::move(r));
}

}  // namespace infllm::model
