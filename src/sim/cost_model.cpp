// cost_model.cpp: see cost_model.hpp.
#include "sim/cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/errors.hpp"

namespace infllm::sim {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "cannot be opened");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(path, "", std::string("is not JSON: ") + e.what());
  }
}

// The profile's keys must be exactly `keys` plus "name" and "kind" (== `kind`).
void check_keys(const json& j, const std::string& path, const std::string& kind,
                const std::set<std::string>& keys) {
  if (!j.is_object()) throw InputError(path, "", "is not a JSON object");
  if (j.value("kind", "") != kind) throw InputError(path, "kind", "must be \"" + kind + "\"");
  if (!j.contains("name") || !j.at("name").is_string()) {
    throw InputError(path, "name", "missing (a string)");
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "name" && k != "kind" && keys.count(k) == 0) {
      throw InputError(path, k, "unknown key");
    }
  }
  for (const std::string& k : keys) {
    if (!j.contains(k)) throw InputError(path, k, "missing");
  }
}

// A figure: {"value": positive number, "source": where it comes from}.
double figure(const json& j, const std::string& path, const std::string& key) {
  const json& f = j.at(key);
  if (!f.is_object() || !f.contains("value") || !f.at("value").is_number()) {
    throw InputError(path, key, "must be {\"value\": number, \"source\": text}");
  }
  if (!f.contains("source") || !f.at("source").is_string() ||
      f.at("source").get<std::string>().empty()) {
    throw InputError(path, key, "has no source");
  }
  if (f.size() != 2) throw InputError(path, key, "has keys other than value and source");
  const double v = f.at("value").get<double>();
  if (!std::isfinite(v) || v <= 0) throw InputError(path, key, "must be positive and finite");
  return v;
}

std::int64_t count(const json& j, const std::string& path, const std::string& key) {
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
    throw InputError(path, key, "must be a positive integer");
  }
  return v.get<std::int64_t>();
}

}  // namespace

DeviceProfile load_device(const std::string& path) {
  const json j = read_json(path);
  check_keys(
      j, path, "device",
      {"memory_bytes", "bf16_flops", "hbm_bytes_per_s", "gemm_efficiency", "weight_read_fraction",
       "attention_read_fraction", "step_overhead_s", "layer_overhead_s"});
  DeviceProfile d;
  d.name = j.at("name").get<std::string>();
  d.memory_bytes = figure(j, path, "memory_bytes");
  d.bf16_flops = figure(j, path, "bf16_flops");
  d.hbm_bytes_per_s = figure(j, path, "hbm_bytes_per_s");
  d.gemm_efficiency = figure(j, path, "gemm_efficiency");
  d.weight_read_fraction = figure(j, path, "weight_read_fraction");
  d.attention_read_fraction = figure(j, path, "attention_read_fraction");
  d.step_overhead_s = figure(j, path, "step_overhead_s");
  d.layer_overhead_s = figure(j, path, "layer_overhead_s");
  for (const auto& [key, v] : {std::pair{"gemm_efficiency", d.gemm_efficiency},
                               {"weight_read_fraction", d.weight_read_fraction},
                               {"attention_read_fraction", d.attention_read_fraction}}) {
    if (v > 1) throw InputError(path, key, "is a fraction: at most 1");
  }
  return d;
}

LinkProfile load_link(const std::string& path) {
  const json j = read_json(path);
  check_keys(j, path, "link", {"bytes_per_s", "latency_s"});
  LinkProfile l;
  l.name = j.at("name").get<std::string>();
  l.bytes_per_s = figure(j, path, "bytes_per_s");
  l.latency_s = figure(j, path, "latency_s");
  return l;
}

ModelShape load_model_shape(const std::string& path) {
  const json j = read_json(path);
  check_keys(
      j, path, "model",
      {"source", "layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab"});
  if (!j.at("source").is_string() || j.at("source").get<std::string>().empty()) {
    throw InputError(path, "source", "missing (where the shape comes from)");
  }
  ModelShape m;
  m.name = j.at("name").get<std::string>();
  m.layers = count(j, path, "layers");
  m.hidden = count(j, path, "hidden");
  m.heads = count(j, path, "heads");
  m.kv_heads = count(j, path, "kv_heads");
  m.head_dim = count(j, path, "head_dim");
  m.intermediate = count(j, path, "intermediate");
  m.vocab = count(j, path, "vocab");
  if (m.heads % m.kv_heads != 0) throw InputError(path, "kv_heads", "must divide heads");
  return m;
}

