// forward.cpp: see forward.hpp. Buffer shapes are written beside each buffer; T is the number of
// tokens in the batch, H hidden, Q = q_heads * head_dim, KV = kv_heads * head_dim, F the MLP.
#include "model/forward/forward.hpp"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "core/errors.hpp"
#include "model/forward/rope.hpp"

namespace infllm::model {

std::vector<KvBlock> blocks_up_to(std::span<const SlotId> block_slots, std::int64_t end,
                                  int block_tokens) {
  const std::int64_t n = (end + block_tokens - 1) / block_tokens;
  if (n > static_cast<std::int64_t>(block_slots.size())) {
    throw InternalError("blocks_up_to: position " + std::to_string(end - 1) +
                        " is beyond the block table");
  }
  std::vector<KvBlock> blocks(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t first = i * block_tokens;
    blocks[i] =
        KvBlock{block_slots[i], first,
                static_cast<std::int32_t>(std::min<std::int64_t>(block_tokens, end - first))};
  }
  return blocks;
}

void Attention::attend(Backend& backend, const KvStore& store, int layer, int q_heads,
                       std::span<const StepSequence> batch,
                       std::span<const std::vector<KvBlock>> blocks, const float* q, float* out) {
  const int head_dim = store.geometry.head_dim;
  const std::size_t row = static_cast<std::size_t>(q_heads) * head_dim;
  std::vector<MaQuery> queries(batch.size());
  std::vector<MaOutput> outputs(batch.size());
  std::size_t r = 0;
  for (std::size_t s = 0; s < batch.size(); ++s) {
    const auto& seq = batch[s];
    const auto n = static_cast<std::int64_t>(seq.tokens.size());
    queries[s] = MaQuery{q + r * row, static_cast<int>(n), seq.first_pos, blocks[s]};
    outputs[s] = MaOutput{out + r * row, nullptr, nullptr};
    r += static_cast<std::size_t>(n);
  }
  MaParams params;
  params.layer = layer;
  params.q_heads = q_heads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  params.result = MaResult::kNormalized;
  backend.attention(store.view(), params, queries, outputs);
}

Forward::Forward(const ModelConfig& config, const Weights& weights, Backend& backend)
    : config_(config),
      weights_(weights),
      backend_(backend),
      inv_freq_(rope_inv_freq(
          config, weights.rope_freqs.view != nullptr
                      ? std::vector<float>(weights.rope_freqs.view,
                                           weights.rope_freqs.view + weights.rope_freqs.numel())
                      : weights.rope_freqs.data)) {
  // load_model refuses such a model already; a config built in code is checked here too.
  refuse_sliding_window(config, "config");
  make_resident(weights.embed);
  make_resident(weights.final_norm);
  make_resident(weights.output());
  for (const LayerWeights& w : weights.layers) {
    for (const Tensor* t : {&w.attn_norm, &w.q, &w.k, &w.v, &w.o, &w.q_bias, &w.k_bias, &w.v_bias,
                            &w.q_norm, &w.k_norm, &w.ffn_norm, &w.gate, &w.up, &w.down}) {
      if (!t->empty()) make_resident(*t);
    }
  }
  if (backend_.host_memory()) {
    inv_freq_resident_ = inv_freq_.data();
  } else {
    const std::size_t bytes = inv_freq_.size() * sizeof(float);
    owned_.push_back(backend_.allocate(bytes, MemoryUse::kWeights));
    backend_.upload(owned_.back()->data(), inv_freq_.data(), bytes);
    inv_freq_resident_ = reinterpret_cast<const float*>(owned_.back()->data());
  }
}

void Forward::make_resident(const Tensor& t) {
  if (resident_.count(&t) != 0) return;  // the LM head may be the embedding
  Resident r{t.ptr(), t.has_quant() ? t.quant_ptr() : nullptr};
  if (!backend_.host_memory()) {
    if (t.shape.size() == 2) {  // a matrix: the backend may keep it in its weight dtype
      owned_.push_back(backend_.resident_matrix(t.ptr(), static_cast<std::size_t>(t.shape[0]),
                                                static_cast<std::size_t>(t.shape[1])));
    } else {
      const std::size_t bytes = static_cast<std::size_t>(t.numel()) * sizeof(float);
      owned_.push_back(backend_.allocate(bytes, MemoryUse::kWeights));
      backend_.upload(owned_.back()->data(), t.ptr(), bytes);
    }
    r.values = reinterpret_cast<const float*>(owned_.back()->data());
    if (t.has_quant()) {
      owned_.push_back(backend_.allocate(t.quant_bytes, MemoryUse::kWeights));
      backend_.upload(owned_.back()->data(), t.quant_ptr(), t.quant_bytes);
      r.quant = owned_.back()->data();
    }
  }
  resident_.emplace(&t, r);
}

float* Forward::workspace(std::size_t floats) {
  const std::size_t bytes = floats * sizeof(float);
  if (!work_ || work_->bytes() < bytes) {
    work_.reset();
    work_ = backend_.allocate(bytes + bytes / 4, MemoryUse::kWorkspace);
  }
  return reinterpret_cast<float*>(work_->data());
}

BlockGeometry kv_geometry(const ModelConfig& config, int block_tokens, KvDtype dtype) {
  return BlockGeometry{block_tokens, static_cast<int>(config.num_layers),
                       static_cast<int>(config.num_kv_heads), static_cast<int>(config.head_dim),
                       dtype};
}

BlockGeometry Forward::geometry(int block_tokens, KvDtype dtype) const {
  return kv_geometry(config_, block_tokens, dtype);
}

std::vector<KvRowDest> Forward::kv_rows(std::span<const StepSequence> batch, const KvStore& store) {
  const int bt = store.geometry.block_tokens;
  std::vector<KvRowDest> rows;
  for (const auto& seq : batch) {
    for (std::size_t t = 0; t < seq.tokens.size(); ++t) {
      const std::int64_t pos = seq.first_pos + static_cast<std::int64_t>(t);
      const std::int64_t block = pos / bt;
      if (block >= static_cast<std::int64_t>(seq.block_slots.size())) {
        throw InternalError("Forward: position " + std::to_string(pos) +
                            " has no block in the block table");
      }
      const SlotId slot = seq.block_slots[static_cast<std::size_t>(block)];
      if (slot.value() < 0 || slot.value() >= store.slots) {
        throw InternalError("Forward: slot " + std::to_string(slot.value()) + " outside the pool");
      }
      rows.push_back(KvRowDest{slot, static_cast<std::int32_t>(pos % bt)});
    }
  }
  return rows;
}

void Forward::linear(const float* x, const Tensor& w, float* y, std::size_t m, std::size_t n,
                     std::size_t k, bool accumulate) {
  const Resident& r = resident_.at(&w);
  if (r.quant != nullptr &&
      backend_.matmul_quant(x, w.quant_type, r.quant, y, m, n, k, accumulate)) {
    return;
  }
  backend_.matmul(x, r.values, y, m, n, k, accumulate);
}

std::vector<float> Forward::step(std::span<const StepSequence> batch, KvStore& store) {
  Attention local;
  return step(batch, store, local);
}

std::vector<float> Forward::step(std::span<const StepSequence> batch, KvStore& store,
                                 Attention& attention) {
  std::optional<std::vector<float>> logits = try_step(batch, store, attention);
  if (!logits) throw InternalError("Forward::step: the attention abandoned the step (try_step)");
  return std::move(*logits);
}

std::optional<std::vector<float>> Forward::try_step(std::span<const StepSequence> batch,
                                                    KvStore& store, Attention& attention) {
  const auto& c = config_;
  const std::size_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.intermediate_size;
  const std::size_t V = c.vocab_size;
  const int q_heads = static_cast<int>(c.num_heads), kv_heads = static_cast<int>(c.num_kv_heads);
  const int hd = static_cast<int>(c.head_dim);
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (store.geometry.layers != c.num_layers || store.geometry.kv_heads != kv_heads ||
      store.geometry.head_dim != hd) {
    throw InternalError("Forward: the KV store's geometry does not match the model");
  }

  std::size_t T = 0, R = 0;
  for (const auto& s : batch) {
    T += s.tokens.size();
    if (s.want_logits && !s.tokens.empty()) ++R;
  }
  std::vector<std::int64_t> positions(T);  // (T) host
  std::vector<std::int32_t> ids(T);        // (T) host
  {
    std::size_t r = 0;
    for (const auto& s : batch) {
      for (std::size_t t = 0; t < s.tokens.size(); ++t, ++r) {
        const std::int32_t id = s.tokens[t];
        if (id < 0 || static_cast<std::size_t>(id) >= V) {
          throw InternalError("Forward: token id " + std::to_string(id) +
                              " outside the vocabulary");
        }
        positions[r] = s.first_pos + static_cast<std::int64_t>(t);
        ids[r] = id;
      }
    }
  }
  const std::vector<KvRowDest> kv_dest = kv_rows(batch, store);  // (T)
  // The blocks each request's attention reads: the same in every layer, so built once here.
  std::vector<std::vector<KvBlock>> blocks(batch.size());
  for (std::size_t s = 0; s < batch.size(); ++s) {
    const auto end = batch[s].first_pos + static_cast<std::int64_t>(batch[s].tokens.size());
    blocks[s] = blocks_up_to(batch[s].block_slots, end, store.geometry.block_tokens);
  }
  // The step's activations, in the backend's memory:
  // (T, H) residual stream x and h, the normed input of a sublayer; (T, Q) q and (T, KV) k, v,
  // the projections; (T, Q) att, the attention output; (T, F) gate and up, the MLP; (R, H) last,
  // the rows that want logits, and normed; (R, vocab) the logits. Each starts on a cache line
  // of its own, a line off any 4 KiB multiple of the one before (no 4K aliasing between them).
  const std::size_t sizes[] = {T * H, T * H, T * Q, T * KV, T * KV, T * Q,
                               T * F, T * F, R * H, R * H,  R * V};
  std::size_t offsets[std::size(sizes)];
  std::size_t total = 0;
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    offsets[i] = total;
    total += (sizes[i] + 15) / 16 * 16 + 16;
  }
  float* const base = workspace(total);
  float* x = base + offsets[0];
  float* h = base + offsets[1];
  float* q = base + offsets[2];
  float* k = base + offsets[3];
  float* v = base + offsets[4];
  float* att = base + offsets[5];
  float* gate = base + offsets[6];
  float* up = base + offsets[7];
  float* last = base + offsets[8];
  float* normed = base + offsets[9];
  float* logits_dev = base + offsets[10];
  backend_.gather_rows(values(weights_.embed), ids, H, x);
  for (int layer = 0; layer < static_cast<int>(c.num_layers); ++layer) {
    const LayerWeights& w = weights_.layers[static_cast<std::size_t>(layer)];
    backend_.rms_norm(x, values(w.attn_norm), h, T, H, eps);
    linear(h, w.q, q, T, Q, H);
    linear(h, w.k, k, T, KV, H);
    linear(h, w.v, v, T, KV, H);
    if (!w.q_bias.empty()) {
      backend_.add_bias(q, values(w.q_bias), T, Q);
      backend_.add_bias(k, values(w.k_bias), T, KV);
      backend_.add_bias(v, values(w.v_bias), T, KV);
    }
    if (!w.q_norm.empty()) {  // Qwen3: RMSNorm over each head, before RoPE
      backend_.rms_norm(q, values(w.q_norm), q, T * q_heads, hd, eps);
      backend_.rms_norm(k, values(w.k_norm), k, T * kv_heads, hd, eps);
    }
    const auto rope_scale = static_cast<float>(config_.rope_scaling.attention_factor);
    backend_.rope(q, positions.data(), T, q_heads, hd, inv_freq_resident_, rope_scale);
    backend_.rope(k, positions.data(), T, kv_heads, hd, inv_freq_resident_, rope_scale);
    backend_.store_kv(store, layer, kv_dest, k, v);
    if (!attention.keep_going(layer)) return std::nullopt;
    attention.attend(backend_, store, layer, q_heads, batch, blocks, q, att);
    linear(att, w.o, x, T, H, Q, /*accumulate=*/true);

    backend_.rms_norm(x, values(w.ffn_norm), h, T, H, eps);
    linear(h, w.gate, gate, T, F, H);
    linear(h, w.up, up, T, F, H);
    backend_.silu_mul(gate, up, T * F);
    linear(gate, w.down, x, T, H, F, /*accumulate=*/true);
  }

  // Only the rows that need logits go through the final norm and the LM head; the logits go to
  // the host for the sampler.
  std::vector<std::int32_t> rows;
  std::size_t r = 0;
  for (const auto& s : batch) {
    r += s.tokens.size();
    if (s.want_logits && !s.tokens.empty()) rows.push_back(static_cast<std::int32_t>(r - 1));
  }
  backend_.gather_rows(x, rows, H, last);
  backend_.rms_norm(last, values(weights_.final_norm), normed, R, H, eps);
  linear(normed, weights_.output(), logits_dev, R, V, H);
  std::vector<float> logits(R * V);  // (R, vocab) host
  backend_.download(logits.data(), logits_dev, logits.size() * sizeof(float));
  return logits;
}

}  // namespace infllm::model