std::int64_t ModelShape::linear_params() const {
  const std::int64_t q = heads * head_dim, kv = kv_heads * head_dim;
  const std::int64_t per_layer =
      hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * intermediate;
  return layers * per_layer + vocab * hidden;
}

std::int64_t ModelShape::kv_bytes_per_token() const {
  return layers * 2 * kv_heads * head_dim * kv_bytes;
}

CostModel::CostModel(DeviceProfile device, ModelShape model, LinkProfile node_link,
                     LinkProfile net_link)
    : device_(std::move(device)),
      model_(std::move(model)),
      node_link_(std::move(node_link)),
      net_link_(std::move(net_link)) {}

double CostModel::step_seconds(const std::vector<ItemCost>& items) const {
  const ModelShape& m = model_;
  const DeviceProfile& d = device_;
  const double tp = m.tp;
  const double flops = d.bf16_flops * d.gemm_efficiency * tp;
  std::int64_t tokens = 0, rows = 0;
  double kv_read = 0, attn_flops = 0;
  for (const ItemCost& it : items) {
    tokens += it.tokens;
    if (it.logits) ++rows;
    // Every query token reads the KV of the positions before it (decode: the whole context);
    // a prefill chunk reads the earlier context once and computes QK and PV for each token.
    kv_read += static_cast<double>(it.context) * static_cast<double>(m.kv_bytes_per_token());
    const double avg_ctx = static_cast<double>(it.context) - static_cast<double>(it.tokens) / 2.0;
    attn_flops += 4.0 * static_cast<double>(it.tokens) * avg_ctx *
                  static_cast<double>(m.heads * m.head_dim * m.layers);
  }
  if (tokens == 0) return 0;
  const double lm_head = static_cast<double>(m.vocab * m.hidden);
  const double linear = static_cast<double>(m.linear_params()) - lm_head;
  const double gemm_flops =
      2.0 * (static_cast<double>(tokens) * linear + static_cast<double>(rows) * lm_head);
  const double weight_bytes = static_cast<double>(m.linear_params()) * m.weight_bytes;
  const double weights_s = std::max(
      gemm_flops / flops, weight_bytes / (d.hbm_bytes_per_s * d.weight_read_fraction * tp));
  const double attention_s =
      kv_read / (d.hbm_bytes_per_s * d.attention_read_fraction * tp) + attn_flops / flops;
  double tp_s = 0;
  if (m.tp > 1) {  // two all-reduces of (tokens, hidden) per layer, ring over the node's link
    const double bytes = 2.0 * (tp - 1) / tp * static_cast<double>(tokens * m.hidden) * 2;
    tp_s = 2.0 * static_cast<double>(m.layers) * node_link_.seconds(bytes);
  }
  return weights_s + attention_s + tp_s + d.step_overhead_s +
         static_cast<double>(m.layers) * d.layer_overhead_s;
}

double CostModel::serve_seconds(std::int64_t kv_tokens, std::int64_t rows) const {
  const ModelShape& m = model_;
  const DeviceProfile& d = device_;
  const double bytes = static_cast<double>(kv_tokens * m.kv_bytes_per_token());
  const double flops =
      4.0 * static_cast<double>(rows * kv_tokens * m.heads * m.head_dim * m.layers);
  return bytes / (d.hbm_bytes_per_s * d.attention_read_fraction * m.tp) +
         flops / (d.bf16_flops * d.gemm_efficiency * m.tp) +
         static_cast<double>(m.layers) * d.layer_overhead_s;
}

std::int64_t CostModel::block_bytes(int block_tokens) const {
  return block_tokens * model_.kv_bytes_per_token() / model_.tp;
}

std::int64_t CostModel::pool_blocks(int block_tokens, double memory_fraction) const {
  const double weights =
      static_cast<double>(model_.linear_params()) * model_.weight_bytes / model_.tp;
  const double free = device_.memory_bytes * memory_fraction - weights;
  if (free <= 0) return 0;
  return static_cast<std::int64_t>(free / static_cast<double>(block_bytes(block_tokens)));
}

}  // namespace infllm::sim
